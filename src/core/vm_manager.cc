#include "core/vm_manager.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "common/log.h"
#include "core/vm_config.h"

namespace feos::core {
namespace {

using model::VmState;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

auto logger() {
  static auto l = log::get("vm");
  return l;
}

Error not_found(const std::string& id) { return Error{Code::kNotFound, "vm " + id + " not found"}; }

// Prefix of state_reason that marks a shutdown the client asked for; recover() reads it to tell a
// guest power-off during a daemon outage from a crash.
constexpr std::string_view kShutdownRequested = "shutdown requested";

}  // namespace

// Clears the busy mark when an operation leaves its scope, whatever path it takes.
class VmManager::BusyGuard {
 public:
  BusyGuard(VmManager& manager, std::string id) : manager_(manager), id_(std::move(id)) {}
  ~BusyGuard() { manager_.finish(id_); }
  BusyGuard(const BusyGuard&) = delete;
  BusyGuard& operator=(const BusyGuard&) = delete;

 private:
  VmManager& manager_;
  std::string id_;
};

VmManager::VmManager(store::Database& db, vmm::Hypervisor& hypervisor, EventBus& bus,
                     std::string runtime_root)
    : db_(db), hypervisor_(hypervisor), bus_(bus), runtime_root_(std::move(runtime_root)) {
  hypervisor_.set_exit_callback(
      [this](const std::string& id, const vmm::ExitInfo& info) { on_exit(id, info); });
}

VmManager::~VmManager() { hypervisor_.set_exit_callback(nullptr); }

std::string VmManager::runtime_dir(const std::string& id) const { return runtime_root_ + "/" + id; }

Status VmManager::recover() {
  auto records = db_.list_vms();
  if (!records) return fail(records.error().context("load vms"));
  std::lock_guard lock(mutex_);
  for (auto& record : *records) {
    std::string id = record.id;
    Entry& entry = vms_[id];
    entry.record = std::move(record);
    VmState state = entry.record.state;
    if (state != VmState::kRunning && state != VmState::kPaused) continue;
    int pid = entry.record.pid;
    auto adopted = pid > 0 ? hypervisor_.adopt(id, pid, runtime_dir(id))
                           : Result<VmState>(fail(Code::kNotFound, "no pid recorded"));
    if (adopted) {
      logger()->info("adopted vm={} pid={} state={}", id, pid, model::state_name(*adopted));
      if (*adopted != state)
        FEOS_TRY(set_state_locked(entry, *adopted, "state read from the hypervisor after a feosd restart", pid));
      continue;
    }
    bool asked = entry.record.state_reason.starts_with(kShutdownRequested);
    std::string reason = "hypervisor process " + std::to_string(pid) +
                         " ended while feosd was not running (" + adopted.error().message + ")";
    logger()->warn("vm={} pid={} not adoptable: {}", id, pid, adopted.error().message);
    FEOS_TRY(set_state_locked(entry, asked ? VmState::kStopped : VmState::kCrashed,
                              asked ? "guest powered off after the requested shutdown, while feosd "
                                      "was not running"
                                    : reason,
                              0));
  }
  logger()->info("recovered vms={}", vms_.size());
  return ok();
}

Result<std::string> VmManager::create(model::VmSpec spec, std::optional<std::string> id) {
  std::string vm_id = id ? *id : new_vm_id();
  FEOS_TRY(validate_vm_id(vm_id));
  auto normalized = normalize_spec(std::move(spec));
  if (!normalized) return fail(normalized.error());
  if (auto valid = hypervisor_.validate(*normalized); !valid)
    return fail(valid.error().context("vm " + vm_id));

  std::lock_guard lock(mutex_);
  if (vms_.count(vm_id)) return fail(Code::kAlreadyExists, "vm " + vm_id + " already exists");
  model::VmRecord record;
  record.id = vm_id;
  record.spec = std::move(*normalized);
  record.state = VmState::kCreated;
  record.state_reason = "created";
  record.created_unix_ms = record.updated_unix_ms = now_ms();
  FEOS_TRY(db_.insert_vm(record));
  Entry& entry = vms_[vm_id];
  entry.record = record;
  model::VmEvent event{0, vm_id, "vm", VmState::kCreated, "created", record.created_unix_ms};
  if (auto event_id = db_.append_event(event)) {
    event.id = *event_id;
    bus_.publish(event);
  } else {
    logger()->error("vm={} event not stored: {}", vm_id, event_id.error().to_string());
  }
  logger()->info("created vm={}", vm_id);
  return vm_id;
}

Result<VmManager::Entry*> VmManager::begin_locked(const std::string& id, Action action) {
  auto it = vms_.find(id);
  if (it == vms_.end()) return fail(not_found(id));
  Entry& entry = it->second;
  if (entry.busy)
    return fail(Code::kFailedPrecondition, "vm " + id + " is busy: " +
                                               std::string(action_name(*entry.busy)) +
                                               " in progress");
  FEOS_TRY(check_action(id, entry.record.state, action));
  entry.busy = action;
  return &entry;
}

void VmManager::finish(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = vms_.find(id);
  if (it == vms_.end()) return;
  Entry& entry = it->second;
  entry.busy.reset();
  if (entry.pending_exit) {
    vmm::ExitInfo info = std::move(*entry.pending_exit);
    entry.pending_exit.reset();
    apply_exit_locked(entry, info);
  }
}

Status VmManager::set_state_locked(Entry& entry, VmState state, std::string reason, int pid) {
  int64_t now = now_ms();
  FEOS_TRY(db_.update_vm_state(entry.record.id, state, reason, pid, now));
  VmState old = entry.record.state;
  entry.record.state = state;
  entry.record.state_reason = reason;
  entry.record.pid = pid;
  entry.record.updated_unix_ms = now;
  if (old == state) return ok();
  logger()->info("state change vm={} from={} to={} reason=\"{}\"", entry.record.id,
                 model::state_name(old), model::state_name(state), reason);
  model::VmEvent event{0, entry.record.id, "vm", state, std::move(reason), now};
  auto event_id = db_.append_event(event);
  if (!event_id) return fail(event_id.error().context("store event"));
  event.id = *event_id;
  bus_.publish(event);
  return ok();
}

Status VmManager::start(const std::string& id) {
  model::VmSpec spec;
  {
    std::lock_guard lock(mutex_);
    auto entry = begin_locked(id, Action::kStart);
    if (!entry) return fail(entry.error());
    spec = (*entry)->record.spec;
  }
  BusyGuard guard(*this, id);
  std::error_code ec;
  std::filesystem::create_directories(runtime_dir(id), ec);
  if (ec) return fail(Code::kInternal, "vm " + id + ": create " + runtime_dir(id) + ": " + ec.message());
  auto pid = hypervisor_.start(id, spec, runtime_dir(id));

  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  if (!pid) {
    // Keep the VM's state: nothing runs. The reason tells the client what failed.
    (void)set_state_locked(entry, entry.record.state, "start failed: " + pid.error().message, 0);
    return fail(pid.error().context("start vm " + id));
  }
  entry.pending_exit.reset();  // an exit seen during start belongs to an earlier process
  return set_state_locked(entry, VmState::kRunning, "started", *pid);
}

Status VmManager::pause(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    auto entry = begin_locked(id, Action::kPause);
    if (!entry) return fail(entry.error());
  }
  BusyGuard guard(*this, id);
  FEOS_TRY(hypervisor_.pause(id));
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  return set_state_locked(entry, VmState::kPaused, "paused by request", entry.record.pid);
}

