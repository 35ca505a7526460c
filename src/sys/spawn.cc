#include "sys/spawn.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace feos::sys {

void ChildReporter::fail(int step, int err, const char* call) const {
  SpawnFailure failure;
  failure.step = step;
  failure.err = err;
  for (size_t i = 0; call[i] != '\0' && i + 1 < sizeof failure.call; ++i) failure.call[i] = call[i];
  (void)!::write(fd_, &failure, sizeof failure);
  ::_exit(127);
}

Result<Spawned> spawn_with_report(const std::function<void(const ChildReporter&)>& child,
                                  std::string_view fork_what) {
  int report_pipe[2];
  if (::pipe2(report_pipe, O_CLOEXEC) != 0) return fail_errno("pipe", errno);
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(report_pipe[0]);
    ::close(report_pipe[1]);
    return fail_errno(fork_what, err);
  }
  if (pid == 0) {
    ::close(report_pipe[0]);
    child(ChildReporter(report_pipe[1]));
    ::_exit(0);
  }
  ::close(report_pipe[1]);
  // Blocks until the child's end of the pipe closes: on exec, on exit, or after its report.
  SpawnFailure failure;
  ssize_t n;
  do {
    n = ::read(report_pipe[0], &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  ::close(report_pipe[0]);
  Spawned spawned{pid, std::nullopt};
  if (n == sizeof failure) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    spawned.failure = failure;
  }
  return spawned;
}

}  // namespace feos::sys
