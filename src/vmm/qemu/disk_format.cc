#include "vmm/qemu/disk_format.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace feos::vmm::qemu {

Result<DiskFormat> detect_disk_format(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail_errno("open disk image " + path, errno,
                      errno == ENOENT ? Code::kNotFound : Code::kInternal);
  char magic[4] = {};
  ssize_t n;
  do {
    n = ::pread(fd, magic, sizeof magic, 0);
  } while (n < 0 && errno == EINTR);
  int err = errno;
  ::close(fd);
  if (n < 0) return fail_errno("read disk image " + path, err);
  if (n == static_cast<ssize_t>(sizeof magic) && std::memcmp(magic, "QFI\xfb", 4) == 0)
    return DiskFormat::kQcow2;
  return DiskFormat::kRaw;
}

}  // namespace feos::vmm::qemu
