#pragma once
// The one writer of VM state. Every API request and every hypervisor report goes through here:
// the lifecycle table (vm_lifecycle.h) says whether it may happen and where it leads; each change
// is persisted in the store BEFORE it is reported, and emits an event. Drives the host devices and
// the hypervisor. Slow work (binding GPUs, starting, stopping) runs outside the lock, as the VM's
// one job; a second request meanwhile is ABORTED.
//
// VM ids: requests name a VM by a model::VmId, parsed where the text came in (api/); an id of no
// VM is NOT_FOUND. A record is found by the id's exact spelling, else by its canonical (lower
// case) form, which is the form new records are stored in (model/vm_id.h says why both).
//
// Start is crash-safe: the intent ("starting") is stored before the hypervisor launches, the
// hypervisor's process records its own pid as it starts (qemu's locked pidfile), and recover()
// finds every live process of our VMs whatever the records say, adopting or stopping it.
//
// GPU ownership: a VM holds its GPUs (claimed in the ledger when CreateVm answers, bound to
// vfio-pci by the end of its background part) until its hypervisor process ends, its create
// fails or the VM is deleted; then the host gets them back. StartVm
// of a stopped VM takes them again, failing clearly if another VM has them now. A crashed VM
// cannot start (FeOS's rule): it keeps its reason until it is deleted.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "core/event_bus.h"
#include "core/vm_lifecycle.h"
#include "hostdev/host_devices.h"
#include "image/image_store.h"
#include "model/vm.h"
#include "model/vm_id.h"
#include "model/vm_plan.h"
#include "store/database.h"
#include "vmm/hypervisor.h"

namespace feos::core {

// What one daemon holds at most, so that no client can make the service unusable for the others
// (docs/security.md, "Limits"). CreateVm past them is RESOURCE_EXHAUSTED.
struct VmLimits {
  size_t max_vms = 512;
  // Sum of every VM's stored size (stored_size()). The default keeps ListVms of a full host
  // under gRPC's default 4 MiB receive limit with 512 KiB to spare (a record's protobuf form is
  // never larger than its stored size), and holds three VMs with the largest ignition (1 MiB).
  uint64_t max_total_bytes = 3584 * 1024;
};

// An upper bound of what `record` takes in the store and in a VmInfo message: its spec and
// resolved GPUs as stored (JSON), a state reason at its cap, and a fixed allowance for the rest.
// Before GPUs are resolved, each requested GPU counts kResolvedGpuAllowance bytes.
uint64_t stored_size(const model::VmRecord& record);
inline constexpr uint64_t kResolvedGpuAllowance = 8 * 1024;
// State reasons and event texts are cut to this many bytes (at a UTF-8 character boundary).
inline constexpr size_t kMaxReasonBytes = 1024;

// How a requested shutdown always ends: the ACPI power button is pressed, pressed again every
// `repress` while the guest has not powered off (a press before the guest listens is lost), and
// the VM is powered off (hypervisor stop()) once `grace` has passed (feosd --shutdown-grace).
// The default grace leaves FeOS's clients, which expect STOPPED within 30 s, 10 s for the stop.
struct ShutdownOptions {
  std::chrono::milliseconds grace{20000};
  std::chrono::milliseconds repress{3000};
};
// A request's own grace (ShutdownVmRequest.grace_seconds) is at most this long.
inline constexpr std::chrono::seconds kMaxShutdownGrace{3600};

struct RecoverOptions {
  // A state directory that shows VMs the database does not know (runtime directories, live
  // processes) makes recover() refuse, unless this is set: then their processes are killed and
  // their runtime directories moved to <runtime root>.discarded/ (feosd --discard-unknown-vms).
  bool discard_unknown_vms = false;
};

class VmManager {
 public:
  // `runtime_root` holds one directory per VM with its hypervisor's sockets and logs. `devices`
  // may be null on a host without passthrough: VMs with GPUs are then refused. `images` may be
  // null: an image_ref naming a registry is then UNIMPLEMENTED.
  VmManager(store::Database& db, vmm::Hypervisor& hypervisor, hostdev::HostDevices* devices,
            EventBus& bus, std::string runtime_root, VmLimits limits = {}, ShutdownOptions shutdown = {},
            image::ImageStore* images = nullptr);
  // Ends the shutdown watchers (a VM in its grace stays running: a restarted daemon re-arms it).
  ~VmManager();

