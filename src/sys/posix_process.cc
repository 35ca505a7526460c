#include <fcntl.h>
#include <poll.h>
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

#include "sys/process.h"

namespace feos::sys {

std::string ExitStatus::describe() const {
  if (!known) return "exited (status unknown: process was adopted after a daemon restart)";
  if (signal != 0) return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  return "exited with status " + std::to_string(exit_code);
}

namespace {

// What a child that did not get to exec reports through the pipe.
enum class ChildStep : int { kMemlock, kIdentity, kExec };
struct ChildFailure {
  ChildStep step = ChildStep::kExec;
  int err = 0;
  char call[16] = {};  // kIdentity: the call that failed (become_user)
};

class PosixProcessLauncher final : public ProcessLauncher {
 public:
  Result<int> launch(const LaunchSpec& spec) override {
    if (spec.argv.empty()) return fail(Code::kInvalidArgument, "launch: empty argv");
    std::string program = find_program(spec.argv[0]);
    if (program.empty() || ::access(program.c_str(), X_OK) != 0)
      return fail(Code::kNotFound, "program not found or not executable: " + spec.argv[0]);

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
    // The child reports an exec failure through this pipe (closed on successful exec).
    int err_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
      ::close(out_fd);
      ::close(null_fd);
      return fail_errno("pipe", errno);
    }
    rlimit memlock{spec.memlock_bytes, spec.memlock_bytes};

    pid_t pid = ::fork();
    if (pid < 0) {
      int err = errno;
      ::close(out_fd);
      ::close(null_fd);
      ::close(err_pipe[0]);
      ::close(err_pipe[1]);
      return fail_errno("fork", err);
    }
    if (pid == 0) {
      // Child: async-signal-safe calls only.
      ::setsid();
      ::dup2(null_fd, 0);
      ::dup2(out_fd, 1);
      ::dup2(out_fd, 2);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      auto report = [&](ChildStep step, int err, const char* call = "") {
        ChildFailure failure{step, err, {}};
        for (size_t i = 0; call[i] != '\0' && i + 1 < sizeof failure.call; ++i) failure.call[i] = call[i];
        (void)!::write(err_pipe[1], &failure, sizeof failure);
        ::_exit(127);
      };
      // The limit first: raising RLIMIT_MEMLOCK takes root, which run_as gives up.
      if (spec.memlock_bytes != 0 && ::setrlimit(RLIMIT_MEMLOCK, &memlock) != 0)
        report(ChildStep::kMemlock, errno);
      if (spec.run_as) {
        const char* call = "";
        if (int err = become_user(*spec.run_as, &call); err != 0)
          report(ChildStep::kIdentity, err, call);
      }
      ::execv(program.c_str(), argv.data());
      report(ChildStep::kExec, errno);
    }
    ::close(out_fd);
    ::close(null_fd);
    ::close(err_pipe[1]);
    ChildFailure failure;
    ssize_t n;
    do {
      n = ::read(err_pipe[0], &failure, sizeof failure);
    } while (n < 0 && errno == EINTR);
    ::close(err_pipe[0]);
    if (n == sizeof failure) {
      ::waitpid(pid, nullptr, 0);
      std::string what = "start " + program;
      switch (failure.step) {
        case ChildStep::kMemlock:
          what += ": set RLIMIT_MEMLOCK to " + std::to_string(spec.memlock_bytes);
          break;
        case ChildStep::kIdentity:
          what += ": become " + spec.run_as->describe() + " (gid " +
                  std::to_string(spec.run_as->gid) + "): " + failure.call;
          break;
        case ChildStep::kExec:
          if (spec.run_as) what += " as " + spec.run_as->describe();
          break;
      }
      return fail_errno(what, failure.err);
    }
    return static_cast<int>(pid);
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
