#include "core/vm_manager.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "common/log.h"
#include "common/text.h"
#include "core/vm_config.h"
#include "core/vm_manager_detail.h"

namespace feos::core {
namespace {

using model::VmState;
using detail::kShutdownRequested;
using detail::kStarting;
using detail::now_ms;

auto logger() {
  static auto l = log::get("vm");
  return l;
}

Error not_found(const std::string& id) { return Error{Code::kNotFound, "vm " + id + " not found"}; }

}  // namespace

VmManager::VmManager(store::Database& db, vmm::Hypervisor& hypervisor, hostdev::HostDevices* devices,
                     EventBus& bus, std::string runtime_root, VmLimits limits, ShutdownOptions shutdown,
                     image::ImageStore* images)
    : db_(db),
      hypervisor_(hypervisor),
      devices_(devices),
      bus_(bus),
      runtime_root_(std::move(runtime_root)),
      limits_(limits),
      shutdown_options_(shutdown),
      images_(images) {
  connect_hypervisor();
}

VmManager::~VmManager() {
  end_create_workers();
  end_shutdown_watchers();
  disconnect_hypervisor();
}

std::string VmManager::runtime_dir(const std::string& id) const { return runtime_root_ + "/" + id; }

// --- requests ---

Status VmManager::start(const model::VmId& request_id) {
  model::VmSpec spec;
  std::string id;
  {
    std::lock_guard lock(mutex_);
    FEOS_ASSIGN_OR_RETURN(Entry* entry, begin_job_locked(request_id, LifecycleEvent::kStart, JobKind::kStart));
    id = entry->record.id;
    spec = entry->record.spec;
    // The intent is durable before anything runs: a daemon killed from here on finds it at
    // recover() (and qemu's own pidfile holds the pid once it runs).
    if (auto stored = record_state_locked(*entry, entry->record.state, std::string(kStarting), 0); !stored) {
      entry->job.reset();
      return fail(stored.error().context("start vm " + id));
    }
  }
  JobGuard guard(*this, id);
  // The VM keeps its state: nothing runs. The reason tells the client what failed.
  auto failed = [&](const Error& error, LifecycleEvent event) -> Status {
    if (event == LifecycleEvent::kStartFailed) (void)release_devices(id);
    std::lock_guard lock(mutex_);
    (void)apply_locked(vms_.at(id), event, "start failed: " + error.message, 0);
    return fail(error.context("start vm " + id));
  };
  if (auto acquired = acquire_devices(id); !acquired) return failed(acquired.error(), LifecycleEvent::kStartFailed);
  std::error_code ec;
  std::filesystem::create_directories(runtime_dir(id), ec);
  if (ec)
    return failed(Error{Code::kInternal, "create " + runtime_dir(id) + ": " + ec.message()},
                  LifecycleEvent::kStartFailed);
  std::vector<model::AssignedGpu> gpus;
  {
    std::lock_guard lock(mutex_);
    gpus = vms_.at(id).record.gpus;
  }
  auto pid = hypervisor_.start(id, spec, gpus, runtime_dir(id));
  if (!pid) {
    // ALREADY_EXISTS: a process of this VM is alive and may be using its GPUs; they stay.
    return failed(pid.error(), pid.error().code == Code::kAlreadyExists ? LifecycleEvent::kStartRefused
                                                                        : LifecycleEvent::kStartFailed);
  }
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  entry.job->pending_exit.reset();  // an exit seen during start belongs to an earlier process
  FEOS_TRY(apply_locked(entry, LifecycleEvent::kStart, "started", *pid));
  return ok();
}

Status VmManager::pause(const model::VmId& id) {
  return run_request(id, LifecycleEvent::kPause, JobKind::kPause, &vmm::Hypervisor::pause, "paused by request");
}

Status VmManager::resume(const model::VmId& id) {
  return run_request(id, LifecycleEvent::kResume, JobKind::kResume, &vmm::Hypervisor::resume, "resumed by request");
}

Status VmManager::run_request(const model::VmId& request_id, LifecycleEvent request, JobKind kind,
                              Status (vmm::Hypervisor::*call)(const std::string&), std::string reason) {
  std::string id;
  {
    std::lock_guard lock(mutex_);
    FEOS_ASSIGN_OR_RETURN(Entry* entry, begin_job_locked(request_id, request, kind));
    id = entry->record.id;
  }
  JobGuard guard(*this, id);
  FEOS_TRY((hypervisor_.*call)(id));
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  FEOS_TRY(apply_locked(entry, request, std::move(reason), entry.record.pid));
  return ok();
}

Status VmManager::remove(const model::VmId& request_id) {
  FEOS_TRY(stop_create(request_id));  // a create in the background stops first; its VM is deleted below
  std::string id;
  bool registry_image = false;
  std::vector<std::string> created_taps;  // taps feosd made for the VM's NICs: they go with it
  {
    std::lock_guard lock(mutex_);
    FEOS_ASSIGN_OR_RETURN(Entry* entry, begin_job_locked(request_id, LifecycleEvent::kDelete, JobKind::kDelete));
    id = entry->record.id;
    registry_image = model::names_registry_image(entry->record.spec.image_ref);
    for (const auto& nic : entry->record.spec.nets)
      if (nic.tap_created) created_taps.push_back(nic.tap_name);
  }
  JobGuard guard(*this, id);
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
    entry.job->pending_exit.reset();  // the stop we asked for
    if (transition(entry.record.state, LifecycleEvent::kStoppedForDelete))
      FEOS_TRY(apply_locked(entry, LifecycleEvent::kStoppedForDelete, "stopped for delete", 0));
    // The ledger lets the GPUs go before this record goes: get/list must not show them on this
    // VM meanwhile, when another VM may already hold them.
    if (entry.holds_devices) gpus = std::exchange(entry.record.gpus, {});
  }
  if (auto released = release_devices(id); !released) {
    std::lock_guard lock(mutex_);
    if (!gpus.empty()) vms_.at(id).record.gpus = std::move(gpus);
    return fail(released.error());
  }
  for (const auto& tap : created_taps)
    if (auto removed = hypervisor_.remove_created_tap(tap); !removed)
      logger()->warn("delete vm={}: tap {} stays: {}", id, tap, removed.error().to_string());
  // The runtime directory goes before the record: a daemon killed in between finds a record
  // without a directory (fine), never a directory without a record (an unknown VM at recover()).
  std::error_code ec;
  std::filesystem::remove_all(runtime_dir(id), ec);
  if (ec) return fail(Code::kInternal, "delete vm " + id + ": remove " + runtime_dir(id) + ": " + ec.message());
  // Its disk over a registry image goes too, and the image may be evicted from then on.
  if (images_ && registry_image)
    if (auto released = images_->release(id); !released) return fail(released.error().context("delete vm " + id));
  std::lock_guard lock(mutex_);
  FEOS_TRY(db_.vms().remove(id));
  vms_.erase(id);
  logger()->info("deleted vm={}", id);
  return ok();
}