  // Loads the stored VMs and reconciles them with the host, before anything else may change it:
  // 1. VMs the database does not know (a runtime directory or a live hypervisor process under
  //    runtime_root without a record): FAILED_PRECONDITION naming them and how to recover,
  //    unless options.discard_unknown_vms (see RecoverOptions). Then the image store's disks of
  //    VMs without a record (ImageStore::remove_unknown_vms): a create cut short between the VM's
  //    disk and its record leaves one, which would pin its image forever; it is removed (a
  //    discarded VM's is moved aside), each logged.
  // 2. Every live process of a known VM (hypervisor find_processes(), or the recorded pid) is
  //    adopted: a running or paused guest makes the VM running or paused, whatever its record
  //    said (one whose shutdown was requested gets a new grace, see shutdown()); a process whose start was cut short (never resumed) is stopped and the VM keeps its
  //    state. A VM recorded running or paused without a live process becomes stopped (after a
  //    requested shutdown) or crashed, with a reason; a start cut short before anything ran
  //    keeps its state with a reason saying so. A VM recorded creating (its create's background
  //    part was cut short) becomes crashed: "create failed: feosd restarted ...". Not resumed:
  //    its client watches for the outcome, and a half-done pull or bind is rolled back anyway.
  //    DeleteVm then releases its image.
  // 3. The device ledger: created, running and paused VMs keep their GPUs; everything else on
  //    vfio-pci under our ledger goes back to the host.
  // Call once, before serving.
  Status recover(const RecoverOptions& options = {});

  // CreateVm in two phases (vm_create.cc), as FeOS: what can be checked without side effects is
  // checked before it answers, the slow part runs in the background.
  // Before answering: validates `spec` (INVALID_ARGUMENT, NOT_FOUND for missing files,
  // UNIMPLEMENTED for OCI refs without an image store, a registry reference's syntax), the
  // hypervisor's admission, ALREADY_EXISTS if `id` is taken (in any letter case),
  // RESOURCE_EXHAUSTED past the VmLimits or when the state directory is full, then claims its GPUs
  // in the ledger (hostdev's codes: FAILED_PRECONDITION for busy/unviable devices naming them,
  // NOT_FOUND, PERMISSION_DENIED, RESOURCE_EXHAUSTED for too few by count) and records the VM as
  // creating (a "vm" event "creating"). On any of these errors nothing is recorded or held.
  // In the background: pulls a registry image (ImageStore::pull, "image" events with its
  // progress and what was pulled), checks the pulled disk (hypervisor admit()) and gives the VM
  // its own disk over it, binds the GPUs to vfio-pci ("gpus" events), then the VM is created (a
  // "vm" event). A failure makes it crashed with "create failed: ..." as its reason (FeOS's choice
  // for a failed image pull) and its GPUs go back to the host (a "gpus" event). DeleteVm
  // meanwhile stops the work (remove()). Returns the id as stored (canonical; a new random one
  // when `id` is not given).
  Result<model::VmId> create(model::VmSpec spec, std::optional<model::VmId> id);
  // A dry run of create() and the start() after it (vm_plan.cc): the same checks, by the same
  // functions, in the same order (create's admission and limits, the host side's plan, then the
  // hypervisor's plan_start() on the runtime directory the VM would get), with nothing recorded,
  // reserved, bound, created or published (nor a registry image pulled: its reference is checked,
  // and the command line has no root disk). Returns what they would do: the GPUs' host functions
  // and groups, the decisions, the address space and the hypervisor's command line.
  // Errors: create()'s, with the same codes and messages (except a race the real create loses
  // later: a device taken between plan and claim); then the hypervisor's start errors (its
  // command line and address-space refusals) as start() reports them ("start vm <id>: ...").
  Result<model::VmPlan> plan_create(model::VmSpec spec, std::optional<model::VmId> id) const;
  // Launches the hypervisor and boots the guest. FAILED_PRECONDITION unless created or stopped.
  Status start(const model::VmId& id);
  Status pause(const model::VmId& id);
  Status resume(const model::VmId& id);
  // Presses the ACPI power button and answers; the VM becomes stopped when the guest powers off,
  // or is powered off when `grace` (else ShutdownOptions::grace) has passed. Meanwhile the button
  // is pressed again every ShutdownOptions::repress while the guest runs (not while paused). The
  // stopped state's reason and event say which way it went ("guest powered off ..." or "forced
  // off after N s ..."); the GPUs go back to the host as at any stop. A second request during the
  // grace presses again; the earlier deadline stays. A press that fails is reported in an event,
  // and the grace still ends the VM. INVALID_ARGUMENT for a grace over kMaxShutdownGrace.
  Status shutdown(const model::VmId& id, std::optional<std::chrono::seconds> grace = std::nullopt);
  // Stops the hypervisor if it runs, returns its GPUs to the host, removes its disk over a
  // registry image, then forgets the VM and its events. If a device cannot be returned the VM stays (so the delete can be retried) and the
  // error names the device. Works on a full state directory: the store's reserve is given up
  // for it (Database::make_room) and taken again afterwards.
  // A VM still creating: its background part is stopped first (the pull cancelled, the binds
  // stopped between devices), then the VM goes as any other (its GPUs back to the host).
  Status remove(const model::VmId& id);

