#pragma once
// Seam over starting and watching host processes (the hypervisor). Argv only, never a shell.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "sys/run_as.h"

namespace feos::sys {

struct LaunchSpec {
  std::vector<std::string> argv;  // argv[0]: absolute path, or a name looked up in PATH
  std::string output_path;        // stdout+stderr appended here; /dev/null when empty
  uint64_t memlock_bytes = 0;     // RLIMIT_MEMLOCK for the child (VFIO pins guest RAM); 0 = inherit
  // The CPUs the child and every thread it starts may run on, set before exec (a sandboxed qemu
  // may not change its own affinity); empty = inherit the daemon's.
  std::vector<int> cpus = {};
  // The identity the child execs as (set after RLIMIT_MEMLOCK, which only root may raise);
  // empty = the daemon's own.
  std::optional<RunAs> run_as = std::nullopt;
};

struct ExitStatus {
  bool known = false;  // false when the process was not our child (adopted after a restart)
  int exit_code = -1;  // valid when known and signal == 0
  int signal = 0;      // terminating signal, if any
  // "exited with status 0", "killed by signal 9 (Killed)", "exited (status unknown)".
  std::string describe() const;
};

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;

  // Starts argv in a new session (own process group, so it outlives the daemon and a terminal's
  // signals), stdin from /dev/null, as spec.run_as when set (become_user). output_path is opened
  // by the caller's identity, not followed when it is a symbolic link. Returns the pid.
  // NOT_FOUND if the program does not exist; INVALID_ARGUMENT for a CPU out of range; INTERNAL on
  // fork/exec failure, a RLIMIT_MEMLOCK or CPU affinity that cannot be set, or an identity that
  // cannot be taken (naming the user and uid).
  virtual Result<int> launch(const LaunchSpec& spec) = 0;

  // True while `pid` exists and is not a zombie.
  virtual bool is_alive(int pid) const = 0;

  // kill(pid, sig). NOT_FOUND if the process is gone.
  virtual Status send_signal(int pid, int sig) = 0;

  // Calls `on_exit` once, from a background thread, when `pid` ends; works for children and for
  // processes adopted after a daemon restart (pidfd). NOT_FOUND if `pid` is already gone.
  virtual Status watch_exit(int pid, std::function<void(const ExitStatus&)> on_exit) = 0;

  // sched_setaffinity(tid, cpus): the thread may run on these CPUs only. NOT_FOUND if the thread
  // is gone; INVALID_ARGUMENT for an empty list or a CPU this host does not have.
  virtual Status set_cpu_affinity(int tid, const std::vector<int>& cpus) = 0;
};

std::unique_ptr<ProcessLauncher> make_posix_process_launcher();

// `name` when it contains a '/', else the first executable <dir>/<name> of $PATH (default
// /usr/local/bin:/usr/bin:/bin); "" when none. Called before fork so the child only execs.
std::string find_program(const std::string& name);

}  // namespace feos::sys
