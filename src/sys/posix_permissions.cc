#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "sys/filesystem.h"
#include "sys/permissions.h"
#include "sys/spawn.h"

namespace feos::sys {

std::string access_verb(Access access) {
  switch (access) {
    case Access::kRead:
      return "read";
    case Access::kReadWrite:
      return "read and write";
    case Access::kCreateIn:
      return "create files in";
  }
  return "access";
}

namespace {

// The probing child's report (sys::SpawnFailure::step): the index of the first failed check, or
// kIdentityStep when it could not take the user's identity.
constexpr int kIdentityStep = -1;

int access_mode(Access access) {
  switch (access) {
    case Access::kRead:
      return R_OK;
    case Access::kReadWrite:
      return R_OK | W_OK;
    case Access::kCreateIn:
      return W_OK | X_OK;
  }
  return R_OK;
}

class PosixPermissions final : public Permissions {
 public:
  Status set_owner(const std::string& path, const FileOwner& owner) override {
    // O_PATH opens the node itself: no device open (a vfio group allows one opener), and with
    // O_NOFOLLOW a symbolic link is caught instead of followed. chown and chmod then act on
    // this very inode.
    auto failed = [&](const std::string& what, int err) {
      return fail_errno(what + " " + path, err, code_for_errno(err));
    };
    int fd = ::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      return failed("open", err);
    }
    struct stat st {};
    Status result = ok();
    std::string self = "/proc/self/fd/" + std::to_string(fd);
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      result = failed("stat", err);
    } else if (S_ISLNK(st.st_mode)) {
      result = fail(Code::kInvalidArgument, path + " is a symbolic link: not changing its owner");
    } else if (::fchownat(fd, "", owner.uid, owner.gid, AT_EMPTY_PATH) != 0) {
      int err = errno;
      result = failed("chown to " + std::to_string(owner.uid) + ":" + std::to_string(owner.gid), err);
    } else if (::chmod(self.c_str(), owner.mode) != 0) {  // fchmod refuses O_PATH descriptors
      int err = errno;
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(owner.mode));
      result = failed(std::string("chmod to ") + mode, err);
    }
    ::close(fd);
    return result;
  }

  Status check_access(const RunAs& user, const std::vector<AccessCheck>& checks) const override {
    std::vector<const char*> paths;
    std::vector<int> modes;
    for (const auto& check : checks) {
      paths.push_back(check.path.c_str());
      modes.push_back(access_mode(check.access));
    }
    // Reports at most one failure; returning ends the child with status 0.
    auto spawned = spawn_with_report(
        [&](const ChildReporter& report) {
          const char* call = "";
          if (int err = become_user(user, &call); err != 0) report.fail(kIdentityStep, err, call);
          for (size_t i = 0; i < paths.size(); ++i)
            if (::access(paths[i], modes[i]) != 0) report.fail(static_cast<int>(i), errno);
        },
        "fork to check access as " + user.describe());
    if (!spawned) return fail(spawned.error());
    if (spawned->failure) {
      const SpawnFailure& failure = *spawned->failure;
      if (failure.step < 0 || static_cast<size_t>(failure.step) >= checks.size())
        return fail_errno("become " + user.describe() + ": " + failure.call, failure.err, Code::kInternal);
      const auto& check = checks[static_cast<size_t>(failure.step)];
      return fail(Code::kFailedPrecondition,
                  check.what + ": " + user.describe() + " cannot " + access_verb(check.access) + " " +
                      quote_for_message(check.shown.empty() ? check.path : check.shown) + ": " +
                      std::strerror(failure.err));
    }
    int wstatus = 0;
    while (::waitpid(spawned->pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
      return fail(Code::kInternal, "access check as " + user.describe() +
                                       ": the checking process ended without a report");
    return ok();
  }
};

}  // namespace

std::unique_ptr<Permissions> make_posix_permissions() { return std::make_unique<PosixPermissions>(); }

}  // namespace feos::sys
