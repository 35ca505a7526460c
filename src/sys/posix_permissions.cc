#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "sys/filesystem.h"
#include "sys/permissions.h"

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

// What the probing child reports: the first failed check (index >= 0), or a failure to take the
// identity (index -1, with the call's name).
struct ProbeReport {
  int index = -1;
  int err = 0;
  char call[16] = {};
};

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
    int report_pipe[2];
    if (::pipe2(report_pipe, O_CLOEXEC) != 0) return fail_errno("pipe", errno);
    pid_t pid = ::fork();
    if (pid < 0) {
      int err = errno;
      ::close(report_pipe[0]);
      ::close(report_pipe[1]);
      return fail_errno("fork to check access as " + user.describe(), err);
    }
    if (pid == 0) {
      // Child: async-signal-safe calls only; reports at most one failure, then exits.
      ProbeReport report;
      const char* call = "";
      report.err = become_user(user, &call);
      if (report.err != 0) {
        for (size_t i = 0; call[i] != '\0' && i + 1 < sizeof report.call; ++i) report.call[i] = call[i];
      } else {
        for (size_t i = 0; i < paths.size(); ++i) {
          if (::access(paths[i], modes[i]) != 0) {
            report.index = static_cast<int>(i);
            report.err = errno;
            break;
          }
        }
      }
      if (report.err != 0) (void)!::write(report_pipe[1], &report, sizeof report);
      ::_exit(report.err != 0 ? 1 : 0);
    }
    ::close(report_pipe[1]);
    ProbeReport report;
    ssize_t n;
    do {
      n = ::read(report_pipe[0], &report, sizeof report);
    } while (n < 0 && errno == EINTR);
    ::close(report_pipe[0]);
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (n == sizeof report) {
      if (report.index < 0 || static_cast<size_t>(report.index) >= checks.size())
        return fail_errno("become " + user.describe() + ": " + report.call, report.err,
                          Code::kInternal);
      const auto& check = checks[static_cast<size_t>(report.index)];
      return fail(Code::kFailedPrecondition,
                  check.what + ": " + user.describe() + " cannot " + access_verb(check.access) + " " +
                      quote_for_message(check.shown.empty() ? check.path : check.shown) + ": " +
                      std::strerror(report.err));
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