  // Device changes after create (vm_hotplug.cc): a disk (raw or qcow2 file, checked as at create,
  // its format recorded) or a tap NIC (device id defaults to the tap's name, a missing MAC gets
  // one that is stored) added, or one removed by device id. A created or stopped VM's spec
  // changes only; a running VM's hypervisor plugs the device into a free hot-plug port or has the
  // guest release it first (Hypervisor::attach_*/detach_*), then the spec is stored. Each emits
  // a "disk" or "nic" event. Attach returns the device id. Errors: FAILED_PRECONDITION in FeOS's
  // words for a creating, paused or crashed VM; ABORTED while another job runs; ALREADY_EXISTS
  // for a device id the VM has (disks and NICs share them); NOT_FOUND for a device it lacks;
  // RESOURCE_EXHAUSTED past the VmLimits or with no free hot-plug port; DEADLINE_EXCEEDED when
  // the guest did not release the device (VM and spec unchanged: retry, or stop the VM and
  // detach it then); the hypervisor's check errors for the device.
  Result<std::string> attach_disk(const model::VmId& id, model::DiskSpec disk);
  Result<std::string> attach_nic(const model::VmId& id, model::NetSpec nic);
  Status detach_disk(const model::VmId& id, const std::string& device_id);
  Status detach_nic(const model::VmId& id, const std::string& device_id);

  Result<model::VmRecord> get(const model::VmId& id) const;
  std::vector<model::VmRecord> list() const;
  Result<vmm::PingInfo> ping(const model::VmId& id);
  Result<std::shared_ptr<vmm::Console>> console(const model::VmId& id);

  // Stored events matching `filter`, oldest first. A vm filter names the id as stored (record.id,
  // resolve_id()); NOT_FOUND if no VM has it.
  Result<std::vector<model::VmEvent>> history(store::EventFilter filter) const;
  // The id under which `id` is stored (as given, else canonical). NOT_FOUND.
  Result<model::VmId> resolve_id(const model::VmId& id) const;
  EventBus& bus() { return bus_; }

 private:
  // What runs on a VM outside the lock; one at a time per VM.
  enum class JobKind { kCreate, kStart, kPause, kResume, kShutdown, kForceOff, kDelete, kReleaseDevices, kDevices };
  struct Job {
    JobKind kind;
    std::optional<vmm::ExitInfo> pending_exit;  // the process ended meanwhile: applied after the job
  };
  // A requested shutdown whose guest has not powered off yet; its watcher thread (`serial`) ends
  // it. Dropped when the VM leaves running and paused.
  struct PendingShutdown {
    uint64_t serial = 0;
    std::chrono::steady_clock::time_point requested;
    std::chrono::steady_clock::time_point deadline;
    std::chrono::milliseconds grace{0};
    int presses = 0;  // of the power button, the request's own included
  };
  struct Entry {
    model::VmRecord record;
    std::optional<Job> job;
    std::optional<PendingShutdown> shutdown;
    bool holds_devices = false;  // its GPUs are claimed for it (bound to vfio-pci once created)
    // While its kCreate job runs: set to stop the background part (DeleteVm, the manager's end).
    std::shared_ptr<std::atomic<bool>> create_cancel;
    uint64_t stored_bytes = 0;   // stored_size(record), kept current
  };
  class JobGuard;
  static std::string_view job_name(JobKind kind);  // "start", "releasing devices", ...

