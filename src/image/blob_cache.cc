#include "image/blob_cache.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "image/reference.h"

namespace feos::image {
namespace {

namespace fs = std::filesystem;

Error fs_error(const std::string& what, const std::error_code& ec) {
  return Error{Code::kInternal, "image cache: " + what + ": " + ec.message()};
}

// A VM id becomes a directory name: ids are UUIDs (model::VmId), anything else is a caller's bug.
bool safe_name(const std::string& name) {
  return !name.empty() && name.size() <= 64 && name.find('/') == std::string::npos && name.front() != '.';
}

}  // namespace

Result<BlobCache> BlobCache::open(std::string dir, uint64_t limit_bytes) {
  BlobCache cache(std::move(dir), limit_bytes);
  std::error_code ec;
  for (const char* sub : {"blobs/sha256", "tmp", "vms"}) {
    fs::create_directories(cache.dir_ + "/" + sub, ec);
    if (ec) return fail(fs_error("create " + cache.dir_ + "/" + sub, ec));
  }
  for (const char* sub : {"", "/blobs", "/blobs/sha256", "/tmp", "/vms"})
    fs::permissions(cache.dir_ + sub, fs::perms(0755), ec);
  fs::remove_all(cache.dir_ + "/tmp", ec);
  fs::create_directory(cache.dir_ + "/tmp", ec);
  if (ec) return fail(fs_error("reset " + cache.dir_ + "/tmp", ec));
  return cache;
}

std::string BlobCache::blob_path(const std::string& digest) const {
  return dir_ + "/blobs/sha256/" + digest.substr(digest.find(':') + 1);
}

bool BlobCache::find(const std::string& digest) {
  if (!is_sha256_digest(digest)) return false;
  const std::string path = blob_path(digest);
  // utimensat with "now": marks the blob used without opening it.
  return ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0) == 0;
}

Result<std::pair<std::string, int>> BlobCache::create_temp() {
  std::string path = dir_ + "/tmp/pull-XXXXXX";
  int fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return fail_errno("image cache: create a file in " + dir_ + "/tmp", errno);
  return std::make_pair(path, fd);
}

Status BlobCache::commit(const std::string& temp_path, const std::string& digest) {
  if (!is_sha256_digest(digest)) return fail(Code::kInternal, "image cache: bad digest " + digest);
  ::chmod(temp_path.c_str(), 0444);
  if (::rename(temp_path.c_str(), blob_path(digest).c_str()) != 0)
    return fail_errno("image cache: store blob " + digest, errno);
  return ok();
}

uint64_t BlobCache::used_bytes() const {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_ + "/blobs/sha256", ec))
    if (entry.is_regular_file(ec)) total += entry.file_size(ec);
  return total;
}

Status BlobCache::make_room(uint64_t incoming, const std::set<std::string>& keep, uint64_t reserved) {
  struct Blob {
    std::string digest;
    uint64_t size;
    fs::file_time_type used;
  };
  const std::set<std::string> pins = pinned();
  std::vector<Blob> candidates;
  uint64_t total = 0, pinned_bytes = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_ + "/blobs/sha256", ec)) {
    if (!entry.is_regular_file(ec)) continue;
    Blob blob{"sha256:" + entry.path().filename().string(), entry.file_size(ec), entry.last_write_time(ec)};
    total += blob.size;
    if (pins.count(blob.digest) || keep.count(blob.digest)) pinned_bytes += blob.size;
    else candidates.push_back(std::move(blob));
  }
  if (ec) return fail(fs_error("list " + dir_ + "/blobs/sha256", ec));
  std::sort(candidates.begin(), candidates.end(), [](const Blob& a, const Blob& b) { return a.used < b.used; });
  // Nothing evicted makes a blob larger than the limit fit.
  const uint64_t needed = incoming > limit_ || reserved > limit_ - incoming ? limit_ + 1 : incoming + reserved;
  for (const auto& blob : candidates) {
    if (total + needed <= limit_) break;
    if (!fs::remove(blob_path(blob.digest), ec) && ec) return fail(fs_error("evict " + blob.digest, ec));
    total -= blob.size;
    log::get("image")->info("evicted blob {} ({} bytes, unused)", blob.digest, blob.size);
  }
  if (total + needed > limit_)
    return fail(Code::kResourceExhausted,
                "image cache: " + std::to_string(incoming) + " more bytes do not fit the limit of " +
                    std::to_string(limit_) + " bytes (" + std::to_string(pinned_bytes) +
                    " bytes held by images VMs or pulls in progress use" +
                    (reserved ? ", " + std::to_string(reserved) + " by downloads in flight" : std::string()) +
                    "; --image-cache-size raises the limit)");
  return ok();
}

