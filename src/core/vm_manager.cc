#include "core/vm_manager.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <chrono>
#include <filesystem>
#include <system_error>
#include <utility>

#include "common/log.h"
#include "common/text.h"
#include "core/vm_config.h"
#include "core/vm_manager_detail.h"
#include "store/spec_codec.h"

namespace feos::core {
namespace {

using model::VmState;
using detail::holds_devices_in;
using detail::kShutdownRequested;
using detail::kStarting;
using detail::now_ms;

auto logger() {
  static auto l = log::get("vm");
  return l;
}

Error not_found(const std::string& id) { return Error{Code::kNotFound, "vm " + id + " not found"}; }

// "3.5 MiB", "64.0 KiB": one decimal, so that a total just over a limit does not read as equal.
std::string with_unit(uint64_t bytes) {
  char text[32];
  if (bytes >= 1024 * 1024)
    std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1024 * 1024));
  else
    std::snprintf(text, sizeof text, "%.1f KiB", static_cast<double>(bytes) / 1024);
  return text;
}

}  // namespace

uint64_t stored_size(const model::VmRecord& record) {
  // Compact JSON: what the store holds. Strings that are not UTF-8 never get stored; count them
  // at their length.
  auto spec = store::encode_spec(record.spec);
  uint64_t size = spec ? spec->size() : record.spec.ignition.value_or("").size() + 64 * 1024;
  if (record.gpus.empty()) {
    size += record.spec.gpus.size() * kResolvedGpuAllowance;
  } else {
    auto gpus = store::encode_assigned_gpus(record.gpus);
    size += gpus ? gpus->size() : record.gpus.size() * kResolvedGpuAllowance;
  }
  // The reason at its cap, the id, numbers and protobuf framing.
  return size + kMaxReasonBytes + 512;
}

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

VmManager::VmManager(store::Database& db, vmm::Hypervisor& hypervisor, hostdev::HostDevices* devices,
                     EventBus& bus, std::string runtime_root, VmLimits limits)
    : db_(db),
      hypervisor_(hypervisor),
      devices_(devices),
      bus_(bus),
      runtime_root_(std::move(runtime_root)),
      limits_(limits) {
  hypervisor_.set_exit_callback(
      [this](const std::string& id, const vmm::ExitInfo& info) { on_exit(id, info); });
}

VmManager::~VmManager() { hypervisor_.set_exit_callback(nullptr); }

std::string VmManager::runtime_dir(const std::string& id) const { return runtime_root_ + "/" + id; }

