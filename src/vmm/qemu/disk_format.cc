#include "vmm/qemu/disk_format.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace feos::vmm::qemu {
namespace {

// pread() all of `size` bytes at `offset` unless the file ends first; bytes read or -errno.
ssize_t read_at(int fd, void* buf, size_t size, uint64_t offset) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, static_cast<char*>(buf) + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

uint64_t big_endian(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

Result<DiskImageInfo> inspect_disk_image(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail_errno("open disk image " + path, errno,
                      errno == ENOENT ? Code::kNotFound : Code::kInternal);
  // qcow2 header: magic, version, backing_file_offset (u64), backing_file_size (u32), big endian.
  unsigned char header[20] = {};
  ssize_t n = read_at(fd, header, sizeof header, 0);
  DiskImageInfo info;
  if (n < 0) {
    ::close(fd);
    return fail_errno("read disk image " + path, static_cast<int>(-n));
  }
  if (n < 4 || std::memcmp(header, "QFI\xfb", 4) != 0) {
    ::close(fd);
    return info;  // raw
  }
  info.format = model::DiskFormat::kQcow2;
  const uint64_t offset = n >= 20 ? big_endian(header + 8, 8) : 0;
  const uint64_t size = n >= 20 ? big_endian(header + 16, 4) : 0;
  if (offset != 0 && size != 0) {
    // qemu limits the name to 1023 bytes.
    if (size > 1023) {
      ::close(fd);
      return fail(Code::kInvalidArgument, "disk image " + path + ": qcow2 backing file name of " +
                                              std::to_string(size) + " bytes (more than 1023)");
    }
    std::string name(size, '\0');
    ssize_t got = read_at(fd, name.data(), size, offset);
    ::close(fd);
    if (got < 0) return fail_errno("read disk image " + path, static_cast<int>(-got));
    if (static_cast<uint64_t>(got) != size)
      return fail(Code::kInvalidArgument,
                  "disk image " + path + ": qcow2 backing file name lies beyond the end of the file");
    info.backing_file = std::move(name);
    return info;
  }
  ::close(fd);
  return info;
}

}  // namespace feos::vmm::qemu