std::string BlobCache::vm_dir(const std::string& vm_id) const { return dir_ + "/vms/" + vm_id; }

Status BlobCache::pin(const std::string& vm_id, const std::string& digest) {
  if (!safe_name(vm_id)) return fail(Code::kInternal, "image cache: bad vm id " + quote_for_message(vm_id));
  std::error_code ec;
  fs::create_directories(vm_dir(vm_id), ec);
  if (ec) return fail(fs_error("create " + vm_dir(vm_id), ec));
  fs::permissions(vm_dir(vm_id), fs::perms(0755), ec);
  // Durable before the VM is recorded: a pin lost in a host crash would let eviction take the
  // image a VM's disk stands on (its contents, then the rename, then the directory entry).
  const std::string path = vm_dir(vm_id) + "/image";
  const std::string temp = path + ".new";
  const std::string text = digest + "\n";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool written = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                 ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (!written || ::rename(temp.c_str(), path.c_str()) != 0)
    return fail(Code::kInternal, "image cache: cannot write " + path + ": " + std::strerror(errno));
  int dir = ::open(vm_dir(vm_id).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool synced = dir >= 0 && ::fsync(dir) == 0;
  if (dir >= 0) ::close(dir);
  if (!synced) return fail(Code::kInternal, "image cache: cannot sync " + vm_dir(vm_id) + ": " + std::strerror(errno));
  return ok();
}

Status BlobCache::unpin(const std::string& vm_id) {
  if (!safe_name(vm_id)) return fail(Code::kInternal, "image cache: bad vm id " + quote_for_message(vm_id));
  std::error_code ec;
  fs::remove_all(vm_dir(vm_id), ec);
  if (ec) return fail(fs_error("remove " + vm_dir(vm_id), ec));
  return ok();
}

std::vector<std::string> BlobCache::vm_ids() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_ + "/vms", ec)) out.push_back(entry.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string BlobCache::pinned_by(const std::string& vm_id) const {
  std::ifstream in(vm_dir(vm_id) + "/image");
  std::string digest;
  return in >> digest && is_sha256_digest(digest) ? digest : "";
}

Result<std::string> BlobCache::set_aside(const std::string& vm_id) {
  if (!safe_name(vm_id)) return fail(Code::kInternal, "image cache: bad vm id " + quote_for_message(vm_id));
  std::error_code ec;
  fs::create_directories(dir_ + "/vms.discarded", ec);
  if (ec) return fail(fs_error("create " + dir_ + "/vms.discarded", ec));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  std::string to = dir_ + "/vms.discarded/" + vm_id + "-" + std::to_string(ms);
  fs::rename(vm_dir(vm_id), to, ec);
  if (ec) return fail(fs_error("move " + vm_dir(vm_id) + " to " + to, ec));
  return to;
}

std::set<std::string> BlobCache::pinned() const {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_ + "/vms", ec)) {
    std::ifstream in(entry.path() / "image");
    std::string digest;
    if (in >> digest && is_sha256_digest(digest)) out.insert(digest);
  }
  return out;
}

}  // namespace feos::image
