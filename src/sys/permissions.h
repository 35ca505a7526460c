#pragma once
// Seam over giving files to the unprivileged user a child runs as (chown/chmod), and over
// checking what that user can open. PosixPermissions does the real calls; tests record them.
// Paths are absolute and come from HostPaths or from a request.
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "sys/run_as.h"

namespace feos::sys {

struct FileOwner {
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t mode = 0600;  // permission bits, sticky bit included
};

enum class Access {
  kRead,       // open a file read-only
  kReadWrite,  // open a file (or device node) read-write
  kCreateIn,   // create and remove entries in a directory (write + search)
};

struct AccessCheck {
  std::string what;  // the request field or purpose, for the message ("boot.kernel")
  std::string path;
  Access access = Access::kRead;
  // How the message names the file (quoted): the path as the request gave it, when `path` is what
  // it resolved to (a message must not show a symlink's target); empty: `path`.
  std::string shown = {};
};

class Permissions {
 public:
  virtual ~Permissions() = default;

  // Sets `path`'s owner, group and mode (chown, then chmod), without following a symbolic link
  // at `path`. Errors: INVALID_ARGUMENT if `path` is a symbolic link; otherwise the errno's code
  // (code_for_errno: NOT_FOUND if absent, PERMISSION_DENIED, INTERNAL) with the errno text.
  virtual Status set_owner(const std::string& path, const FileOwner& owner) = 0;

  // Checks, in a child process holding only `user`'s identity (become_user), that the user can
  // access every path as asked (access(2) with the user's ids: owner, groups, ACLs, read-only
  // mounts). Errors: FAILED_PRECONDITION "<what>: user <name> (uid N) cannot <read|read and
  // write|create files in> <path>: <errno text>" for the first check that fails; INTERNAL if the
  // identity cannot be taken (naming the uid) or the child cannot be started.
  virtual Status check_access(const RunAs& user, const std::vector<AccessCheck>& checks) const = 0;
};

std::unique_ptr<Permissions> make_posix_permissions();

// "read", "read and write", "create files in": the verb check_access() messages use.
std::string access_verb(Access access);

}  // namespace feos::sys