// --- the lifecycle ---

std::string_view VmManager::job_name(JobKind kind) {
  switch (kind) {
    case JobKind::kCreate: return "create";
    case JobKind::kStart: return "start";
    case JobKind::kPause: return "pause";
    case JobKind::kResume: return "resume";
    case JobKind::kShutdown: return "shutdown";
    case JobKind::kForceOff: return "forced power-off";
    case JobKind::kDelete: return "delete";
    case JobKind::kReleaseDevices: return "releasing devices";
    case JobKind::kDevices: return "device change";
  }
  return "?";
}

Result<VmManager::Entry*> VmManager::begin_job_locked(const model::VmId& id, LifecycleEvent request, JobKind kind) {
  FEOS_ASSIGN_OR_RETURN(Entry* entry, find_locked(id));
  // A create in the background: the table's answer (FeOS's words) before "busy".
  if (entry->job && entry->record.state == VmState::kCreating)
    FEOS_TRY(check(entry->record.id, entry->record.state, request));
  if (entry->job)
    return fail(Code::kAborted, "vm " + entry->record.id + " is busy: " +
                                    std::string(job_name(entry->job->kind)) +
                                    " in progress; retry");
  FEOS_TRY(check(entry->record.id, entry->record.state, request));
  entry->job = Job{kind, std::nullopt};
  return entry;
}

void VmManager::end_job(const std::string& id) {
  std::optional<LifecycleEvent> event;
  std::string reason;
  {
    std::lock_guard lock(mutex_);
    auto it = vms_.find(id);
    if (it == vms_.end()) return;
    Entry& entry = it->second;
    std::optional<vmm::ExitInfo> exit = entry.job ? std::move(entry.job->pending_exit) : std::nullopt;
    if (exit) event = exit_event(entry, *exit);
    if (!event) {
      entry.job.reset();
      return;
    }
    reason = exit_reason_locked(entry, *exit);
    entry.job = Job{JobKind::kReleaseDevices, std::nullopt};
  }
  finish_exit(id, *event, std::move(reason));
}

void VmManager::finish_exit(const std::string& id, LifecycleEvent event, std::string reason) {
  bool release = false;
  {
    std::lock_guard lock(mutex_);
    const Entry& entry = vms_.at(id);  // the job keeps it
    auto next = transition(entry.record.state, event);
    release = next && next->devices == DeviceHold::kReleased && entry.holds_devices;
  }
  if (release) (void)release_devices(id);
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  if (auto stored = apply_locked(entry, event, std::move(reason), 0); !stored)
    logger()->error("vm={} exit not stored: {}", id, stored.error().to_string());
  entry.job.reset();
}

Result<DeviceHold> VmManager::apply_locked(Entry& entry, LifecycleEvent event, std::string reason, int pid) {
  auto next = transition(entry.record.state, event);
  if (!next) return fail(check(entry.record.id, entry.record.state, event).error());
  FEOS_TRY(record_state_locked(entry, next->to, std::move(reason), pid));
  return next->devices;
}

