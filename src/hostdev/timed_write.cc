#include "hostdev/timed_write.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "common/log.h"

namespace feos::hostdev {
namespace {

// Shared by the caller and the writing thread; the thread keeps it alive after a timeout.
struct WriteState {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool abandoned = false;  // the caller gave up waiting
  Status result;
};

}  // namespace

Status timed_write(sys::Filesystem& fs, const std::string& path, std::string_view value,
                   const std::string& what, std::chrono::milliseconds timeout,
                   LateWriteHooks hooks) {
  auto logger = log::get("hostdev");
  logger->debug("sysfs write path={} value={} op=\"{}\"", path, quote_for_message(value),
                what);
  auto state = std::make_shared<WriteState>();
  std::thread writer([&fs, state, path, data = std::string(value), what,
                      returned = std::move(hooks.returned)] {
    Status result = fs.write_file(path, data);
    bool late = false;
    {
      std::lock_guard lock(state->mu);
      state->done = true;
      state->result = result;
      late = state->abandoned;
      state->cv.notify_all();
    }
    if (late) {
      // Nobody waits any more: the outcome of a write that outlived its deadline goes to the log
      // and to whoever asked to hear of it.
      log::get("hostdev")->warn("late sysfs write returned path={} op=\"{}\" result=\"{}\"", path,
                                what, result ? "ok" : result.error().to_string());
      if (returned) returned(result);
    }
  });
  std::unique_lock lock(state->mu);
  if (!state->cv.wait_for(lock, timeout, [&] { return state->done; })) {
    state->abandoned = true;
    // Still under the lock: the writer cannot report the late return before this ran.
    if (hooks.abandoned) hooks.abandoned();
    lock.unlock();
    writer.detach();  // blocked in the kernel; see the header
    logger->error("sysfs write timed out path={} op=\"{}\" timeout_ms={}", path, what,
                  timeout.count());
    return fail(Code::kDeadlineExceeded,
                what + ": write of " + quote_for_message(value) + " to " + path +
                    " did not return within " + std::to_string(timeout.count()) +
                    " ms (the kernel is still blocked in it; the writing thread was left behind)");
  }
  Status result = std::move(state->result);
  lock.unlock();
  writer.join();
  if (!result) return fail(result.error().context(what));
  return ok();
}

}  // namespace feos::hostdev
