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
  std::lock_guard lock(mutex_);  // may have waited for another VM's pull
  if (watch.cancel && *watch.cancel)
    return fail(Code::kCancelled, "image " + quote_for_message(ref->text()) + ": pull cancelled");
  return pull_locked(*ref, watch);
}

Status OciImageStore::check(std::string_view text) const {
  auto ref = parse_reference(text);
  if (!ref) return fail(ref.error().context("image"));
  return ok();
}

Result<Manifest> OciImageStore::manifest_locked(RegistryClient& client, const std::string& key) {
  if (is_sha256_digest(key) && cache_.find(key)) {
    std::ifstream in(cache_.blob_path(key));
    std::stringstream body;
    body << in.rdbuf();
    return Manifest{"", body.str(), key};
  }
  FEOS_ASSIGN_OR_RETURN(Manifest manifest, client.manifest(key));
  if (cache_.find(manifest.digest)) return manifest;
  FEOS_ASSIGN_OR_RETURN(auto temp, cache_.create_temp());
  Status written = write_all(temp.second, manifest.body);
  ::close(temp.second);
  if (written) written = cache_.commit(temp.first, manifest.digest);
  if (!written) {
    ::unlink(temp.first.c_str());
    return fail(written.error());
  }
  return manifest;
}

Result<uint64_t> OciImageStore::fetch_blob_locked(RegistryClient& client, const Descriptor& layer,
                                                  const PullWatch& watch) {
  FEOS_ASSIGN_OR_RETURN(auto temp, cache_.create_temp());
  auto [path, fd] = temp;
  uint64_t received = 0;
  auto fetched = client.blob(layer.digest, layer.size, [&, fd = fd](std::string_view bytes) -> Status {
    FEOS_TRY(write_all(fd, bytes));
    received += bytes.size();
    if (watch.progress) watch.progress(received, layer.size);
    return ok();
  });
  Status stored = fetched ? ok() : Status(fail(fetched.error()));
  if (stored && ::fsync(fd) != 0) stored = fail_errno("image cache: fsync", errno);
  ::close(fd);
  // Only a complete, verified blob enters the cache: anything else is removed here.
  if (stored) stored = cache_.commit(path, layer.digest);
  if (!stored) {
    ::unlink(path.c_str());
    return fail(stored.error());
  }
  return *fetched;
}

Result<PulledImage> OciImageStore::pull_locked(const Reference& ref, const PullWatch& watch) {
  RegistryClient client(options_.registry, ref);
  client.set_cancel(watch.cancel);
  auto in_context = [&](const Error& error) { return fail(about(error, ref, client.base_url())); };
  const std::string& key = ref.manifest_key();
  auto manifest = manifest_locked(client, key);
  if (!manifest) return in_context(manifest.error().context("manifest " + key));
  auto step = read_manifest(manifest->media_type, manifest->body, options_.architecture);
  if (!step) return in_context(step.error());
  if (step->is_index) {
    // The entry for this host's architecture: a manifest, pinned by the index's digest.
    manifest = manifest_locked(client, step->next.digest);
    if (!manifest) return in_context(manifest.error().context("manifest " + step->next.digest));
    step = read_manifest(manifest->media_type, manifest->body, options_.architecture);
    if (!step) return in_context(step.error());
    if (step->is_index) return in_context(Error{Code::kFailedPrecondition, "an index inside an index"});
  }
  const Descriptor& disk = step->next;
  PulledImage out;
  out.reference = ref.text();
  out.registry_url = client.base_url();
  out.manifest_digest = manifest->digest;
  out.disk_digest = disk.digest;
  out.disk_path = cache_.blob_path(disk.digest);
  out.bytes_total = disk.size;
  if (cache_.find(disk.digest)) return out;
  if (disk.size > options_.max_blob_bytes)
    return in_context(Error{Code::kResourceExhausted,
                            "disk layer " + disk.digest + " has " + std::to_string(disk.size) +
                                " bytes, more than the limit of " + std::to_string(options_.max_blob_bytes) +
                                " (--image-max-blob-size)"});
  if (auto room = cache_.make_room(disk.size, {manifest->digest}); !room) return in_context(room.error());
  auto fetched = fetch_blob_locked(client, disk, watch);
  if (!fetched) return in_context(fetched.error());
  out.bytes_pulled = *fetched;
  logger()->info("pulled image {} ({}) disk {}: {} bytes", out.reference, out.manifest_digest, disk.digest,
                 out.bytes_pulled);
  return out;
}

Result<std::string> OciImageStore::attach(const std::string& vm_id, const PulledImage& image) {
  std::lock_guard lock(mutex_);
  if (!cache_.find(image.disk_digest)) {
    // Evicted since the pull: the same image again, by the manifest's digest.
    auto ref = parse_reference(image.reference);
    if (!ref) return fail(ref.error().context("image"));
    ref->digest = image.manifest_digest;
    FEOS_TRY(pull_locked(*ref));
  }
  FEOS_TRY(cache_.unpin(vm_id));  // a disk left from before is not this VM's any more
  FEOS_TRY(cache_.pin(vm_id, image.disk_digest));
  const std::string disk = cache_.vm_dir(vm_id) + "/disk.qcow2";
  if (auto made = create_overlay(options_.qemu_img, cache_.blob_path(image.disk_digest), disk, options_.disk_owner);
      !made) {
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
