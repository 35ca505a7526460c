// VmManager::recover(): what a starting daemon finds and makes consistent before it serves (see
// vm_manager.h). Kept apart from the request paths: it runs once, holds the lock throughout, and
// is where records, runtime directories, live processes and the device ledger are reconciled.
#include <algorithm>
#include <filesystem>
#include <map>
#include <system_error>

#include "common/log.h"
#include "core/vm_config.h"
#include "core/vm_manager.h"
#include "core/vm_manager_detail.h"

namespace feos::core {
namespace {

using model::VmState;
using detail::kShutdownRequested;
using detail::kStarting;

auto logger() {
  static auto l = log::get("vm");
  return l;
}

// How often recovery tries to attach to a live process whose control socket does not answer.
constexpr int kAdoptAttempts = 3;

}  // namespace

Status VmManager::recover(const RecoverOptions& options) {
  auto records = db_.vms().list();
  if (!records) return fail(records.error().context("load vms"));
  // Every live process of our VMs, whatever the records say (a start cut short leaves one that
  // no record names); then what the database does not know at all.
  auto found = hypervisor_.find_processes(runtime_root_);
  {
    std::lock_guard lock(mutex_);
    for (auto& record : *records) {
      std::string id = record.id;
      Entry& entry = vms_[id];
      entry.record = std::move(record);
      entry.stored_bytes = stored_size(entry.record);
    }
    rename_legacy_runtime_dirs_locked();
  }
  std::set<std::string> discarded;
  FEOS_TRY(handle_unknown_vms(found, options, discarded));
  remove_unknown_image_disks(discarded);

  std::set<std::string> keepers;
  std::lock_guard lock(mutex_);
  std::map<std::string, std::vector<int>> live;
  for (const auto& process : found)
    if (auto key = record_key_locked(process.vm_id)) live[*key].push_back(process.pid);
  for (auto& [id, entry] : vms_) {
    std::vector<int> pids = live[id];
    VmState state = entry.record.state;
    int recorded = entry.record.pid;
    // The recorded pid first: it is the process the VM ran with.
    if (recorded > 0 && (state == VmState::kRunning || state == VmState::kPaused)) {
      pids.erase(std::remove(pids.begin(), pids.end(), recorded), pids.end());
      pids.insert(pids.begin(), recorded);
    }
    FEOS_TRY(recover_entry_locked(entry, pids));
    // A VM in a state that holds devices keeps them: a running or paused guest uses them; a
    // created VM only if it still has them (a start that failed before the restart gave them back
    // and left none recorded).
    const bool keeps = entry.record.state == VmState::kCreated ? !entry.record.gpus.empty()
                                                               : holds_devices_in(entry.record.state);
    if (!entry.record.spec.gpus.empty() && keeps) {
      keepers.insert(id);
      entry.holds_devices = true;
    }
  }
  if (devices_) {
    // Devices of VMs that no longer run (or of creates cut short by a crash) go back to the host.
    auto report = devices_->reconcile(keepers);
    if (!report) return fail(report.error().context("reconcile device ledger"));
    logger()->info("device ledger reconciled kept={} released={} failed={} unowned_vfio={}", report->kept.size(),
                   report->released.size(), report->failed.size(), report->unowned_vfio.size());
    for (const auto& f : report->failed) logger()->error("device not returned to the host: {}", f);
    for (const auto& u : report->unowned_vfio) logger()->warn("on vfio-pci without a ledger row (left alone): {}", u);
  }
  // A shutdown asked for before the restart still ends: its grace starts again now.
  for (auto& [id, entry] : vms_) {
    const bool up = entry.record.state == VmState::kRunning || entry.record.state == VmState::kPaused;
    if (!up || !entry.record.state_reason.starts_with(kShutdownRequested)) continue;
    arm_shutdown_locked(entry, shutdown_options_.grace);
    if (auto emitted = emit_locked(entry, "vm", "shutdown requested before feosd restarted: forced off in " +
                                                    detail::seconds_text(shutdown_options_.grace) +
                                                    " unless the guest powers off");
        !emitted)
      logger()->error("vm={} event not stored: {}", id, emitted.error().to_string());
  }
  logger()->info("recovered vms={}", vms_.size());
  return ok();
}

std::optional<std::string> VmManager::record_key_locked(std::string_view name) const {
  if (vms_.count(std::string(name))) return std::string(name);
  auto id = model::VmId::parse(name);
  if (id && vms_.count(id->canonical().text())) return id->canonical().text();
  return std::nullopt;
}

void VmManager::rename_legacy_runtime_dirs_locked() {
  std::error_code ec;
  for (const auto& dir : std::filesystem::directory_iterator(runtime_root_, ec)) {
    std::string name = dir.path().filename().string();
    auto key = record_key_locked(name);
    if (!key || *key == name) continue;
    // A live qemu keeps working: its sockets and pidfile move with the directory.
    std::string to = runtime_root_ + "/" + *key;
    std::error_code renamed;
    if (std::filesystem::exists(to, renamed)) continue;
    std::filesystem::rename(dir.path(), to, renamed);
    if (renamed)
      logger()->warn("runtime dir of vm={} not renamed from {}: {}", *key, name, renamed.message());
    else
      logger()->info("runtime dir of vm={} renamed from its old spelling {}", *key, name);
  }
}

Status VmManager::handle_unknown_vms(const std::vector<vmm::FoundProcess>& found, const RecoverOptions& options,
                                     std::set<std::string>& discarded) {
  std::map<std::string, std::string> unknown;  // name -> what shows it
  {
    std::lock_guard lock(mutex_);
    std::error_code ec;
    for (const auto& dir : std::filesystem::directory_iterator(runtime_root_, ec)) {
      std::string name = dir.path().filename().string();
      if (!record_key_locked(name)) unknown[name] = "runtime directory " + dir.path().string();
    }
    for (const auto& process : found) {
      if (record_key_locked(process.vm_id)) continue;
      std::string& what = unknown[process.vm_id];
      what += (what.empty() ? "" : ", ") + std::string("live qemu pid ") + std::to_string(process.pid);
    }
  }
  if (unknown.empty()) return ok();
  std::string list;
  for (const auto& [id, what] : unknown) list += (list.empty() ? "" : "; ") + quote_for_message(id) + ": " + what;
  if (!options.discard_unknown_vms)
    return fail(Code::kFailedPrecondition,
                std::to_string(unknown.size()) + " VM(s) in " + runtime_root_ + " are unknown to the database " +
                    db_.path() + " (" + list +
                    "). The database may have been lost, truncated or replaced: stop feosd and restore it "
                    "(with its -wal file) from a backup; or, to kill these VMs' processes and move their "
                    "runtime directories to " + runtime_root_ + ".discarded/, start feosd once with "
                    "--discard-unknown-vms. Their GPUs stay on vfio-pci, reported by the host check");
  // The operator asked for it: nothing of these VMs keeps running, their files are kept aside.
  for (const auto& process : found) {
    if (!unknown.count(process.vm_id)) continue;
    if (auto killed = hypervisor_.kill_found(process.vm_id, process.pid); !killed)
      return fail(killed.error().context("discard unknown vm " + process.vm_id));
  }
  std::error_code ec;
  std::filesystem::create_directories(runtime_root_ + ".discarded", ec);
  for (const auto& [id, what] : unknown) {
    std::string from = runtime_root_ + "/" + id;
    if (!std::filesystem::exists(from, ec)) continue;
    std::string to = runtime_root_ + ".discarded/" + id + "-" + std::to_string(detail::now_ms());
    std::filesystem::rename(from, to, ec);
    if (ec) return fail(Code::kInternal, "discard unknown vm: move " + from + " to " + to + ": " + ec.message());
  }
  for (const auto& [name, what] : unknown) {
    auto id = model::VmId::parse(name);
    discarded.insert(id ? id->canonical().text() : name);
  }
  logger()->warn("discarded VMs unknown to the database ({}): {}", unknown.size(), list);
  return ok();
}

void VmManager::remove_unknown_image_disks(const std::set<std::string>& discarded) {
  if (!images_) return;
  std::set<std::string> known;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, entry] : vms_) known.insert(id);
  }
  // A create cut short after the VM got its disk and before it was recorded leaves the disk, which
  // would pin its image forever; a discarded VM's disk is moved aside with its runtime directory.
  auto handled = images_->remove_unknown_vms(known, discarded);
  if (!handled) logger()->error("disks of VMs unknown to the database not checked: {}", handled.error().message);
  else if (!handled->empty())
    logger()->warn("image disks of {} VM(s) unknown to the database removed or set aside", handled->size());
}

