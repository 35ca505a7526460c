#pragma once
// The one writer of VM state. Every API request goes through here: it checks the state table,
// persists each change in the store BEFORE it reports it, emits an event per state change, and
// drives the hypervisor. Slow hypervisor work (start, stop) runs outside the lock; a per-VM busy
// mark keeps two operations on one VM from overlapping.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "core/event_bus.h"
#include "core/state_machine.h"
#include "model/vm.h"
#include "store/database.h"
#include "vmm/hypervisor.h"

namespace feos::core {

class VmManager {
 public:
  // `runtime_root` holds one directory per VM with its hypervisor's sockets and logs.
  VmManager(store::Database& db, vmm::Hypervisor& hypervisor, EventBus& bus, std::string runtime_root);
  ~VmManager();

  // Loads the stored VMs and reconciles them with live hypervisor processes: a VM whose process
  // still runs is adopted again, one whose process is gone becomes stopped or crashed with a
  // reason. Call once, before serving requests.
  Status recover();

  // Validates `spec` (INVALID_ARGUMENT, NOT_FOUND for missing files, UNIMPLEMENTED for OCI refs)
  // and records the VM as created. ALREADY_EXISTS if `id` is taken. Returns the id.
  Result<std::string> create(model::VmSpec spec, std::optional<std::string> id);
  // Launches the hypervisor and boots the guest. FAILED_PRECONDITION in the wrong state.
  Status start(const std::string& id);
  Status pause(const std::string& id);
  Status resume(const std::string& id);
  // Presses the ACPI power button; the VM becomes stopped when the guest powers off.
  Status shutdown(const std::string& id);
  // Stops the hypervisor if it runs, then forgets the VM and its events.
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
    std::optional<Action> busy;                 // operation in progress outside the lock
    std::optional<vmm::ExitInfo> pending_exit;  // process ended while busy
  };
  class BusyGuard;

  // Marks `id` busy for `action` after checking existence, the state table and no overlap.
  Result<Entry*> begin_locked(const std::string& id, Action action);
  void finish(const std::string& id);
  // Persists a state change, updates the cache and emits an event. Caller holds mutex_.
  Status set_state_locked(Entry& entry, model::VmState state, std::string reason, int pid);
  void apply_exit_locked(Entry& entry, const vmm::ExitInfo& info);
  void on_exit(const std::string& id, const vmm::ExitInfo& info);
  std::string runtime_dir(const std::string& id) const;

  store::Database& db_;
  vmm::Hypervisor& hypervisor_;
  EventBus& bus_;
  std::string runtime_root_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> vms_;
};

}  // namespace feos::core
