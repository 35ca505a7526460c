#include "image/oci_image_store.h"

#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "image/layout.h"

namespace feos::image {
namespace {

auto logger() {
  static auto l = log::get("image");
  return l;
}

// Every error of a pull names the reference and the registry it was asked from.
Error about(const Error& error, const Reference& ref, const std::string& url) {
  return error.context("image " + quote_for_message(ref.text()) + " (registry " + url + ")");
}

Status write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("image cache: write", errno);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return ok();
}

}  // namespace

Result<std::unique_ptr<OciImageStore>> OciImageStore::open(ImageStoreOptions options) {
  FEOS_ASSIGN_OR_RETURN(BlobCache cache, BlobCache::open(options.cache_dir, options.cache_limit_bytes));
  if (options.architecture.empty()) options.architecture = host_architecture();
  return std::unique_ptr<OciImageStore>(new OciImageStore(std::move(options), std::move(cache)));
}

Result<PulledImage> OciImageStore::pull(std::string_view text, const PullWatch& watch) {
  auto ref = parse_reference(text);
  if (!ref) return fail(ref.error().context("image"));
  InUse use(*this);
  return pull_using(*ref, watch, use);
}

Status OciImageStore::check(std::string_view text) const {
  auto ref = parse_reference(text);
  if (!ref) return fail(ref.error().context("image"));
  return ok();
}

OciImageStore::InUse::~InUse() {
  if (digests_.empty()) return;
  std::lock_guard lock(store_.mutex_);
  for (const auto& digest : digests_)
    if (auto it = store_.in_use_.find(digest); it != store_.in_use_.end() && --it->second == 0)
      store_.in_use_.erase(it);
}

void OciImageStore::InUse::add_locked(const std::string& digest) {
  ++store_.in_use_[digest];
  digests_.push_back(digest);
}

std::set<std::string> OciImageStore::in_use_locked() const {
  std::set<std::string> out;
  for (const auto& [digest, pulls] : in_use_) out.insert(digest);
  return out;
}

Result<Manifest> OciImageStore::manifest(RegistryClient& client, const std::string& key, InUse& use) {
  if (is_sha256_digest(key)) {
    std::lock_guard lock(mutex_);
    if (cache_.find(key)) {
      use.add_locked(key);
      std::ifstream in(cache_.blob_path(key));
      std::stringstream body;
      body << in.rdbuf();
      return Manifest{"", body.str(), key};
    }
  }
  FEOS_ASSIGN_OR_RETURN(Manifest manifest, client.manifest(key));
  {
    std::lock_guard lock(mutex_);
    use.add_locked(manifest.digest);
    if (cache_.find(manifest.digest)) return manifest;
  }
  FEOS_ASSIGN_OR_RETURN(auto temp, cache_.create_temp());
  Status written = write_all(temp.second, manifest.body);
  ::close(temp.second);
  if (written) {
    std::lock_guard lock(mutex_);
    written = cache_.commit(temp.first, manifest.digest);  // another pull's copy: the same bytes
  }
  if (!written) {
    ::unlink(temp.first.c_str());
    return fail(written.error());
  }
  return manifest;
}

Result<uint64_t> OciImageStore::download(RegistryClient& client, const Descriptor& layer,
                                         const std::atomic<bool>& stop,
                                         const std::function<void(uint64_t)>& received) {
  {
    std::lock_guard lock(mutex_);
    if (cache_.find(layer.digest)) return 0;  // a download of it ended between a pull's look and this
    // Downloads in flight will take their room too: the limit holds once they all land.
    FEOS_TRY(cache_.make_room(layer.size, in_use_locked(), reserved_));
    reserved_ += layer.size;
  }
  client.set_cancel(&stop);  // the download's own: a waiter that cancels only stops waiting
  Status stored = ok();
  auto temp = cache_.create_temp();
  uint64_t bytes = 0;
  if (!temp) stored = fail(temp.error());
  if (stored) {
    auto [path, fd] = *temp;
    auto fetched = client.blob(layer.digest, layer.size, [&, fd = fd](std::string_view chunk) -> Status {
      FEOS_TRY(write_all(fd, chunk));
      bytes += chunk.size();
      received(bytes);
      return ok();
    });
    if (!fetched) stored = fail(fetched.error());
    if (stored && ::fsync(fd) != 0) stored = fail_errno("image cache: fsync", errno);
    ::close(fd);
  }
  std::lock_guard lock(mutex_);
  reserved_ -= layer.size;
  // Only a complete, verified blob that someone still waits for enters the cache.
  if (stored && stop) stored = fail(Code::kCancelled, "blob " + layer.digest + ": download stopped");
  if (stored) stored = cache_.commit(temp->first, layer.digest);
  if (!stored) {
    if (temp) ::unlink(temp->first.c_str());
    return fail(stored.error());
  }
  return bytes;
}

