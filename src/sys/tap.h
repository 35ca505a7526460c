#pragma once
// Host tap interfaces for VM NICs. FeOS's hypervisor creates a NIC's tap when it does not exist;
// feosd does the same for a NIC attached to a running VM, and removes such a tap with the NIC.
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"

namespace feos::sys {

// Whether a network interface of this name exists.
bool interface_exists(const std::string& name);

// Creates the tap `name` unless an interface of that name exists: persistent (it outlives the
// process that uses it, across the VM's stops, until remove_tap()), owned by `owner` when given
// (so an unprivileged qemu can open it), and up.
// Returns whether it created the tap. Errors: INVALID_ARGUMENT for a name of more than 15 bytes;
// PERMISSION_DENIED without CAP_NET_ADMIN; INTERNAL with the errno text otherwise.
Result<bool> ensure_tap(const std::string& name, std::optional<uid_t> owner, std::optional<gid_t> group);

// Removes the persistent tap `name` that ensure_tap() created: clears its persistence, so it goes
// when its last user (a qemu that still holds it) closes it. An interface of that name that is
// gone already is OK (returns false); returns true when it was there. Errors: INVALID_ARGUMENT
// for a name of more than 15 bytes; PERMISSION_DENIED without CAP_NET_ADMIN; INTERNAL with the
// errno text otherwise (EBUSY: another process holds it).
Result<bool> remove_tap(const std::string& name);

// Who may open an existing tap without CAP_NET_ADMIN: the owner and group it was given
// (TUNSETOWNER/TUNSETGROUP, `ip tuntap add ... user U group G`); unset when it has none.
struct TapOwner {
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;

  // The kernel's rule (tun_not_capable()): a set owner must be the process's euid and a set
  // group one of its groups; a tap with neither is open to every user that can open
  // /dev/net/tun. `groups`: every group of the process (primary included).
  bool admits(uid_t euid, const std::vector<gid_t>& groups) const;
  // "uid 65534 and group 65534", "uid 0", "no owner or group".
  std::string describe() const;
};

// The owner of the tap `name` from <sysfs>/class/net/<name>/{tun_flags,owner,group} ("-1":
// unset). `name` must be a validated interface name. Errors: NOT_FOUND when no interface has
// that name; FAILED_PRECONDITION when it is not a tun/tap device (no tun_flags); INTERNAL for an
// owner or group that is not a number.
Result<TapOwner> read_tap_owner(const Filesystem& fs, const HostPaths& paths, const std::string& name);

}  // namespace feos::sys
