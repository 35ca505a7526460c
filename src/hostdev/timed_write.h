#pragma once
// A sysfs write with a deadline. Kernel drivers can block an `unbind` (or a bind) for as long as
// they like (the NVIDIA driver waits for its clients, a wedged device never answers), and a thread
// stuck in write(2) cannot be interrupted. So the write runs on a helper thread; when the deadline
// passes the caller gets DEADLINE_EXCEEDED and the helper is DETACHED: it stays blocked in the
// kernel until the write returns (then it exits quietly; its result only goes to the log). The
// Filesystem must therefore outlive every write started here (the real one lives as long as the
// process; tests' fake kernel fails and drains blocked writes when it is destroyed).
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "sys/filesystem.h"

namespace feos::hostdev {

// What the caller wants to know about a write that outlived its deadline: the device's state is
// unknown until it returns (a late unbind still detaches the device).
struct LateWriteHooks {
  // Called once, before timed_write() returns DEADLINE_EXCEEDED.
  std::function<void()> abandoned;
  // Called once from the writing thread when the abandoned write finally returns (always after
  // `abandoned`), with its result.
  std::function<void(const Status&)> returned;
};

// Writes `value` to `path` through `fs` and waits at most `timeout` for the write to return.
// `what` names the operation in messages and logs ("0000:18:00.0: unbind from nvidia").
// Errors: the filesystem's error prefixed with `what`; DEADLINE_EXCEEDED "<what>: write of
// '<value>' to <path> did not return within <timeout> ms (the kernel is still blocked in it; the
// writing thread was left behind)".
Status timed_write(sys::Filesystem& fs, const std::string& path, std::string_view value,
                   const std::string& what, std::chrono::milliseconds timeout,
                   LateWriteHooks hooks = {});

}  // namespace feos::hostdev
