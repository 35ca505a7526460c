#pragma once
// A VM's own disk over a cached image: a qcow2 overlay (qemu-img create, backing format raw)
// whose backing file is the cached blob. The VM writes only its overlay; the cached image stays
// read-only and is shared by every VM that boots it, and the VM starts without copying it.
#include <optional>
#include <string>
#include <sys/types.h>

#include "common/error.h"

namespace feos::image {

struct DiskOwner {
  uid_t uid;
  gid_t gid;
};

// Writes `overlay` (mode 0600, owned by `owner` when given: the unprivileged qemu user) over the
// raw image `base`. INTERNAL with qemu-img's own message when it fails; NOT_FOUND when `qemu_img`
// does not exist.
Status create_overlay(const std::string& qemu_img, const std::string& base, const std::string& overlay,
                      const std::optional<DiskOwner>& owner);

}  // namespace feos::image
