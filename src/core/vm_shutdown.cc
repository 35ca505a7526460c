// VmManager::shutdown() and what makes it always end (see vm_manager.h): the ACPI power button is
// only a request, and one pressed before the guest listens is lost. So a watcher thread per
// shutdown presses it again while the guest runs, and powers the VM off when the grace is over.
#include <algorithm>

#include "common/log.h"
#include "core/vm_manager.h"
#include "core/vm_manager_detail.h"

namespace feos::core {
namespace {

using model::VmState;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using detail::seconds_text;

auto logger() {
  static auto l = log::get("vm");
  return l;
}

std::string presses_text(int presses) {
  return std::to_string(presses) + (presses == 1 ? " press" : " presses") + " of the ACPI power button";
}

bool up(VmState state) { return state == VmState::kRunning || state == VmState::kPaused; }

}  // namespace

// recover() re-arms the grace by the marker, and tells a power-off while feosd was down from a
// crash by it; so a pause during the grace must not overwrite it.
std::string detail::keep_shutdown_marker(const model::VmRecord& record, VmState state, std::string reason) {
  if (!up(record.state) || !up(state) || !record.state_reason.starts_with(kShutdownRequested) ||
      reason.starts_with(kShutdownRequested))
    return reason;
  return std::string(kShutdownRequested) + "; " + reason;
}

Status VmManager::shutdown(const model::VmId& request_id, std::optional<std::chrono::seconds> requested_grace) {
  if (requested_grace && *requested_grace > kMaxShutdownGrace)
    return fail(Code::kInvalidArgument, "grace_seconds " + std::to_string(requested_grace->count()) + ": at most " +
                                            std::to_string(kMaxShutdownGrace.count()));
  reap_watchers();
  const milliseconds grace = requested_grace ? milliseconds(*requested_grace) : shutdown_options_.grace;
  std::string id;
  {
    std::lock_guard lock(mutex_);
    FEOS_ASSIGN_OR_RETURN(Entry* entry, begin_job_locked(request_id, LifecycleEvent::kShutdown, JobKind::kShutdown));
    id = entry->record.id;
  }
  JobGuard guard(*this, id);
  Status pressed = hypervisor_.request_shutdown(id);
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  // The reason marks the request, so that a power-off while feosd is down is not taken for a crash.
  auto recorded = apply_locked(entry, LifecycleEvent::kShutdown,
                               std::string(detail::kShutdownRequested) + " (ACPI power button)", entry.record.pid);
  // The button was pressed: the grace holds even when the store could not record the request.
  arm_shutdown_locked(entry, grace);
  if (!recorded)
    return fail(recorded.error().context("shutdown requested but not recorded (the VM is still powered off "
                                         "when the grace ends)"));
  // What is left of the grace (an earlier request's deadline may be sooner), to a tenth of a second.
  const auto left = std::chrono::round<std::chrono::duration<int64_t, std::deci>>(entry.shutdown->deadline - Clock::now());
  const std::string deadline =
      "forced off in " + seconds_text(std::max(milliseconds(0), milliseconds(left))) + " unless the guest powers off";
  std::string what = pressed ? "shutdown requested: ACPI power button pressed; " + deadline
                             : "shutdown requested: ACPI power button not pressed (" + pressed.error().message +
                                   "); " + deadline;
  if (auto emitted = emit_locked(entry, "vm", std::move(what)); !emitted)
    logger()->error("vm={} event not stored: {}", id, emitted.error().to_string());
  return ok();
}

void VmManager::end_shutdown_watchers() {
  std::map<uint64_t, std::thread> watchers;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    watchers = std::move(watchers_);
  }
  shutdown_cv_.notify_all();
  for (auto& [serial, thread] : watchers) thread.join();
}

void VmManager::arm_shutdown_locked(Entry& entry, milliseconds grace) {
  const auto now = Clock::now();
  if (entry.shutdown) {
    // Pressed again by this request; the deadline a client was given first still holds.
    ++entry.shutdown->presses;
    entry.shutdown->deadline = std::min(entry.shutdown->deadline, now + grace);
    shutdown_cv_.notify_all();
    return;
  }
  const uint64_t serial = next_watcher_serial_++;
  entry.shutdown = PendingShutdown{serial, now, now + grace, grace, 1};
  watchers_.emplace(serial, std::thread([this, id = entry.record.id, serial] { watch_shutdown(id, serial); }));
}