Result<PulledImage> OciImageStore::pull_using(const Reference& ref, const PullWatch& watch, InUse& use) {
  if (watch.cancel && *watch.cancel)
    return fail(Code::kCancelled, "image " + quote_for_message(ref.text()) + ": pull cancelled");
  // Shared with the download this pull may start, which outlives the pull when it is cancelled.
  auto client = std::make_shared<RegistryClient>(options_.registry, ref);
  client->set_cancel(watch.cancel);
  const std::string url = client->base_url();
  auto in_context = [&](const Error& error) { return fail(about(error, ref, url)); };
  const std::string& key = ref.manifest_key();
  auto manifest = this->manifest(*client, key, use);
  if (!manifest) return in_context(manifest.error().context("manifest " + key));
  auto step = read_manifest(manifest->media_type, manifest->body, options_.architecture);
  if (!step) return in_context(step.error());
  if (step->is_index) {
    // The entry for this host's architecture: a manifest, pinned by the index's digest.
    manifest = this->manifest(*client, step->next.digest, use);
    if (!manifest) return in_context(manifest.error().context("manifest " + step->next.digest));
    step = read_manifest(manifest->media_type, manifest->body, options_.architecture);
    if (!step) return in_context(step.error());
    if (step->is_index) return in_context(Error{Code::kFailedPrecondition, "an index inside an index"});
  }
  const Descriptor disk = step->next;
  PulledImage out;
  out.reference = ref.text();
  out.registry_url = url;
  out.manifest_digest = manifest->digest;
  out.disk_digest = disk.digest;
  out.disk_path = cache_.blob_path(disk.digest);
  out.bytes_total = disk.size;
  {
    std::lock_guard lock(mutex_);
    use.add_locked(disk.digest);
    if (cache_.find(disk.digest)) return out;
  }
  if (disk.size > options_.max_blob_bytes)
    return in_context(Error{Code::kResourceExhausted,
                            "disk layer " + disk.digest + " has " + std::to_string(disk.size) +
                                " bytes, more than the limit of " + std::to_string(options_.max_blob_bytes) +
                                " (--image-max-blob-size)"});
  const std::string owner = "image " + quote_for_message(ref.text()) + " (registry " + url + ")";
  auto fetch = [this, client, disk](const std::atomic<bool>& stop, const std::function<void(uint64_t)>& received) {
    return download(*client, disk, stop, received);
  };
  auto fetched = downloads_.get(disk.digest, disk.size, owner, std::move(fetch), watch);
  if (!fetched) return in_context(fetched.error());
  out.bytes_pulled = *fetched;
  logger()->info("pulled image {} ({}) disk {}: {} bytes", out.reference, out.manifest_digest, disk.digest,
                 out.bytes_pulled);
  return out;
}

Result<std::string> OciImageStore::attach(const std::string& vm_id, const PulledImage& image) {
  InUse use(*this);
  bool cached = false;
  {
    std::lock_guard lock(mutex_);
    use.add_locked(image.disk_digest);
    cached = cache_.find(image.disk_digest);
  }
  if (!cached) {
    // Evicted since the pull: the same image again, by the manifest's digest.
    auto ref = parse_reference(image.reference);
    if (!ref) return fail(ref.error().context("image"));
    ref->digest = image.manifest_digest;
    FEOS_TRY(pull_using(*ref, {}, use));
  }
  {
    std::lock_guard lock(mutex_);
    FEOS_TRY(cache_.unpin(vm_id));  // a disk left from before is not this VM's any more
    FEOS_TRY(cache_.pin(vm_id, image.disk_digest));
  }
  // Pinned: eviction leaves the image while qemu-img makes the overlay, outside the lock.
  const std::string disk = cache_.vm_dir(vm_id) + "/disk.qcow2";
  if (auto made = create_overlay(options_.qemu_img, cache_.blob_path(image.disk_digest), disk, options_.disk_owner);
      !made) {
    std::lock_guard lock(mutex_);
    (void)cache_.unpin(vm_id);
    return fail(made.error().context("vm " + vm_id + " disk over image " + quote_for_message(image.reference)));
  }
  return disk;
}

Status OciImageStore::release(const std::string& vm_id) {
  std::lock_guard lock(mutex_);
  return cache_.unpin(vm_id);
}

Result<std::vector<std::string>> OciImageStore::remove_unknown_vms(const std::set<std::string>& known,
                                                                   const std::set<std::string>& set_aside) {
  std::lock_guard lock(mutex_);
  std::vector<std::string> handled;
  for (const auto& id : cache_.vm_ids()) {
    if (known.count(id)) continue;
    const std::string digest = cache_.pinned_by(id);
    const std::string image = digest.empty() ? "no image recorded" : "image " + digest;
    // A disk that cannot be removed is reported and left: the daemon still starts.
    if (set_aside.count(id)) {
      auto to = cache_.set_aside(id);
      if (!to) {
        logger()->error("disk of vm={} (unknown to the database) not moved aside: {}", id, to.error().message);
        continue;
      }
      logger()->warn("disk of vm={} ({}) moved to {}: the VM is unknown to the database and was discarded", id,
                     image, *to);
    } else {
      if (auto removed = cache_.unpin(id); !removed) {
        logger()->error("disk of vm={} (unknown to the database) not removed: {}", id, removed.error().message);
        continue;
      }
      logger()->warn("removed the disk of vm={} ({}): the VM is unknown to the database (its create was cut short)",
                     id, image);
    }
    handled.push_back(id);
  }
  return handled;
}

}  // namespace feos::image
