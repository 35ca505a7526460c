#pragma once
// The one writer of VM state. Every API request goes through here: it checks the state table,
// persists each change in the store BEFORE it reports it, emits an event per state change, and
// drives the host devices and the hypervisor. Slow work (binding GPUs, starting, stopping) runs
// outside the lock; a per-VM busy mark keeps two operations on one VM from overlapping.
//
// VM ids: every method that takes one refuses a malformed id (not a UUID, see validate_vm_id)
// with INVALID_ARGUMENT before looking it up; a well-formed id of no VM is NOT_FOUND.
//
// GPU ownership: a VM holds its GPUs (bound to vfio-pci, recorded in the ledger) from CreateVm
// until its hypervisor process ends or the VM is deleted; then the host gets them back. StartVm
// of a stopped or crashed VM takes them again, failing clearly if another VM has them now.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "core/event_bus.h"
#include "core/state_machine.h"
#include "hostdev/host_devices.h"
#include "model/vm.h"
#include "store/database.h"
#include "vmm/hypervisor.h"

namespace feos::core {

class VmManager {
 public:
  // `runtime_root` holds one directory per VM with its hypervisor's sockets and logs. `devices`
  // may be null on a host without passthrough: VMs with GPUs are then refused.
  VmManager(store::Database& db, vmm::Hypervisor& hypervisor, hostdev::HostDevices* devices,
            EventBus& bus, std::string runtime_root);
  ~VmManager();

  // Loads the stored VMs and reconciles them with live hypervisor processes: a VM whose process
  // still runs is adopted again, one whose process is gone becomes stopped or crashed with a
  // reason. Then reconciles the device ledger: created, running and paused VMs keep their GPUs,
  // everything else on vfio-pci under our ledger goes back to the host. Call once, before serving.
  Status recover();

  // Validates `spec` (INVALID_ARGUMENT, NOT_FOUND for missing files, UNIMPLEMENTED for OCI refs),
  // takes its GPUs (hostdev's codes: FAILED_PRECONDITION for busy/unviable devices naming them,
  // NOT_FOUND, PERMISSION_DENIED) and records the VM as created. ALREADY_EXISTS if `id` is taken.
  // Returns the id. On failure nothing is recorded and no device is held.
  Result<std::string> create(model::VmSpec spec, std::optional<std::string> id);
  // Launches the hypervisor and boots the guest. FAILED_PRECONDITION in the wrong state.
  Status start(const std::string& id);
  Status pause(const std::string& id);
  Status resume(const std::string& id);
  // Presses the ACPI power button; the VM becomes stopped when the guest powers off.
  Status shutdown(const std::string& id);
  // Stops the hypervisor if it runs, returns its GPUs to the host, then forgets the VM and its
  // events. If a device cannot be returned the VM stays (so the delete can be retried) and the
  // error names the device.
  Status remove(const std::string& id);

  Result<model::VmRecord> get(const std::string& id) const;
  std::vector<model::VmRecord> list() const;
  Result<vmm::PingInfo> ping(const std::string& id);
  Result<std::shared_ptr<vmm::Console>> console(const std::string& id);

  // Stored events matching `filter`, oldest first. For a vm filter, NOT_FOUND if the VM is unknown.
  Result<std::vector<model::VmEvent>> history(const store::EventFilter& filter) const;
  EventBus& bus() { return bus_; }

 private:
  struct Entry {
    model::VmRecord record;
    std::optional<std::string> busy;            // operation in progress outside the lock
    std::optional<vmm::ExitInfo> pending_exit;  // process ended while busy
    bool holds_devices = false;                 // its GPUs are bound to vfio-pci for it
    bool persisted = true;                      // false while CreateVm prepares its devices
  };
  class BusyGuard;

  // Marks `id` busy for `action` after checking existence, the state table and no overlap.
  Result<Entry*> begin_locked(const std::string& id, Action action);
  // Clears the busy mark; applies an exit that arrived meanwhile (and returns its devices).
  void finish(const std::string& id);
  // Takes the VM's GPUs if it does not hold them (busy, outside the lock).
  Status acquire_devices(const std::string& id);
  // Returns the VM's GPUs to the host (hostdev release) and emits a "gpus" event saying so, or
  // saying which devices could not be returned. OK for a VM without GPUs. Busy, outside the lock.
  Status release_devices(const std::string& id);
  // Stores and publishes an event of `component` with the VM's current state. Caller holds mutex_.
  void publish_locked(const Entry& entry, const std::string& component, std::string reason);
  // Persists a state change, updates the cache and emits an event. Caller holds mutex_.
  Status set_state_locked(Entry& entry, model::VmState state, std::string reason, int pid);
  // Applies a process exit to the state; true when the VM's devices should now be released.
  bool apply_exit_locked(Entry& entry, const vmm::ExitInfo& info);
  void on_exit(const std::string& id, const vmm::ExitInfo& info);
  std::string runtime_dir(const std::string& id) const;

  store::Database& db_;
  vmm::Hypervisor& hypervisor_;
  hostdev::HostDevices* devices_;
  EventBus& bus_;
  std::string runtime_root_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> vms_;
};

}  // namespace feos::core
