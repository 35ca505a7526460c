#include "cli/console_command.h"

#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "cli/format.h"
#include "cli/output.h"
#include "cli/terminal.h"
#include "cli/watch.h"
#include "sys/waker.h"

namespace feos::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Writes all of `data` to fd 1 (raw console output). False if stdout is gone.
bool write_stdout(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(STDOUT_FILENO, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

int run_console_command(v1::VMService::Stub& stub, const Invocation& inv) {
  const ConsoleOptions& opts = inv.console;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StreamVmConsoleRequest, v1::StreamVmConsoleResponse>>
      stream = stub.StreamVmConsole(&context);

  // A failed Write means the call is over; Finish() tells why (e.g. NOT_FOUND).
  auto finish_with_error = [&]() { return report(stream->Finish()); };
  v1::StreamVmConsoleRequest attach;
  attach.mutable_attach()->set_vm_id(inv.vm_id);
  if (!stream->Write(attach)) return finish_with_error();
  if (opts.send) {
    v1::StreamVmConsoleRequest data;
    data.mutable_data()->set_input(*opts.send + "\n");
    if (!stream->Write(data)) return finish_with_error();
  }

  // The reader thread copies output to stdout and watches for --until; it wakes this thread, which
  // reads stdin and keeps the deadlines.
  Result<sys::Waker> waker = sys::Waker::create();
  if (!waker) return print_error(waker.error(), kExitServerError);
  std::atomic<bool> matched{false};
  std::atomic<bool> ended{false};
  std::atomic<int64_t> last_output_ticks{Clock::now().time_since_epoch().count()};
  std::thread pump([&] {
    std::optional<TextMatcher> matcher;
    if (opts.until) matcher.emplace(*opts.until);
    bool stdout_ok = true;
    v1::StreamVmConsoleResponse chunk;
    while (stream->Read(&chunk)) {
      if (matched) continue;  // drain until our cancel ends the stream
      if (stdout_ok) stdout_ok = write_stdout(chunk.output());
      last_output_ticks = Clock::now().time_since_epoch().count();
      if (matcher && matcher->feed(chunk.output())) {
        matched = true;
        waker->wake();
      }
    }
    ended = true;
    waker->wake();
  });

  const bool interactive = opts.interactive();
  const bool tty = interactive && ::isatty(STDIN_FILENO) == 1;
  std::optional<RawTerminal> raw;
  if (tty) {
    std::cerr << "Attached to the console of vm " << inv.vm_id << "; Ctrl-] detaches."
              << std::endl;
    auto entered = RawTerminal::enter(STDIN_FILENO);
    if (entered) raw.emplace(std::move(*entered));
  }

  const Clock::time_point start = Clock::now();
  // time_point::max() when there is no --wait.
  const Clock::time_point wait_deadline =
      opts.wait_s ? start + to_duration(*opts.wait_s) : Clock::time_point::max();
  // --send alone: nothing to wait for but the echo; detach once the output went quiet.
  const bool detach_when_quiet = opts.send && !opts.until;
  const auto idle = std::chrono::milliseconds(opts.idle_ms);
  auto quiet_since = [&] { return Clock::time_point(Clock::duration(last_output_ticks.load())); };
  bool stdin_open = interactive;
  std::optional<int> rc;  // set when this side ends the session

  while (!rc && !ended) {
    if (matched) {
      rc = kExitOk;
      break;
    }
    Clock::time_point deadline = wait_deadline;
    if (detach_when_quiet) deadline = std::min(deadline, quiet_since() + idle);
    int timeout_ms = -1;
    if (deadline != Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, 60'000));
    }
    pollfd fds[2] = {{waker->fd(), POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    int n = ::poll(fds, stdin_open ? 2 : 1, timeout_ms);
    if (n < 0 && errno != EINTR) {
      rc = print_error("INTERNAL", std::string("poll: ") + std::strerror(errno), kExitServerError);
      break;
    }
    if (n > 0 && (fds[0].revents & POLLIN)) {
      waker->drain();
      continue;  // re-check matched / ended
    }
    if (n > 0 && stdin_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buffer[4096];
      ssize_t got = ::read(STDIN_FILENO, buffer, sizeof buffer);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        stdin_open = false;  // EOF: keep showing output; the server or --wait ends the session
        stream->WritesDone();
        continue;
      }
      std::string_view input(buffer, static_cast<size_t>(got));
      bool detach = false;
      if (tty) {
        if (size_t pos = input.find(kDetachKey); pos != std::string_view::npos) {
          input = input.substr(0, pos);
          detach = true;
        }
      }
      if (!input.empty()) {
        v1::StreamVmConsoleRequest data;
        data.mutable_data()->set_input(std::string(input));
        if (!stream->Write(data)) stdin_open = false;  // stream broken: the reader sees the end
      }
      if (detach) rc = kExitOk;
      continue;
    }
    const Clock::time_point now = Clock::now();
    if (now >= wait_deadline) {
      rc = opts.until
               ? print_error("DEADLINE_EXCEEDED",
                             "timed out waiting for '" + *opts.until + "' on the console of vm " +
                                 inv.vm_id + " after " + format_seconds(*opts.wait_s),
                             kExitServerError)
               : kExitOk;
    } else if (detach_when_quiet && now >= quiet_since() + idle) {
      rc = kExitOk;
    }
  }
  raw.reset();  // restore the terminal before anything else is printed
  if (tty) std::cerr << std::endl;
  if (matched && !rc) rc = kExitOk;

  if (rc) {
    context.TryCancel();
    pump.join();
    stream->Finish();  // CANCELLED by us: not an error
    return *rc;
  }
  pump.join();
  grpc::Status status = stream->Finish();
  if (!status.ok()) return report(status);
  if (opts.until) {
    return print_error(
        "ABORTED", "console of vm " + inv.vm_id + " closed before '" + *opts.until + "' appeared",
        kExitServerError);
  }
  return kExitOk;
}

}  // namespace feos::cli
