#pragma once
// Disk image format detection for the argv builder's input.
#include <string>

#include "common/error.h"
#include "vmm/qemu/argv_builder.h"

namespace feos::vmm::qemu {

// Reads the first bytes of the image at `path`: the qcow2 magic "QFI\xfb" means qcow2, anything
// else (including files shorter than 4 bytes) raw.
// Errors: NOT_FOUND if `path` does not exist, INTERNAL with errno text if it cannot be read.
Result<DiskFormat> detect_disk_format(const std::string& path);

}  // namespace feos::vmm::qemu
