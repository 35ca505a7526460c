#pragma once
// What the daemon reads of a disk image before it hands it to qemu: its format and, for qcow2, the
// backing file its header names (qemu would open that file too).
#include <string>

#include "common/error.h"
#include "model/vm.h"

namespace feos::vmm::qemu {

struct DiskImageInfo {
  model::DiskFormat format = model::DiskFormat::kRaw;
  std::string backing_file;  // qcow2 only: as written in the header ("" when none)
};

// Reads the head of the image at `path`: the qcow2 magic "QFI\xfb" means qcow2 (and its header's
// backing file name is read), anything else (including files shorter than 4 bytes) raw.
// Errors: NOT_FOUND if `path` does not exist; INVALID_ARGUMENT for a qcow2 header whose backing
// file name is out of bounds; INTERNAL with errno text if it cannot be read.
Result<DiskImageInfo> inspect_disk_image(const std::string& path);

}  // namespace feos::vmm::qemu