Result<vmm::RunState> VmManager::adopt_with_retries(const std::string& id, int pid) {
  Result<vmm::RunState> adopted = fail(Code::kNotFound, "not tried");
  for (int attempt = 1; attempt <= kAdoptAttempts; ++attempt) {
    adopted = hypervisor_.adopt(id, pid, runtime_dir(id));
    if (adopted || adopted.error().code == Code::kNotFound) break;  // attached, or gone / not ours
    logger()->warn("vm={} pid={} not attached (attempt {} of {}): {}", id, pid, attempt, kAdoptAttempts,
                   adopted.error().message);
  }
  return adopted;
}

Status VmManager::recover_entry_locked(Entry& entry, const std::vector<int>& live) {
  const std::string id = entry.record.id;
  const VmState state = entry.record.state;
  const bool was_starting = entry.record.state_reason == kStarting;
  const bool was_up = state == VmState::kRunning || state == VmState::kPaused;
  // One process is the VM's; any other (a qemu doubled by an older feosd) must not run beside it.
  int adopted_pid = 0;
  std::optional<vmm::RunState> run_state;
  std::string lost;  // why the VM's process is no more, when none was adopted
  for (int pid : live) {
    if (adopted_pid != 0) {
      logger()->warn("vm={} pid={}: a second process of the VM; stopping it", id, pid);
      if (auto killed = hypervisor_.kill_found(id, pid); !killed)
        logger()->error("vm={} pid={} not stopped: {}", id, pid, killed.error().message);
      continue;
    }
    auto adopted = adopt_with_retries(id, pid);
    if (adopted) {
      adopted_pid = pid;
      run_state = *adopted;
      continue;
    }
    logger()->warn("vm={} pid={} not adoptable: {}", id, pid, adopted.error().message);
    if (adopted.error().code == Code::kNotFound) {
      lost = "hypervisor process " + std::to_string(pid) + " ended while feosd was not running (" +
             adopted.error().message + ")";
      continue;
    }
    // Alive but unreachable: it could not be paused, stopped or given its GPUs back, so it must
    // not run on beside a VM we consider stopped.
    lost = "its qemu (pid " + std::to_string(pid) + ") could not be attached after a feosd restart (" +
           adopted.error().message + ") and was stopped";
    if (auto killed = hypervisor_.kill_found(id, pid); !killed)
      logger()->error("vm={} pid={} not stopped: {}", id, pid, killed.error().message);
  }

  if (run_state && *run_state != vmm::RunState::kNotStarted) {
    auto event = *run_state == vmm::RunState::kRunning ? LifecycleEvent::kAdoptedRunning : LifecycleEvent::kAdoptedPaused;
    VmState now = transition(state, event)->to;
    logger()->info("adopted vm={} pid={} state={}", id, adopted_pid, model::state_name(now));
    if (now != state || was_starting || entry.record.pid != adopted_pid)
      FEOS_TRY(apply_locked(entry, event, "adopted after a feosd restart", adopted_pid));
    return ok();
  }
  if (run_state) {
    // Launched, never resumed: the start it belonged to was cut short and its client got no
    // answer. Nothing of the guest ran; stop it, and the table says what the VM becomes.
    logger()->warn("vm={} pid={} start was cut short by a feosd restart; stopping its qemu", id, adopted_pid);
    FEOS_TRY(hypervisor_.stop(id).map_error([&](const Error& e) { return e.context("stop vm " + id); }));
    FEOS_TRY(apply_locked(entry, LifecycleEvent::kStartCutShort,
                          "start interrupted by a feosd restart; its qemu (pid " + std::to_string(adopted_pid) +
                              ") was stopped",
                          0));
    return ok();
  }
  if (was_up) {
    bool asked = entry.record.state_reason.starts_with(kShutdownRequested);
    if (asked)
      FEOS_TRY(apply_locked(entry, LifecycleEvent::kPoweredOffWhileDown,
                            "guest powered off after the requested shutdown, while feosd was not running", 0));
    else
      FEOS_TRY(apply_locked(entry, LifecycleEvent::kLostWhileDown,
                            lost.empty() ? "hypervisor process ended while feosd was not running" : lost, 0));
    return ok();
  }
  // A create whose background part a restart cut short is failed, not resumed: its client was
  // told "creating" and watches for the outcome; the pull may have been half done and the GPUs
  // half bound. Crashed (FeOS's state for a failed create) gives the devices back (reconcile
  // below); DeleteVm releases its image and the client creates it again.
  if (state == VmState::kCreating)
    return apply_locked(entry, LifecycleEvent::kCreateCutShort,
                        "create failed: feosd restarted before the VM was created (image pull or GPU binding "
                        "cut short); delete it and create it again",
                        0)
        .map([](DeviceHold) {});
  // A start cut short before anything ran: only the reason changes.
  if (was_starting) return record_state_locked(entry, state, "start interrupted by a feosd restart", 0);
  return ok();
}

}  // namespace feos::core
