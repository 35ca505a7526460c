#include "sys/run_as.h"

#include <grp.h>
#include <pwd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace feos::sys {

std::string RunAs::describe() const {
  return "user " + name + " (uid " + std::to_string(uid) + ")";
}

Result<RunAs> resolve_user(const std::string& name) {
  if (name.empty()) return fail(Code::kInvalidArgument, "user name is empty");
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(size > 0 ? static_cast<size_t>(size) : 16384);
  passwd entry{};
  passwd* found = nullptr;
  int err;
  while ((err = ::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found)) == ERANGE)
    buffer.resize(buffer.size() * 2);
  // getpwnam_r reports "no such user" as 0 with no result, some sources as ENOENT/ESRCH.
  if (found == nullptr && (err == 0 || err == ENOENT || err == ESRCH || err == EBADF || err == EPERM))
    return fail(Code::kNotFound, "user " + name + " not found");
  if (found == nullptr) return fail_errno("look up user " + name, err);
  RunAs user;
  user.name = name;
  user.uid = entry.pw_uid;
  user.gid = entry.pw_gid;
  if (user.uid == 0)
    return fail(Code::kInvalidArgument, "user " + name + " has uid 0: refusing to run as root");
  if (user.gid == 0)
    return fail(Code::kInvalidArgument,
                "user " + name + " has primary group 0 (root): refusing to run with root's group");
  int count = 16;
  for (;;) {
    user.groups.resize(static_cast<size_t>(count));
    int asked = count;
    if (::getgrouplist(name.c_str(), user.gid, user.groups.data(), &count) >= 0) break;
    // -1 with count updated to the number needed; guard against a count that does not grow.
    if (count <= asked) count = asked * 2;
  }
  user.groups.resize(static_cast<size_t>(count));
  for (gid_t group : user.groups)
    if (group == 0)
      return fail(Code::kInvalidArgument,
                  "user " + name + " is a member of group 0 (root): refusing to run with root's group");
  return user;
}

int become_user(const RunAs& user, const char** failed_call) {
  auto failed = [&](const char* call) {
    int err = errno;
    *failed_call = call;
    return err;
  };
  if (::syscall(SYS_setgroups, user.groups.size(), user.groups.data()) != 0) return failed("setgroups");
  if (::syscall(SYS_setresgid, user.gid, user.gid, user.gid) != 0) return failed("setresgid");
  if (::syscall(SYS_setresuid, user.uid, user.uid, user.uid) != 0) return failed("setresuid");
  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  if (::getresuid(&ruid, &euid, &suid) != 0 || ::getresgid(&rgid, &egid, &sgid) != 0)
    return failed("getresuid");
  if (ruid != user.uid || euid != user.uid || suid != user.uid || rgid != user.gid ||
      egid != user.gid || sgid != user.gid) {
    *failed_call = "verify";
    return EPERM;
  }
  return 0;
}

}  // namespace feos::sys