  // --- create() and plan_create() (one path) ---
  struct NewVm {
    model::VmId id;      // canonical
    model::VmSpec spec;  // normalized and admitted by the hypervisor (a registry image: no image_path yet)
  };
  // The id as stored, normalize_with_image(), the hypervisor's admit(), passthrough available.
  Result<NewVm> admit_new(model::VmSpec spec, std::optional<model::VmId> id) const;
  // vm_images.cc: a registry image_ref's syntax is checked (its disk comes with the pull, after
  // CreateVm answered: image_path stays empty); any other spec goes through normalize_spec().
  Result<model::VmSpec> normalize_with_image(model::VmSpec spec) const;
  // vm_images.cc, the background part of create: pulls the VM's registry image with progress
  // events, checks the pulled disk (hypervisor admit()) and gives the VM its own disk over it.
  Status pull_image(const std::string& id, model::VmSpec& spec, const std::atomic<bool>& cancel);
  // The background part of create (a thread; the VM's kCreate job): pull_image(), bind the GPUs,
  // then created, or crashed with the reason. Cancelled: ends the job and nothing else (DeleteVm
  // or recover() after a restart takes it from there).
  void finish_create(const std::string& id, std::shared_ptr<std::atomic<bool>> cancel, uint64_t serial);
  // Cancels a create in the background of the VM `id` names and waits until it stopped. OK when
  // none runs; NOT_FOUND as find_locked().
  Status stop_create(const model::VmId& id);
  // Cancels and joins every create in the background (the destructor): their VMs stay creating,
  // and the next recover() fails them.
  void end_create_workers();
  // Joins the create threads that have ended. Caller holds mutex_.
  void reap_creates_locked();
  // The VM's own disk, a qcow2 over the cached image (the VM never writes the shared image), made
  // the spec's image_path. Errors name the image_ref field.
  Status attach_image(const std::string& vm_id, const image::PulledImage& image, model::VmSpec& spec);
  // ALREADY_EXISTS, then check_limits_locked(), for a new VM; returns its stored size. Caller
  // holds mutex_.
  Result<uint64_t> check_new_locked(const std::string& vm_id, const model::VmSpec& spec) const;

  // --- lookups (caller holds mutex_) ---
  // The entry `id` names: looked up as given, then canonically (a record stored before ids were
  // canonical whose lower-case spelling another VM took keeps its own).
  Result<Entry*> find_locked(const model::VmId& id);
  Result<const Entry*> find_locked(const model::VmId& id) const;
  // RESOURCE_EXHAUSTED when a VM of `size` bytes would exceed limits_.
  Status check_limits_locked(const std::string& vm_id, uint64_t size) const;

  // --- the lifecycle (vm_manager.cc) ---
  // Starts a job for `request` on the VM after checking existence, the lifecycle table and that
  // no other job runs (ABORTED then: a conflict worth retrying). Caller holds mutex_.
  Result<Entry*> begin_job_locked(const model::VmId& id, LifecycleEvent request, JobKind kind);
  // Ends the VM's job; applies an exit that arrived meanwhile (and returns its devices).
  void end_job(const std::string& id);
  // The VM's process is gone and `event` records it (an exit, a forced power-off): returns its
  // GPUs to the host when the event releases them, then applies `event` and ends the VM's job
  // under one lock, so a client that sees the VM stopped or crashed may start or delete it at once
  // and give its GPUs to another VM. Caller holds the VM's job, not mutex_.
  void finish_exit(const std::string& id, LifecycleEvent event, std::string reason);
  // pause, resume, shutdown: one hypervisor call, then the table's transition with `reason`.
  Status run_request(const model::VmId& request_id, LifecycleEvent request, JobKind kind,
                     Status (vmm::Hypervisor::*call)(const std::string&), std::string reason);
  // Moves the VM along the table for `event` (FAILED_PRECONDITION if it cannot happen in its
  // state), persisting and publishing the change; returns what to do with its devices. Caller
  // holds mutex_.
  Result<DeviceHold> apply_locked(Entry& entry, LifecycleEvent event, std::string reason, int pid);
  // Persists state, reason and pid, and publishes a "vm" event when the state changed. Caller
  // holds mutex_.
  Status record_state_locked(Entry& entry, model::VmState state, std::string reason, int pid);
  // Stores an event of `component` with the VM's current state and publishes it: the one place
  // events are made. Caller holds mutex_.
  Status emit_locked(const Entry& entry, const std::string& component, std::string reason);
  void on_exit(const std::string& id, const vmm::ExitInfo& info);
  // The hypervisor's callbacks (vm_progress.cc): exits, and a start's progress, which becomes an
  // event of the VM ("memory": "preallocating 64 GiB on host node 1 ...") so a client sees why a
  // big VM takes time to start.
  void connect_hypervisor();
  void disconnect_hypervisor();
  void on_progress(const std::string& id, const std::string& component, const std::string& text);
  // The reason an exit is recorded with: the hypervisor's, plus how long after a requested
  // shutdown it came.
  std::string exit_reason_locked(const Entry& entry, const vmm::ExitInfo& info) const;
  // The lifecycle event an exit is, or nullopt when the VM's state takes no exit (not running).
  std::optional<LifecycleEvent> exit_event(const Entry& entry, const vmm::ExitInfo& info) const;
  std::string runtime_dir(const std::string& id) const;