Result<std::string> VmManager::create(model::VmSpec spec, std::optional<std::string> id) {
  auto canonical = canonical_vm_id(id ? *id : new_vm_id());
  if (!canonical) return fail(canonical.error());
  const std::string vm_id = std::move(*canonical);
  auto normalized = normalize_spec(std::move(spec));
  if (!normalized) return fail(normalized.error());
  auto admitted = hypervisor_.admit(*normalized);
  if (!admitted) return fail(admitted.error().context("vm " + vm_id));
  normalized = std::move(*admitted);
  if (!normalized->gpus.empty() && !devices_)
    return fail(Code::kFailedPrecondition, "vm " + vm_id + ": GPU passthrough is not available on this host");

  int64_t now = now_ms();
  {
    // Reserve the id (in memory only) while the GPUs are taken outside the lock.
    std::lock_guard lock(mutex_);
    if (vms_.count(vm_id)) return fail(Code::kAlreadyExists, "vm " + vm_id + " already exists");
    model::VmRecord pending;
    pending.spec = *normalized;
    const uint64_t size = stored_size(pending);
    FEOS_TRY(check_limits_locked(vm_id, size));
    Entry& entry = vms_[vm_id];
    entry.stored_bytes = size;
    entry.record.id = vm_id;
    entry.record.spec = *normalized;
    entry.record.state = VmState::kCreating;
    entry.record.state_reason = normalized->gpus.empty() ? "creating" : "preparing GPUs";
    entry.record.created_unix_ms = entry.record.updated_unix_ms = now;
    entry.busy = "create";
    entry.persisted = false;
  }
  std::vector<model::AssignedGpu> gpus;
  if (!normalized->gpus.empty()) {
    auto prepared = devices_->prepare(vm_id, normalized->gpus);
    if (!prepared) {
      std::lock_guard lock(mutex_);
      vms_.erase(vm_id);
      return fail(prepared.error());  // hostdev's messages already name the VM
    }
    gpus = std::move(*prepared);
    // The API shows and stores canonical addresses ("17:00.0" -> "0000:17:00.0").
    for (size_t i = 0; i < gpus.size() && i < normalized->gpus.size(); ++i)
      normalized->gpus[i].address = gpus[i].request.address;
  }

  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(vm_id);
  entry.record.spec = std::move(*normalized);
  entry.record.gpus = std::move(gpus);
  entry.record.state = VmState::kCreated;
  entry.record.state_reason = "created";
  entry.stored_bytes = stored_size(entry.record);
  if (auto inserted = db_.insert_vm(entry.record); !inserted) {
    bool had_gpus = !entry.record.gpus.empty();
    vms_.erase(vm_id);
    if (had_gpus) (void)devices_->release(vm_id);
    return fail(inserted.error());
  }
  entry.persisted = true;
  entry.holds_devices = !entry.record.gpus.empty();
  entry.busy.reset();
  model::VmEvent event{0, vm_id, "vm", VmState::kCreated, "created", now};
  if (auto event_id = db_.append_event(event)) {
    event.id = *event_id;
    bus_.publish(event);
  } else {
    logger()->error("vm={} event not stored: {}", vm_id, event_id.error().to_string());
  }
  logger()->info("created vm={} gpus={}", vm_id, entry.record.gpus.size());
  return vm_id;
}

Status VmManager::check_limits_locked(const std::string& vm_id, uint64_t size) const {
  if (vms_.size() >= limits_.max_vms)
    return fail(Code::kResourceExhausted, "vm " + vm_id + ": feosd holds " + std::to_string(vms_.size()) +
                                              " VMs, its limit; delete one first");
  uint64_t total = 0;
  for (const auto& [id, entry] : vms_) total += entry.stored_bytes;
  if (total + size > limits_.max_total_bytes)
    return fail(Code::kResourceExhausted,
                "vm " + vm_id + ": its definition (" + with_unit(size) + " with ignition and devices) would bring " +
                    "all VMs to " + with_unit(total + size) + ", over feosd's limit of " +
                    with_unit(limits_.max_total_bytes) + " (it keeps ListVms within gRPC's 4 MiB message limit)");
  return ok();
}

Result<VmManager::Entry*> VmManager::find_locked(std::string_view id) {
  auto found = std::as_const(*this).find_locked(id);
  if (!found) return fail(found.error());
  return const_cast<Entry*>(*found);
}

Result<const VmManager::Entry*> VmManager::find_locked(std::string_view id) const {
  auto canonical = canonical_vm_id(id);
  if (!canonical) return fail(canonical.error());
  auto it = vms_.find(std::string(id));
  if (it == vms_.end()) it = vms_.find(*canonical);
  if (it == vms_.end()) return fail(not_found(*canonical));
  return &it->second;
}

Result<std::string> VmManager::resolve_id(std::string_view id) const {
  std::lock_guard lock(mutex_);
  auto entry = find_locked(id);
  if (!entry) return fail(entry.error());
  return (*entry)->record.id;
}

Result<VmManager::Entry*> VmManager::begin_locked(std::string_view id, Action action) {
  auto found = find_locked(id);
  if (!found) return fail(found.error());
  Entry& entry = **found;
  if (entry.busy)
    return fail(Code::kAborted, "vm " + entry.record.id + " is busy: " + *entry.busy + " in progress; retry");
  FEOS_TRY(check_action(entry.record.id, entry.record.state, action));
  entry.busy = std::string(action_name(action));
  return &entry;
}

