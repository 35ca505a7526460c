#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "common/text.h"
#include "sys/process.h"
#include "sys/spawn.h"

namespace feos::sys {

std::string ExitStatus::describe() const {
  if (!known) return "exited (status unknown: process was adopted after a daemon restart)";
  if (signal != 0) return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  return "exited with status " + std::to_string(exit_code);
}

namespace {

// The child's steps before exec, as it reports a failed one (sys::SpawnFailure::step).
enum ChildStep : int { kMemlock, kAffinity, kIdentity, kExec };

Result<cpu_set_t> cpu_set_of(const std::vector<int>& cpus, const std::string& whose) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu : cpus) {
    if (cpu < 0 || cpu >= CPU_SETSIZE)
      return fail(Code::kInvalidArgument, "CPU " + std::to_string(cpu) + " for " + whose + " is out of range");
    CPU_SET(cpu, &set);
  }
  return set;
}

class PosixProcessLauncher final : public ProcessLauncher {
 public:
  Result<int> launch(const LaunchSpec& spec) override {
    if (spec.argv.empty()) return fail(Code::kInvalidArgument, "launch: empty argv");
    std::string program = find_program(spec.argv[0]);
    if (program.empty() || ::access(program.c_str(), X_OK) != 0)
      return fail(Code::kNotFound, "program not found or not executable: " + spec.argv[0]);

    FEOS_ASSIGN_OR_RETURN(cpu_set_t cpus, cpu_set_of(spec.cpus, "the program " + spec.argv[0]));
    std::vector<char*> argv;
    for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::string out = spec.output_path.empty() ? "/dev/null" : spec.output_path;
    // O_NOFOLLOW: the output may sit in a directory the child's user can write to.
    int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (out_fd < 0) return fail_errno("open " + out, errno);
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
      ::close(out_fd);
      return fail_errno("open /dev/null", errno);
    }
    rlimit memlock{spec.memlock_bytes, spec.memlock_bytes};
    auto spawned = spawn_with_report([&](const ChildReporter& report) {
      ::setsid();
      ::dup2(null_fd, 0);
      ::dup2(out_fd, 1);
      ::dup2(out_fd, 2);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      // The limit first: raising RLIMIT_MEMLOCK takes root, which run_as gives up.
      if (spec.memlock_bytes != 0 && ::setrlimit(RLIMIT_MEMLOCK, &memlock) != 0) report.fail(kMemlock, errno);
      if (!spec.cpus.empty() && ::sched_setaffinity(0, sizeof cpus, &cpus) != 0) report.fail(kAffinity, errno);
      if (spec.run_as) {
        const char* call = "";
        if (int err = become_user(*spec.run_as, &call); err != 0) report.fail(kIdentity, err, call);
      }
      ::execv(program.c_str(), argv.data());
      report.fail(kExec, errno);
    });
    ::close(out_fd);
    ::close(null_fd);
    if (!spawned) return fail(spawned.error());
    if (spawned->failure) {
      const SpawnFailure& failure = *spawned->failure;
      std::string what = "start " + program;
      switch (failure.step) {
        case kMemlock:
          what += ": set RLIMIT_MEMLOCK to " + std::to_string(spec.memlock_bytes);
          break;
        case kAffinity:
          what += ": run on CPUs " + cpu_list_text(spec.cpus);
          break;
        case kIdentity:
          what += ": become " + spec.run_as->describe() + " (gid " +
                  std::to_string(spec.run_as->gid) + "): " + failure.call;
          break;
        case kExec:
          if (spec.run_as) what += " as " + spec.run_as->describe();
          break;
      }
      return fail_errno(what, failure.err);
    }
    return spawned->pid;
  }

  bool is_alive(int pid) const override {
    if (pid <= 0 || ::kill(pid, 0) != 0) return errno == EPERM && pid > 0;
    // A zombie still answers kill(0); read its state.
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    auto close_paren = line.rfind(')');
    return close_paren == std::string::npos || close_paren + 2 >= line.size() ||
           line[close_paren + 2] != 'Z';
  }

  Status send_signal(int pid, int sig) override {
    if (pid <= 0) return fail(Code::kInvalidArgument, "invalid pid " + std::to_string(pid));
    if (::kill(pid, sig) != 0)
      return fail_errno("kill pid " + std::to_string(pid), errno,
                        errno == ESRCH ? Code::kNotFound : Code::kInternal);
    return ok();
  }

  Status set_cpu_affinity(int tid, const std::vector<int>& cpus) override {
    if (tid <= 0) return fail(Code::kInvalidArgument, "invalid thread id " + std::to_string(tid));
    if (cpus.empty()) return fail(Code::kInvalidArgument, "no CPUs for thread " + std::to_string(tid));
    FEOS_ASSIGN_OR_RETURN(cpu_set_t set, cpu_set_of(cpus, "thread " + std::to_string(tid)));
    if (::sched_setaffinity(tid, sizeof set, &set) != 0)
      return fail_errno("sched_setaffinity of thread " + std::to_string(tid), errno,
                        errno == ESRCH ? Code::kNotFound : errno == EINVAL ? Code::kInvalidArgument : Code::kInternal);
    return ok();
  }

  Status watch_exit(int pid, std::function<void(const ExitStatus&)> on_exit) override {
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0)
      return fail_errno("watch pid " + std::to_string(pid), errno,
                        errno == ESRCH ? Code::kNotFound : Code::kInternal);
    std::thread([pid, pidfd, on_exit = std::move(on_exit)] {
      pollfd p{pidfd, POLLIN, 0};
      while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
      }
      ::close(pidfd);
      ExitStatus status;
      int wstatus = 0;
      // Only our own children can be reaped; adopted processes report an unknown status.
      if (::waitpid(pid, &wstatus, 0) == pid) {
        status.known = true;
        if (WIFSIGNALED(wstatus)) status.signal = WTERMSIG(wstatus);
        if (WIFEXITED(wstatus)) status.exit_code = WEXITSTATUS(wstatus);
      }
      on_exit(status);
    }).detach();
    return ok();
  }
};

}  // namespace

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

std::unique_ptr<ProcessLauncher> make_posix_process_launcher() {
  return std::make_unique<PosixProcessLauncher>();
}

}  // namespace feos::sys