  // --- shutdown that always ends (vm_shutdown.cc) ---
  // Starts the VM's watcher, or moves an armed deadline earlier. Caller holds mutex_.
  // Stops and joins every shutdown watcher (the destructor; a VM in its grace keeps running).
  void end_shutdown_watchers();
  void arm_shutdown_locked(Entry& entry, std::chrono::milliseconds grace);
  // The watcher thread: presses the button again, then forces the VM off at the deadline. Ends
  // when the VM stopped, went away, was shut down otherwise, or the manager ends.
  void watch_shutdown(const std::string& id, uint64_t serial);
  // Stops the hypervisor (the caller took a kForceOff job) and records kForcedOff.
  void force_off(const std::string& id);
  // Joins the watcher threads that have ended.
  void reap_watchers();

  // --- devices (vm_devices.cc) ---
  // Takes the VM's GPUs if it does not hold them (in a job, outside the lock).
  Status acquire_devices(const std::string& id);
  // Returns the VM's GPUs to the host (hostdev release) and emits a "gpus" event saying so, or
  // saying which devices could not be returned. The VM's record stops listing them first. OK for a
  // VM without GPUs. In a job, outside the lock.
  Status release_devices(const std::string& id);

  // --- device changes (vm_hotplug.cc) ---
  struct DeviceChange {
    std::string id;     // as stored
    bool live = false;  // the VM runs: the hypervisor applies the change first
    model::VmSpec spec; // the spec after the change
  };
  // The checks every device change makes (state, no other job) and its job. Caller holds mutex_.
  Result<Entry*> begin_device_job_locked(const model::VmId& id, std::string_view action);
  // begin_device_job_locked(), then the spec with the device `add` puts in: ALREADY_EXISTS for a
  // taken `device_id`, RESOURCE_EXHAUSTED past limits_ (the job is ended on failure).
  Result<DeviceChange> begin_attach(const model::VmId& id, std::string_view action, const std::string& device_id,
                                    const std::function<void(model::VmSpec&)>& add);
  Status detach(const model::VmId& id, const std::string& device_id, bool disk);
  // Stores `spec` as the VM's and emits `reason` as a `component` event. Caller holds mutex_.
  Status store_spec_locked(Entry& entry, model::VmSpec spec, const std::string& component, std::string reason);

  // --- recover() (vm_recovery.cc) ---
  // The record a runtime directory or process name belongs to: the one with exactly that id,
  // else with its canonical spelling (a VM created before ids were canonical runs under its old
  // spelling); nullopt for none. Caller holds mutex_.
  std::optional<std::string> record_key_locked(std::string_view name) const;
  // Renames <runtime_root>/<old spelling> to the canonical id of its record.
  void rename_legacy_runtime_dirs_locked();
  // Runtime directories and live processes without a record: refused, or discarded on request
  // (their names, canonical where they parse as ids, go to `discarded`).
  Status handle_unknown_vms(const std::vector<vmm::FoundProcess>& found, const RecoverOptions& options,
                            std::set<std::string>& discarded);
  // Disks over registry images of VMs without a record (ImageStore::remove_unknown_vms).
  void remove_unknown_image_disks(const std::set<std::string>& discarded);
  // One record against its live processes (recorded pid first): adopts one, stops the rest.
  Status recover_entry_locked(Entry& entry, const std::vector<int>& live);
  // hypervisor adopt(), tried again while the process is alive but unreachable (a loaded host).
  Result<vmm::RunState> adopt_with_retries(const std::string& id, int pid);

  store::Database& db_;
  vmm::Hypervisor& hypervisor_;
  hostdev::HostDevices* devices_;
  EventBus& bus_;
  std::string runtime_root_;
  const VmLimits limits_;
  const ShutdownOptions shutdown_options_;
  image::ImageStore* images_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> vms_;
  // Shutdown watchers, by serial; under mutex_. `watchers_done_` lists those that ended.
  std::condition_variable shutdown_cv_;
  bool stopping_ = false;
  uint64_t next_watcher_serial_ = 1;
  std::map<uint64_t, std::thread> watchers_;
  std::vector<uint64_t> watchers_done_;
  // Creates in the background, by serial, as the watchers; under mutex_. job_cv_ is told when a
  // create's job ends (stop_create() waits on it).
  std::condition_variable job_cv_;
  uint64_t next_create_serial_ = 1;
  std::map<uint64_t, std::thread> creates_;
  std::vector<uint64_t> creates_done_;
};

}  // namespace feos::core
