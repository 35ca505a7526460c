#pragma once
// Seam over the filesystem calls the daemon makes on kernel interfaces (sysfs, /dev, /proc).
// PosixFilesystem does the real calls; tests substitute a fake kernel that reacts to writes.
// Paths are absolute and come from HostPaths.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace feos::sys {

class Filesystem {
 public:
  virtual ~Filesystem() = default;

  // Whole file contents. NOT_FOUND if absent, INTERNAL with errno text otherwise.
  virtual Result<std::string> read_file(const std::string& path) const = 0;
  // Writes `data` in one write(2), as sysfs attributes require. Errors carry the errno text;
  // EBUSY maps to FAILED_PRECONDITION, ENOENT/ENODEV to NOT_FOUND, others to INTERNAL.
  virtual Status write_file(const std::string& path, std::string_view data) = 0;
  // Names in a directory, sorted, without "." and "..". NOT_FOUND if absent.
  virtual Result<std::vector<std::string>> list_dir(const std::string& path) const = 0;
  // Target of a symbolic link as stored. NOT_FOUND if absent, INVALID_ARGUMENT if not a link.
  virtual Result<std::string> read_link(const std::string& path) const = 0;
  virtual bool exists(const std::string& path) const = 0;
};

std::unique_ptr<Filesystem> make_posix_filesystem();

// The error code a failed filesystem call on a kernel interface maps to: ENOENT/ENODEV/ENXIO ->
// NOT_FOUND, EBUSY -> FAILED_PRECONDITION, EACCES/EPERM -> PERMISSION_DENIED, EINVAL ->
// INVALID_ARGUMENT, others INTERNAL. Shared by every Filesystem implementation.
Code code_for_errno(int err);

// Trims trailing whitespace/newlines, as sysfs attributes end in "\n".
std::string trim(std::string_view text);

// Last path component of a link target ("../../bus/pci/drivers/nvidia" -> "nvidia").
std::string basename_of(std::string_view path);

}  // namespace feos::sys
