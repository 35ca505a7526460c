#pragma once
// An unprivileged identity the daemon runs a child process (qemu) as, resolved once from a user
// name, and the switch to it inside a freshly forked child.
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/error.h"

namespace feos::sys {

struct RunAs {
  std::string name;         // user name, for messages
  uid_t uid = 0;
  gid_t gid = 0;            // primary group
  std::vector<gid_t> groups;  // every group of the user (primary and supplementary)

  // "user nobody (uid 65534)": how errors name the identity.
  std::string describe() const;
};

// Looks `name` up in the user database (getpwnam_r) and its groups (getgrouplist), so the child
// keeps the memberships an operator gives the user (group kvm for /dev/kvm).
// Errors: INVALID_ARGUMENT for an empty name, or for uid 0 or primary group 0 (root: nothing
// would be dropped); NOT_FOUND for an unknown user; INTERNAL when the lookup itself fails.
Result<RunAs> resolve_user(const std::string& name);

// Takes `user`'s identity for good: setgroups(user.groups), setresgid(gid), setresuid(uid) as
// raw syscalls, then checks that real, effective and saved ids all hold it. Only for a child
// between fork and exec (async-signal-safe; in a threaded process the kernel would change only
// the calling thread). Returns 0, or the errno of the first call that failed ("*failed_call"
// names it; EPERM with "verify" when an id did not stick).
int become_user(const RunAs& user, const char** failed_call);

}  // namespace feos::sys
