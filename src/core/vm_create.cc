// VmManager::create() in two phases, as FeOS's CreateVm: the checks and the ledger claim before
// the answer, the slow part (image pull, binding GPUs to vfio-pci) in a background thread that
// is the VM's kCreate job. DeleteVm cancels it (stop_create()); a daemon that ends cancels it too
// and leaves the VM creating, which the next recover() fails (vm_recovery.cc).
#include <utility>

#include "common/log.h"
#include "core/vm_manager.h"
#include "core/vm_manager_detail.h"

namespace feos::core {
namespace {

using model::VmState;

auto logger() {
  static auto l = log::get("vm");
  return l;
}

bool wants_gpus(const model::VmSpec& spec) { return !spec.gpus.empty() || spec.gpu_count.has_value(); }

}  // namespace

Result<VmManager::NewVm> VmManager::admit_new(model::VmSpec spec, std::optional<model::VmId> id) const {
  model::VmId stored_id = (id ? *id : model::VmId::random()).canonical();
  const std::string& vm_id = stored_id.text();
  FEOS_ASSIGN_OR_RETURN(model::VmSpec normalized, normalize_with_image(std::move(spec)));
  auto admitted = hypervisor_.admit(normalized);
  if (!admitted) return fail(admitted.error().context("vm " + vm_id));
  if (wants_gpus(*admitted) && !devices_)
    return fail(Code::kFailedPrecondition, "vm " + vm_id + ": GPU passthrough is not available on this host");
  return NewVm{std::move(stored_id), std::move(*admitted)};
}

Result<uint64_t> VmManager::check_new_locked(const std::string& vm_id, const model::VmSpec& spec) const {
  if (vms_.count(vm_id)) return fail(Code::kAlreadyExists, "vm " + vm_id + " already exists");
  model::VmRecord pending;
  pending.spec = spec;
  const uint64_t size = stored_size(pending);
  FEOS_TRY(check_limits_locked(vm_id, size));
  return size;
}

Result<model::VmId> VmManager::create(model::VmSpec spec, std::optional<model::VmId> id) {
  FEOS_ASSIGN_OR_RETURN(NewVm admitted, admit_new(std::move(spec), std::move(id)));
  const model::VmId stored_id = std::move(admitted.id);
  const std::string& vm_id = stored_id.text();
  model::VmSpec normalized = std::move(admitted.spec);
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  {
    // Reserve the id (in memory only, a job no request can pass) while the GPUs are claimed.
    std::lock_guard lock(mutex_);
    if (stopping_) return fail(Code::kUnavailable, "vm " + vm_id + ": feosd is stopping");
    FEOS_ASSIGN_OR_RETURN(const uint64_t size, check_new_locked(vm_id, normalized));
    Entry& entry = vms_[vm_id];
    entry.stored_bytes = size;
    entry.record.id = vm_id;
    entry.record.spec = normalized;
    entry.record.state = VmState::kCreating;
    entry.record.state_reason = "creating";
    entry.record.created_unix_ms = entry.record.updated_unix_ms = detail::now_ms();
    entry.job = Job{JobKind::kCreate, std::nullopt};
    entry.create_cancel = cancel;
  }
  // The ledger claim: an unavailable GPU is refused now, and no other VM can take these.
  std::vector<model::AssignedGpu> gpus;
  if (wants_gpus(normalized)) {
    auto claimed = devices_->claim(vm_id, normalized.gpus, normalized.gpu_count);
    if (!claimed) {
      std::lock_guard lock(mutex_);
      vms_.erase(vm_id);
      return fail(claimed.error());  // hostdev's messages already name the VM
    }
    gpus = std::move(*claimed);
    // GPUs picked by count become GPUs by address: every later start takes the same ones.
    normalized.gpus.clear();
    for (const auto& gpu : gpus) normalized.gpus.push_back(gpu.request);
  }

  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(vm_id);
  entry.record.spec = std::move(normalized);
  entry.record.gpus = std::move(gpus);
  entry.stored_bytes = stored_size(entry.record);
  // Stored as creating: a daemon restarted before the background part ends finds it.
  if (auto inserted = db_.vms().insert(entry.record); !inserted) {
    bool had_gpus = !entry.record.gpus.empty();
    vms_.erase(vm_id);
    if (had_gpus) (void)devices_->release(vm_id);
    return fail(inserted.error());
  }
  entry.holds_devices = !entry.record.gpus.empty();
  if (auto emitted = emit_locked(entry, "vm", "creating"); !emitted)
    logger()->error("vm={} event not stored: {}", vm_id, emitted.error().to_string());
  reap_creates_locked();
  const uint64_t serial = next_create_serial_++;
  creates_.emplace(serial, std::thread(&VmManager::finish_create, this, vm_id, cancel, serial));
  logger()->info("creating vm={} gpus={}", vm_id, entry.record.gpus.size());
  return stored_id;
}

void VmManager::finish_create(const std::string& id, std::shared_ptr<std::atomic<bool>> cancel, uint64_t serial) {
  struct Done {
    VmManager& manager;
    uint64_t serial;
    ~Done() {
      std::lock_guard lock(manager.mutex_);
      manager.creates_done_.push_back(serial);
    }
  } done{*this, serial};
  // The job ends with the state it leads to, under one lock: a client that sees the VM created
  // may start it at once (JobGuard would end it a moment later, after another request began).
  auto end_job_locked = [&] {
    Entry& entry = vms_.at(id);
    entry.job.reset();
    entry.create_cancel.reset();
    job_cv_.notify_all();
  };
  model::VmSpec spec;
  std::vector<model::AssignedGpu> gpus;
  {
    std::lock_guard lock(mutex_);
    spec = vms_.at(id).record.spec;
    gpus = vms_.at(id).record.gpus;
  }
  Status finished = ok();
  if (images_ && model::names_registry_image(spec.image_ref)) finished = pull_image(id, spec, *cancel);
  if (finished && !gpus.empty()) {
    std::string addresses;
    for (const auto& gpu : spec.gpus) addresses += (addresses.empty() ? "" : ", ") + gpu.address.to_string();
    {
      std::lock_guard lock(mutex_);
      (void)emit_locked(vms_.at(id), "gpus", "binding GPUs to vfio-pci: " + addresses);
    }
    finished = devices_->bind(id, cancel.get());
    if (!finished) finished = fail(finished.error().context("GPUs not bound to vfio-pci"));
  }
  if (*cancel) {
    logger()->info("create of vm={} stopped", id);
    std::lock_guard lock(mutex_);
    end_job_locked();
    return;  // DeleteVm (or recover() after a restart) takes the VM and its devices from here
  }
  if (!finished) {
    logger()->warn("create of vm={} failed: {}", id, finished.error().to_string());
    // The GPUs go back before the state says crashed: a client that sees it may reuse them.
    (void)release_devices(id);  // its "gpus" event says the host has them back (or which not)
    std::lock_guard lock(mutex_);
    if (auto stored = apply_locked(vms_.at(id), LifecycleEvent::kCreateFailed,
                                   "create failed: " + finished.error().message, 0);
        !stored)
      logger()->error("vm={} create failure not stored: {}", id, stored.error().to_string());
    end_job_locked();
    return;
  }
  std::lock_guard lock(mutex_);
  end_job_locked();
  Entry& entry = vms_.at(id);
  entry.record.spec = std::move(spec);
  entry.stored_bytes = stored_size(entry.record);
  Status stored = db_.vms().update_spec(id, entry.record.spec);
  if (stored && !gpus.empty()) stored = emit_locked(entry, "gpus", "GPUs bound to vfio-pci");
  if (stored)
    if (auto applied = apply_locked(entry, LifecycleEvent::kCreated, "created", 0); !applied)
      stored = fail(applied.error());
  if (!stored) {
    logger()->error("vm={} created, but not stored: {}", id, stored.error().to_string());
    return;
  }
  logger()->info("created vm={} gpus={}", id, entry.record.gpus.size());
}

Status VmManager::stop_create(const model::VmId& request_id) {
  std::unique_lock lock(mutex_);
  FEOS_ASSIGN_OR_RETURN(Entry* entry, find_locked(request_id));
  if (!entry->job || entry->job->kind != JobKind::kCreate) return ok();
  const std::string id = entry->record.id;
  entry->create_cancel->store(true);
  logger()->info("vm={} delete: stopping its create", id);
  job_cv_.wait(lock, [&] {
    auto it = vms_.find(id);
    return it == vms_.end() || !it->second.job || it->second.job->kind != JobKind::kCreate;
  });
  return ok();
}

void VmManager::reap_creates_locked() {
  for (uint64_t serial : creates_done_) {
    auto it = creates_.find(serial);
    if (it == creates_.end()) continue;
    it->second.join();  // it has ended (its last step was to list itself)
    creates_.erase(it);
  }
  creates_done_.clear();
}

void VmManager::end_create_workers() {
  std::map<uint64_t, std::thread> running;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (auto& [id, entry] : vms_)
      if (entry.job && entry.job->kind == JobKind::kCreate) entry.create_cancel->store(true);
    running.swap(creates_);
    creates_done_.clear();
  }
  for (auto& [serial, thread] : running) thread.join();
}

}  // namespace feos::core