Status VmManager::resume(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    auto entry = begin_locked(id, Action::kResume);
    if (!entry) return fail(entry.error());
  }
  BusyGuard guard(*this, id);
  FEOS_TRY(hypervisor_.resume(id));
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  return set_state_locked(entry, VmState::kRunning, "resumed by request", entry.record.pid);
}

Status VmManager::shutdown(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    auto entry = begin_locked(id, Action::kShutdown);
    if (!entry) return fail(entry.error());
  }
  BusyGuard guard(*this, id);
  FEOS_TRY(hypervisor_.request_shutdown(id));
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  // Same state; the reason records the request so a power-off is not mistaken for a crash.
  return set_state_locked(entry, entry.record.state,
                          std::string(kShutdownRequested) + " (ACPI power button)", entry.record.pid);
}

Status VmManager::remove(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    auto entry = begin_locked(id, Action::kDelete);
    if (!entry) return fail(entry.error());
  }
  BusyGuard guard(*this, id);
  FEOS_TRY(hypervisor_.stop(id));
  std::lock_guard lock(mutex_);
  FEOS_TRY(db_.remove_vm(id));
  vms_.erase(id);
  std::error_code ec;
  std::filesystem::remove_all(runtime_dir(id), ec);
  if (ec) logger()->warn("vm={} runtime dir not removed: {}", id, ec.message());
  logger()->info("deleted vm={}", id);
  return ok();
}

void VmManager::apply_exit_locked(Entry& entry, const vmm::ExitInfo& info) {
  VmState state = entry.record.state;
  if (state != VmState::kRunning && state != VmState::kPaused) return;
  auto stored = set_state_locked(entry, info.clean ? VmState::kStopped : VmState::kCrashed,
                                 info.reason, 0);
  if (!stored) logger()->error("vm={} exit not stored: {}", entry.record.id, stored.error().to_string());
}

void VmManager::on_exit(const std::string& id, const vmm::ExitInfo& info) {
  std::lock_guard lock(mutex_);
  auto it = vms_.find(id);
  if (it == vms_.end()) return;
  Entry& entry = it->second;
  if (entry.busy) {
    // A delete or start in progress owns the outcome; others apply it when they finish.
    entry.pending_exit = info;
    return;
  }
  apply_exit_locked(entry, info);
}

Result<model::VmRecord> VmManager::get(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = vms_.find(id);
  if (it == vms_.end()) return fail(not_found(id));
  return it->second.record;
}

std::vector<model::VmRecord> VmManager::list() const {
  std::lock_guard lock(mutex_);
  std::vector<model::VmRecord> out;
  out.reserve(vms_.size());
  for (const auto& [id, entry] : vms_) out.push_back(entry.record);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.created_unix_ms != b.created_unix_ms ? a.created_unix_ms < b.created_unix_ms : a.id < b.id;
  });
  return out;
}

Result<vmm::PingInfo> VmManager::ping(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    auto it = vms_.find(id);
    if (it == vms_.end()) return fail(not_found(id));
    FEOS_TRY(check_action(id, it->second.record.state, Action::kPing));
  }
  return hypervisor_.ping(id);
}

Result<std::shared_ptr<vmm::Console>> VmManager::console(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    auto it = vms_.find(id);
    if (it == vms_.end()) return fail(not_found(id));
    FEOS_TRY(check_action(id, it->second.record.state, Action::kConsole));
  }
  return hypervisor_.console(id);
}

Result<std::vector<model::VmEvent>> VmManager::history(const store::EventFilter& filter) const {
  if (filter.vm_id) {
    std::lock_guard lock(mutex_);
    if (!vms_.count(*filter.vm_id)) return fail(not_found(*filter.vm_id));
  }
  return db_.query_events(filter);
}

}  // namespace feos::core
