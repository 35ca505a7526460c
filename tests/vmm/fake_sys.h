#pragma once
// Fakes of the sys:: seams the QEMU adapter uses: a filesystem of files and links in maps, a
// process launcher whose processes a test starts and ends, and permissions that record owner
// changes and access checks. Nothing real is changed.
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "sys/filesystem.h"
#include "sys/permissions.h"
#include "sys/process.h"

namespace feos::vmm::qemu::testing {

class FakeFilesystem final : public sys::Filesystem {
 public:
  std::map<std::string, std::string> files;
  std::map<std::string, std::string> links;
  Result<std::string> read_file(const std::string& path) const override {
    auto it = files.find(path);
    if (it == files.end()) return fail(Code::kNotFound, path + ": No such file or directory");
    return it->second;
  }
  Status write_file(const std::string& path, std::string_view data) override {
    files[path] = std::string(data);
    return ok();
  }
  // The next path components of the files under `path` (so a fake /proc lists its pids).
  Result<std::vector<std::string>> list_dir(const std::string& path) const override {
    std::set<std::string> names;
    for (const auto& [file, contents] : files)
      if (file.rfind(path + "/", 0) == 0) names.insert(file.substr(path.size() + 1, file.find('/', path.size() + 1) - path.size() - 1));
    if (names.empty()) return fail(Code::kNotFound, path);
    return std::vector<std::string>(names.begin(), names.end());
  }
  Result<std::string> read_link(const std::string& path) const override {
    auto it = links.find(path);
    if (it == links.end()) return fail(Code::kNotFound, path);
    return it->second;
  }
  bool exists(const std::string& path) const override { return files.count(path) != 0; }
};

class FakeLauncher final : public sys::ProcessLauncher {
 public:
  std::map<int, bool> alive;
  int launches = 0;
  sys::LaunchSpec last;
  // Answers launch(); unset: launches nothing.
  std::function<Result<int>(const sys::LaunchSpec&)> on_launch;
  // watch_exit() callbacks by pid: a test calls one to end that process.
  std::map<int, std::function<void(const sys::ExitStatus&)>> watchers;
  // Every signal sent to a live process, as (pid, signal), in order.
  std::vector<std::pair<int, int>> signals;
  // Runs after a signal to a live process is recorded (a test ends the process here or not).
  std::function<void(int pid, int sig)> on_signal;

  Result<int> launch(const sys::LaunchSpec& spec) override {
    ++launches;
    last = spec;
    if (on_launch) return on_launch(spec);
    return fail(Code::kInternal, "fake launcher does not launch");
  }
  bool is_alive(int pid) const override {
    auto it = alive.find(pid);
    return it != alive.end() && it->second;
  }
  Status send_signal(int pid, int sig) override {
    if (!is_alive(pid)) return fail(Code::kNotFound, "gone");
    signals.emplace_back(pid, sig);
    if (on_signal) on_signal(pid, sig);
    return ok();
  }
  Status watch_exit(int pid, std::function<void(const sys::ExitStatus&)> on_exit) override {
    if (!is_alive(pid)) return fail(Code::kNotFound, "gone");
    watchers[pid] = std::move(on_exit);
    return ok();
  }
  // Every set_cpu_affinity(), by thread id.
  std::map<int, std::vector<int>> affinity;
  Status set_cpu_affinity(int tid, const std::vector<int>& cpus) override {
    affinity[tid] = cpus;
    return ok();
  }
};

// Records owner changes (and the owner each path has now) and access checks.
class FakePermissions final : public sys::Permissions {
 public:
  struct Change {
    std::string path;
    sys::FileOwner owner;
  };
  std::vector<Change> changes;
  std::map<std::string, sys::FileOwner> owners;
  mutable std::vector<std::vector<sys::AccessCheck>> checks;
  mutable std::vector<sys::RunAs> checked_users;
  std::optional<Error> access_error;  // check_access() returns it
  std::string refuse_path;            // set_owner() of this path fails: PERMISSION_DENIED
  std::string gone_path;              // set_owner() of this path fails: NOT_FOUND

  Status set_owner(const std::string& path, const sys::FileOwner& owner) override {
    changes.push_back({path, owner});
    if (path == refuse_path) return fail(Code::kPermissionDenied, "chown " + path + ": refused");
    if (path == gone_path) return fail(Code::kNotFound, "chown " + path + ": No such file or directory");
    owners[path] = owner;
    return ok();
  }
  Status check_access(const sys::RunAs& user,
                      const std::vector<sys::AccessCheck>& asked) const override {
    checked_users.push_back(user);
    checks.push_back(asked);
    if (access_error) return fail(*access_error);
    return ok();
  }
  // "uid:gid/mode" of `path` now, "-" if never changed.
  std::string owner_of(const std::string& path) const {
    auto it = owners.find(path);
    if (it == owners.end()) return "-";
    return describe(it->second);
  }
  // Every change as "path uid:gid/mode", in order.
  std::vector<std::string> history() const {
    std::vector<std::string> out;
    for (const auto& change : changes) out.push_back(change.path + " " + describe(change.owner));
    return out;
  }
  static std::string describe(const sys::FileOwner& owner) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(owner.mode));
    return std::to_string(owner.uid) + ":" + std::to_string(owner.gid) + "/" + mode;
  }
};

}  // namespace feos::vmm::qemu::testing