void VmManager::watch_shutdown(const std::string& id, uint64_t serial) {
  std::unique_lock lock(mutex_);
  auto next_press = Clock::now() + shutdown_options_.repress;
  while (!stopping_) {
    auto it = vms_.find(id);
    if (it == vms_.end() || !it->second.shutdown || it->second.shutdown->serial != serial) break;
    Entry& entry = it->second;
    const auto now = Clock::now();
    if (now >= entry.shutdown->deadline) {
      if (entry.job) {
        // A delete, pause or resume in progress first; it may end the VM itself.
        shutdown_cv_.wait_for(lock, milliseconds(100));
        continue;
      }
      entry.job = Job{JobKind::kForceOff, std::nullopt};
      lock.unlock();
      force_off(id);
      lock.lock();
      break;
    }
    if (now >= next_press) {
      next_press = now + shutdown_options_.repress;
      // A paused guest cannot react; a job in progress owns the VM for now.
      if (entry.record.state == VmState::kRunning && !entry.job) {
        ++entry.shutdown->presses;
        lock.unlock();
        if (auto pressed = hypervisor_.request_shutdown(id); !pressed)
          logger()->debug("vm={} power button not pressed again: {}", id, pressed.error().message);
        lock.lock();
      }
      continue;
    }
    shutdown_cv_.wait_until(lock, std::min(next_press, entry.shutdown->deadline));
  }
  // Whatever ended it, the VM has no watcher now: a later request arms a new one.
  if (auto it = vms_.find(id); it != vms_.end() && it->second.shutdown && it->second.shutdown->serial == serial)
    it->second.shutdown.reset();
  watchers_done_.push_back(serial);
}

void VmManager::force_off(const std::string& id) {
  JobGuard guard(*this, id);
  std::string reason;
  {
    std::lock_guard lock(mutex_);
    const Entry& entry = vms_.at(id);  // our job keeps it: a delete meanwhile is ABORTED
    reason = "forced off after " + seconds_text(entry.shutdown->grace) + ": the guest did not power off after " +
             presses_text(entry.shutdown->presses);
  }
  logger()->warn("vm={} {}", id, reason);
  Status stopped = hypervisor_.stop(id);
  {
    std::lock_guard lock(mutex_);
    Entry& entry = vms_.at(id);
    if (!stopped) {
      // The watcher ends here: the VM stays as it is, with the failure in its events.
      entry.shutdown.reset();
      if (auto emitted = emit_locked(entry, "vm", "forced power-off failed: " + stopped.error().message); !emitted)
        logger()->error("vm={} event not stored: {}", id, emitted.error().to_string());
      return;
    }
    entry.job->pending_exit.reset();  // the stop we asked for
  }
  // The process is gone: the GPUs go back to the host, then the VM is stopped and the job ends.
  guard.dismiss();
  finish_exit(id, LifecycleEvent::kForcedOff, std::move(reason));
}

void VmManager::reap_watchers() {
  std::vector<std::thread> done;
  {
    std::lock_guard lock(mutex_);
    for (uint64_t serial : watchers_done_) {
      auto it = watchers_.find(serial);
      if (it == watchers_.end()) continue;
      done.push_back(std::move(it->second));
      watchers_.erase(it);
    }
    watchers_done_.clear();
  }
  for (auto& thread : done) thread.join();
}

std::string VmManager::exit_reason_locked(const Entry& entry, const vmm::ExitInfo& info) const {
  if (!entry.shutdown) return info.reason;
  const auto after = std::chrono::duration_cast<milliseconds>(Clock::now() - entry.shutdown->requested);
  return info.reason + " " + seconds_text(after, true) + " after the shutdown request (" +
         presses_text(entry.shutdown->presses) + ")";
}

}  // namespace feos::core
