#pragma once
// The host files a VM spec names (root image, disks, kernel, initramfs, and the backing files of
// qcow2 images), checked on the real filesystem when the VM is created (formats are recorded then)
// and again right before qemu opens them (a file may have been swapped meanwhile). qemu runs with
// root's reach by default, so a request must not be able to name just any host file.
#include <string>
#include <vector>

#include "common/error.h"
#include "model/vm.h"

namespace feos::vmm::qemu {

// Where request files may live. Empty: anywhere (regular files only).
using FileRoots = std::vector<std::string>;

// `path` (validate_host_path() already passed) resolved through every symlink must be a regular
// file, or a block device inside a root; when `roots` is not empty the resolved path must lie
// inside one of them.
// Errors: NOT_FOUND when it does not exist; PERMISSION_DENIED when it resolves outside the roots
// (naming the resolved path and the roots); INVALID_ARGUMENT for a directory, device or other
// special file; INTERNAL for other errors. Every message starts with "<field>: ".
Status check_request_file(const std::string& path, const std::string& field, const FileRoots& roots);

// check_request_file(), then the image's format; for a qcow2 image with a backing file the
// backing file (relative to the image's directory when not absolute) is checked the same way.
// Errors: as check_request_file() and inspect_disk_image().
Result<model::DiskFormat> check_disk_image(const std::string& path, const std::string& field,
                                           const FileRoots& roots);

// Every file of `spec` checked; returns `spec` with each image's format recorded (a format
// already recorded is kept: it is what the VM was created with).
Result<model::VmSpec> check_spec_files(const model::VmSpec& spec, const FileRoots& roots);

}  // namespace feos::vmm::qemu
