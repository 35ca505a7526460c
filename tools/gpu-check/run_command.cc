#include "gpu-check/run_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "sys/process.h"
#include "sys/spawn.h"

namespace feos::gpucheck {
namespace {

constexpr size_t kMaxCapture = 1 << 20;

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv, int timeout_ms) {
  CommandResult r;
  std::string program = sys::find_program(argv.at(0));
  if (program.empty()) {
    r.error = argv[0] + " not found in PATH";
    return r;
  }
  if (::access(program.c_str(), X_OK) != 0) {
    r.error = program + ": " + std::strerror(errno);
    return r;
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    r.error = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    r.error = std::string("pipe: ") + std::strerror(errno);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return r;
  }
  // stdin: the read end of a pipe whose write end is closed, so the program reads EOF.
  int in_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) {
    r.error = std::string("pipe: ") + std::strerror(errno);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    return r;
  }
  ::close(in_pipe[1]);
  int stdin_fd = in_pipe[0];

  auto spawned = sys::spawn_with_report([&](const sys::ChildReporter& report) {
    ::dup2(stdin_fd, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::execv(program.c_str(), args.data());
    report.fail(0, errno);
  });
  for (int fd : {out_pipe[1], err_pipe[1], stdin_fd}) ::close(fd);
  if (!spawned || spawned->failure) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    r.error = spawned ? program + ": " + std::strerror(spawned->failure->err) : spawned.error().message;
    return r;
  }
  const pid_t pid = spawned->pid;
  r.started = true;

  int out_fd = out_pipe[0], err_fd = err_pipe[0];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[8192];
  while (out_fd >= 0 || err_fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      break;
    }
    pollfd p[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    int ready = ::poll(p, 2, static_cast<int>(left.count()));
    if (ready < 0) {
      if (errno == EINTR) continue;
      r.error = std::string("poll: ") + std::strerror(errno);
      r.timed_out = true;  // treat as a hang: kill below
      break;
    }
    for (int k = 0; k < 2; ++k) {
      if (p[k].fd < 0 || p[k].revents == 0) continue;
      int& fd = k == 0 ? out_fd : err_fd;
      std::string& sink = k == 0 ? r.out : r.err;
      ssize_t got = ::read(fd, buf, sizeof buf);
      if (got > 0) {
        if (sink.size() < kMaxCapture) sink.append(buf, std::min(static_cast<size_t>(got), kMaxCapture - sink.size()));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        close_fd(fd);
      }
    }
  }
  close_fd(out_fd);
  close_fd(err_fd);
  if (r.timed_out) {
    ::kill(pid, SIGKILL);
    if (r.error.empty()) r.error = "timed out after " + std::to_string(timeout_ms) + " ms and was killed";
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
    if (r.exit_code != 0 && r.error.empty()) r.error = "exited with status " + std::to_string(r.exit_code);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
    if (r.error.empty()) r.error = std::string("killed by signal ") + strsignal(r.signal);
  }
  return r;
}

}  // namespace feos::gpucheck