Status VmManager::record_state_locked(Entry& entry, VmState state, std::string reason, int pid) {
  reason = cut_utf8(detail::keep_shutdown_marker(entry.record, state, std::move(reason)), kMaxReasonBytes);
  int64_t now = now_ms();
  FEOS_TRY(db_.vms().update_state(entry.record.id, state, reason, pid, now));
  VmState old = entry.record.state;
  entry.record.state = state;
  entry.record.state_reason = reason;
  entry.record.pid = pid;
  entry.record.updated_unix_ms = now;
  if (state != VmState::kRunning && state != VmState::kPaused && entry.shutdown) {
    entry.shutdown.reset();  // its watcher ends
    shutdown_cv_.notify_all();
  }
  if (old == state) return ok();
  logger()->info("state change vm={} from={} to={} reason=\"{}\"", entry.record.id, model::state_name(old),
                 model::state_name(state), reason);
  return emit_locked(entry, "vm", std::move(reason)).map_error([](const Error& e) { return e.context("store event"); });
}

Status VmManager::emit_locked(const Entry& entry, const std::string& component, std::string reason) {
  model::VmEvent event{0, entry.record.id, component, entry.record.state, cut_utf8(std::move(reason), kMaxReasonBytes),
                       now_ms()};
  FEOS_ASSIGN_OR_RETURN(event.id, db_.events().append(event));
  bus_.publish(event);
  return ok();
}

std::optional<LifecycleEvent> VmManager::exit_event(const Entry& entry, const vmm::ExitInfo& info) const {
  LifecycleEvent event = info.clean ? LifecycleEvent::kGuestPoweredOff : LifecycleEvent::kHypervisorCrashed;
  if (!transition(entry.record.state, event)) return std::nullopt;
  return event;
}

void VmManager::on_exit(const std::string& id, const vmm::ExitInfo& info) {
  std::optional<LifecycleEvent> event;
  std::string reason;
  {
    std::lock_guard lock(mutex_);
    auto it = vms_.find(id);
    if (it == vms_.end()) return;
    Entry& entry = it->second;
    if (entry.job) {
      // The job in progress owns the outcome; end_job() applies the exit after it.
      entry.job->pending_exit = info;
      return;
    }
    event = exit_event(entry, info);
    if (!event) return;
    reason = exit_reason_locked(entry, info);
    entry.job = Job{JobKind::kReleaseDevices, std::nullopt};
  }
  // The process is gone: the host gets the GPUs back now, not at delete.
  finish_exit(id, *event, std::move(reason));
}

// --- lookups ---

Result<VmManager::Entry*> VmManager::find_locked(const model::VmId& id) {
  FEOS_ASSIGN_OR_RETURN(const Entry* entry, std::as_const(*this).find_locked(id));
  return const_cast<Entry*>(entry);
}

Result<const VmManager::Entry*> VmManager::find_locked(const model::VmId& id) const {
  auto it = vms_.find(id.text());
  if (it == vms_.end()) it = vms_.find(id.canonical().text());
  if (it == vms_.end()) return fail(not_found(id.canonical().text()));
  return &it->second;
}

Result<model::VmId> VmManager::resolve_id(const model::VmId& id) const {
  std::lock_guard lock(mutex_);
  FEOS_ASSIGN_OR_RETURN(const Entry* entry, find_locked(id));
  return model::VmId::parse(entry->record.id);
}

Result<model::VmRecord> VmManager::get(const model::VmId& id) const {
  std::lock_guard lock(mutex_);
  FEOS_ASSIGN_OR_RETURN(const Entry* entry, find_locked(id));
  return entry->record;
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

Result<vmm::PingInfo> VmManager::ping(const model::VmId& request_id) {
  std::string id;
  {
    std::lock_guard lock(mutex_);
    FEOS_ASSIGN_OR_RETURN(const Entry* entry, find_locked(request_id));
    id = entry->record.id;
    FEOS_TRY(check(id, entry->record.state, LifecycleEvent::kPing));
  }
  return hypervisor_.ping(id);
}

Result<std::shared_ptr<vmm::Console>> VmManager::console(const model::VmId& request_id) {
  std::string id;
  {
    std::lock_guard lock(mutex_);
    FEOS_ASSIGN_OR_RETURN(const Entry* entry, find_locked(request_id));
    id = entry->record.id;
    FEOS_TRY(check(id, entry->record.state, LifecycleEvent::kConsole));
  }
  return hypervisor_.console(id);
}

Result<std::vector<model::VmEvent>> VmManager::history(store::EventFilter filter) const {
  if (filter.vm_id) {
    std::lock_guard lock(mutex_);
    if (!vms_.count(*filter.vm_id)) return fail(not_found(*filter.vm_id));
  }
  return db_.events().query(filter);
}

}  // namespace feos::core
