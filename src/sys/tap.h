#pragma once
// Host tap interfaces for VM NICs. FeOS's hypervisor creates a NIC's tap when it does not exist;
// feosd does the same for a NIC attached to a running VM.
#include <sys/types.h>

#include <optional>
#include <string>

#include "common/error.h"

namespace feos::sys {

// Whether a network interface of this name exists.
bool interface_exists(const std::string& name);

// Creates the tap `name` unless an interface of that name exists: persistent (it outlives the
// process that uses it; the operator's network setup attaches it to a bridge and removes it),
// owned by `owner` when given (so an unprivileged qemu can open it), and up.
// Returns whether it created the tap. Errors: INVALID_ARGUMENT for a name of more than 15 bytes;
// PERMISSION_DENIED without CAP_NET_ADMIN; INTERNAL with the errno text otherwise.
Result<bool> ensure_tap(const std::string& name, std::optional<uid_t> owner, std::optional<gid_t> group);

}  // namespace feos::sys