void VmManager::finish(const std::string& id) {
  bool release = false;
  {
    std::lock_guard lock(mutex_);
    auto it = vms_.find(id);
    if (it == vms_.end()) return;
    Entry& entry = it->second;
    if (entry.pending_exit) {
      vmm::ExitInfo info = std::move(*entry.pending_exit);
      entry.pending_exit.reset();
      release = apply_exit_locked(entry, info);
    }
    if (!release) {
      entry.busy.reset();
      return;
    }
    entry.busy = "releasing devices";
  }
  (void)release_devices(id);
  std::lock_guard lock(mutex_);
  if (auto it = vms_.find(id); it != vms_.end()) it->second.busy.reset();
}

Status VmManager::set_state_locked(Entry& entry, VmState state, std::string reason, int pid) {
  reason = cut_utf8(std::move(reason), kMaxReasonBytes);
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

Status VmManager::acquire_devices(const std::string& id) {
  std::vector<model::GpuSpec> wanted;
  {
    std::lock_guard lock(mutex_);
    Entry& entry = vms_.at(id);
    if (entry.holds_devices || entry.record.spec.gpus.empty()) return ok();
    if (!devices_) return fail(Code::kFailedPrecondition, "vm " + id + ": GPU passthrough is not available on this host");
    wanted = entry.record.spec.gpus;
  }
  auto prepared = devices_->prepare(id, wanted);
  if (!prepared) return fail(prepared.error());  // hostdev's messages already name the VM
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  entry.holds_devices = true;
  entry.record.gpus = std::move(*prepared);
  entry.stored_bytes = stored_size(entry.record);
  if (auto stored = db_.update_vm_gpus(id, entry.record.gpus); !stored)
    logger()->error("vm={} assigned gpus not stored: {}", id, stored.error().to_string());
  return ok();
}

Status VmManager::release_devices(const std::string& id) {
  bool held = false;
  {
    std::lock_guard lock(mutex_);
    auto it = vms_.find(id);
    if (it == vms_.end() || it->second.record.spec.gpus.empty() || !devices_) return ok();
    held = it->second.holds_devices;
  }
  // Always asked (it is idempotent): rows may be left from an earlier release that failed.
  auto released = devices_->release(id);
  std::lock_guard lock(mutex_);
  auto it = vms_.find(id);
  if (it == vms_.end()) return released;
  Entry& entry = it->second;
  // Either way the VM no longer holds its GPUs: a failed device keeps its ledger row, so no other
  // VM can take it, and the VM's next start prepares its GPUs again (refused, naming the row,
  // until the device is back).
  entry.holds_devices = false;
  if (!released) {
    logger()->error("vm={} devices not returned to the host: {}", id, released.error().to_string());
    publish_locked(entry, "gpus",
                   "GPUs not returned to the host: " + released.error().message +
                       " (they stay reserved; DeleteVm, StartVm or a daemon restart retries)");
    return fail(released.error().context("return GPUs to the host"));
  }
  if (held) {
    std::string addresses;
    for (const auto& gpu : entry.record.spec.gpus) addresses += (addresses.empty() ? "" : ", ") + gpu.address;
    logger()->info("vm={} GPUs returned to the host", id);
    publish_locked(entry, "gpus", "GPUs returned to the host: " + addresses);
  }
  // VmInfo shows what the VM holds: nothing now (the next start resolves them again).
  if (!entry.record.gpus.empty()) {
    entry.record.gpus.clear();
    entry.stored_bytes = stored_size(entry.record);
    if (auto stored = db_.update_vm_gpus(id, {}); !stored)
      logger()->error("vm={} assigned gpus not cleared: {}", id, stored.error().to_string());
  }
  return ok();
}

void VmManager::publish_locked(const Entry& entry, const std::string& component, std::string reason) {
  model::VmEvent event{0, entry.record.id, component, entry.record.state, cut_utf8(std::move(reason), kMaxReasonBytes),
                       now_ms()};
  auto event_id = db_.append_event(event);
  if (!event_id) {
    logger()->error("vm={} event not stored: {}", entry.record.id, event_id.error().to_string());
    return;
  }
  event.id = *event_id;
  bus_.publish(event);
}

Status VmManager::start(const std::string& request_id) {
  model::VmSpec spec;
  std::string id;
  {
    std::lock_guard lock(mutex_);
    auto entry = begin_locked(request_id, Action::kStart);
    if (!entry) return fail(entry.error());
    id = (*entry)->record.id;
    spec = (*entry)->record.spec;
    // The intent is durable before anything runs: a daemon killed from here on finds it at
    // recover() (and qemu's own pidfile holds the pid once it runs).
    if (auto stored = set_state_locked(**entry, (*entry)->record.state, std::string(kStarting), 0); !stored) {
      (*entry)->busy.reset();
      return fail(stored.error().context("start vm " + id));
    }
  }
  BusyGuard guard(*this, id);
  auto record_failure = [&](const Error& error) {
    std::lock_guard lock(mutex_);
    Entry& entry = vms_.at(id);
    // Keep the VM's state: nothing runs. The reason tells the client what failed.
    (void)set_state_locked(entry, entry.record.state, "start failed: " + error.message, 0);
    return fail(error.context("start vm " + id));
  };
  if (auto acquired = acquire_devices(id); !acquired) return record_failure(acquired.error());
  std::error_code ec;
  std::filesystem::create_directories(runtime_dir(id), ec);
  if (ec) return record_failure(Error{Code::kInternal, "create " + runtime_dir(id) + ": " + ec.message()});
  std::vector<model::AssignedGpu> gpus;
  {
    std::lock_guard lock(mutex_);
    gpus = vms_.at(id).record.gpus;
  }
  auto pid = hypervisor_.start(id, spec, gpus, runtime_dir(id));
  if (!pid) {
    // Nothing of ours runs: the host gets the GPUs back; the next start takes them again. Not
    // when a process of this VM is alive (ALREADY_EXISTS): it may be using them.
    if (pid.error().code != Code::kAlreadyExists) (void)release_devices(id);
    return record_failure(pid.error());
  }
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  entry.pending_exit.reset();  // an exit seen during start belongs to an earlier process
  return set_state_locked(entry, VmState::kRunning, "started", *pid);
}

Status VmManager::pause(const std::string& request_id) {
  std::string id;
  {
    std::lock_guard lock(mutex_);
    auto entry = begin_locked(request_id, Action::kPause);
    if (!entry) return fail(entry.error());
    id = (*entry)->record.id;
  }
  BusyGuard guard(*this, id);
  FEOS_TRY(hypervisor_.pause(id));
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  return set_state_locked(entry, VmState::kPaused, "paused by request", entry.record.pid);
}

Status VmManager::resume(const std::string& request_id) {
  std::string id;
  {
    std::lock_guard lock(mutex_);
    auto entry = begin_locked(request_id, Action::kResume);
    if (!entry) return fail(entry.error());
    id = (*entry)->record.id;
  }
  BusyGuard guard(*this, id);
  FEOS_TRY(hypervisor_.resume(id));
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  return set_state_locked(entry, VmState::kRunning, "resumed by request", entry.record.pid);
}

Status VmManager::shutdown(const std::string& request_id) {
  std::string id;
  {
    std::lock_guard lock(mutex_);
    auto entry = begin_locked(request_id, Action::kShutdown);
    if (!entry) return fail(entry.error());
    id = (*entry)->record.id;
  }
  BusyGuard guard(*this, id);
  FEOS_TRY(hypervisor_.request_shutdown(id));
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  // Same state; the reason records the request so a power-off is not mistaken for a crash.
  return set_state_locked(entry, entry.record.state,
                          std::string(kShutdownRequested) + " (ACPI power button)", entry.record.pid);
}

Status VmManager::remove(const std::string& request_id) {
  std::string id;
  {
    std::lock_guard lock(mutex_);
    auto entry = begin_locked(request_id, Action::kDelete);
    if (!entry) return fail(entry.error());
    id = (*entry)->record.id;
  }
  BusyGuard guard(*this, id);
  // A delete writes too (state, events, ledger): on a full state directory the store gives up
  // its reserve for it, and takes it again once the delete freed room.
  db_.make_room();
  struct RestoreReserve {
    store::Database& db;
    ~RestoreReserve() { db.restore_reserve(); }
  } restore_reserve{db_};
  FEOS_TRY(hypervisor_.stop(id));
  std::vector<model::AssignedGpu> gpus;
  {
    std::lock_guard lock(mutex_);
    Entry& entry = vms_.at(id);
    entry.pending_exit.reset();  // the stop we asked for
    if (entry.record.state == VmState::kRunning || entry.record.state == VmState::kPaused)
      FEOS_TRY(set_state_locked(entry, VmState::kStopped, "stopped for delete", 0));
    // The ledger lets the GPUs go before this record goes: get/list must not show them on this
    // VM meanwhile, when another VM may already hold them.
    if (entry.holds_devices) gpus = std::exchange(entry.record.gpus, {});
  }
  if (auto released = release_devices(id); !released) {
    std::lock_guard lock(mutex_);
    if (!gpus.empty()) vms_.at(id).record.gpus = std::move(gpus);
    return fail(released.error());
  }
  // The runtime directory goes before the record: a daemon killed in between finds a record
  // without a directory (fine), never a directory without a record (an unknown VM at recover()).
  std::error_code ec;
  std::filesystem::remove_all(runtime_dir(id), ec);
  if (ec) return fail(Code::kInternal, "delete vm " + id + ": remove " + runtime_dir(id) + ": " + ec.message());
  std::lock_guard lock(mutex_);
  FEOS_TRY(db_.remove_vm(id));
  vms_.erase(id);
  logger()->info("deleted vm={}", id);
  return ok();
}

bool VmManager::apply_exit_locked(Entry& entry, const vmm::ExitInfo& info) {
  VmState state = entry.record.state;
  if (state != VmState::kRunning && state != VmState::kPaused) return false;
  auto stored = set_state_locked(entry, info.clean ? VmState::kStopped : VmState::kCrashed,
                                 info.reason, 0);
  if (!stored) logger()->error("vm={} exit not stored: {}", entry.record.id, stored.error().to_string());
  return entry.holds_devices;
}

void VmManager::on_exit(const std::string& id, const vmm::ExitInfo& info) {
  {
    std::lock_guard lock(mutex_);
    auto it = vms_.find(id);
    if (it == vms_.end()) return;
    Entry& entry = it->second;
    if (entry.busy) {
      // The operation in progress owns the outcome; finish() applies the exit after it.
      entry.pending_exit = info;
      return;
    }
    if (!apply_exit_locked(entry, info)) return;
    entry.busy = "releasing devices";
  }
  // The process is gone: the host gets the GPUs back now, not at delete.
  (void)release_devices(id);
  std::lock_guard lock(mutex_);
  if (auto it = vms_.find(id); it != vms_.end()) it->second.busy.reset();
}

Result<model::VmRecord> VmManager::get(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto entry = find_locked(id);
  if (!entry) return fail(entry.error());
  return (*entry)->record;
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

Result<vmm::PingInfo> VmManager::ping(const std::string& request_id) {
  std::string id;
  {
    std::lock_guard lock(mutex_);
    auto entry = find_locked(request_id);
    if (!entry) return fail(entry.error());
    id = (*entry)->record.id;
    FEOS_TRY(check_action(id, (*entry)->record.state, Action::kPing));
  }
  return hypervisor_.ping(id);
}

Result<std::shared_ptr<vmm::Console>> VmManager::console(const std::string& request_id) {
  std::string id;
  {
    std::lock_guard lock(mutex_);
    auto entry = find_locked(request_id);
    if (!entry) return fail(entry.error());
    id = (*entry)->record.id;
    FEOS_TRY(check_action(id, (*entry)->record.state, Action::kConsole));
  }
  return hypervisor_.console(id);
}

Result<std::vector<model::VmEvent>> VmManager::history(store::EventFilter filter) const {
  if (filter.vm_id) {
    auto id = resolve_id(*filter.vm_id);
    if (!id) return fail(id.error());
    filter.vm_id = *id;
  }
  return db_.query_events(filter);
}

}  // namespace feos::core
