#include "store/space_reserve.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace feos::store {
namespace {

// Bytes an unprivileged writer may still allocate on the filesystem holding `path`; 0 when the
// filesystem cannot say.
uint64_t free_bytes(const std::string& path) {
  std::string dir = path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/'));
  struct statvfs st {};
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

}  // namespace

SpaceReserve::SpaceReserve(std::string path, uint64_t bytes) : path_(std::move(path)), bytes_(bytes) {}

bool SpaceReserve::make_room() {
  if (bytes_ == 0) return false;
  std::lock_guard lock(mutex_);
  if (free_bytes(path_) >= bytes_) return false;
  if (::unlink(path_.c_str()) != 0) return false;  // already given up (or never made)
  log::get("store")->warn("state directory nearly full: gave up the reserve path={} bytes={}", path_, bytes_);
  return true;
}

void SpaceReserve::restore() {
  if (bytes_ == 0) return;
  std::lock_guard lock(mutex_);
  if (::access(path_.c_str(), F_OK) == 0) return;
  if (free_bytes(path_) < 2 * bytes_) {
    if (!warned_) log::get("store")->warn("no room for the reserve path={} bytes={}", path_, bytes_);
    warned_ = true;
    return;
  }
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return;
  // Real blocks, not a sparse file: freeing them is what makes room.
  int err = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes_));
  ::close(fd);
  if (err != 0) {
    ::unlink(path_.c_str());
    log::get("store")->warn("cannot allocate the reserve path={} error=\"{}\"", path_, std::strerror(err));
    return;
  }
  warned_ = false;
  log::get("store")->info("reserve in place path={} bytes={}", path_, bytes_);
}

}  // namespace feos::store
