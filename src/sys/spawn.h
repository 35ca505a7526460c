#pragma once
// fork() with a report pipe: a child tells its parent which step failed before it could exec (or
// instead of exec'ing), with errno, and the parent knows before it goes on. The pipe is
// close-on-exec, so a successful exec reads as "no report". Written once for every place that
// forks: the process launcher, the access probe and feos-gpu-check's command runner.
#include <functional>
#include <optional>
#include <string_view>

#include "common/error.h"

namespace feos::sys {

// What a child reports about its failed step.
struct SpawnFailure {
  int step = 0;        // the caller's own numbering of the child's steps
  int err = 0;         // errno of the failed call
  char call[32] = {};  // the failed call's name when a step makes several ("setgroups"), else ""
};

// Handed to the child: fail() sends one report to the parent and ends the child.
class ChildReporter {
 public:
  explicit ChildReporter(int fd) : fd_(fd) {}
  // Reports `step`, `err` and `call` (cut to 31 characters), then _exit(127). Async-signal-safe.
  [[noreturn]] void fail(int step, int err, const char* call = "") const;

 private:
  int fd_;
};

struct Spawned {
  int pid = -1;
  // Set when the child reported a failure; the child has been reaped then. Otherwise the child
  // exec'd or exited, and waiting for it is the caller's business.
  std::optional<SpawnFailure> failure;
};

// Forks and runs `child(reporter)` in the new process. The parent may have threads, so `child`
// makes async-signal-safe calls only (dup2, setrlimit, become_user, execv, ...). It ends by an
// exec, by reporter.fail(), or by returning, which ends the child with _exit(0). Returns once the
// child exec'd, exited or reported. INTERNAL "pipe: <errno text>" or "<fork_what>: <errno text>"
// when no child could be started (`fork_what` says what the child was for, "fork" by default).
Result<Spawned> spawn_with_report(const std::function<void(const ChildReporter&)>& child,
                                  std::string_view fork_what = "fork");

}  // namespace feos::sys
