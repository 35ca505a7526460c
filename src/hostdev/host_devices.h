#pragma once
// Host side of GPU passthrough: turns a VM's GPU requests into whole cards and IOMMU groups,
// validates them before touching anything, binds them to vfio-pci transactionally (ownership
// ledger in SQLite, step recorded before every sysfs write, rollback on failure), returns them to
// their host drivers, and reconciles after a crash. Reads and writes only through
// sys::Filesystem and sys::HostPaths, so tests run it on a fake kernel.
//
// Concurrency: every method is thread-safe. Operations on DIFFERENT VMs run in parallel (two
// prepares wanting the same device: the ledger claim lets exactly one win). A second
// prepare/release of a VM while one is in progress fails FAILED_PRECONDITION. reconcile() is
// meant for daemon start, before any prepare.
//
// Hung kernel writes: each sysfs write has Options::step_timeout (timed_write.h). A write that
// does not return fails the operation with DEADLINE_EXCEEDED naming the device and the step; its
// thread stays blocked in the kernel, detached. Until it returns the device is "in doubt" (the
// write may still take effect): rollback and release leave it alone (UNAVAILABLE naming it) and
// its ledger row stays (step "releasing"), so no other VM can take it. When the write returns, a
// background thread releases that VM's rows again, which puts the device back where it was.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "hostdev/policy.h"
#include "hostdev/timed_write.h"
#include "model/gpu.h"
#include "pci/device.h"
#include "pci/pci_ids.h"
#include "store/database.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"

namespace feos::hostdev {

namespace detail {
struct Target;
class DeviceCache;
}

struct Options {
  // Longest a single sysfs write (driver_override, unbind, bind, drivers_probe) may take, and
  // longest to wait for a driver link to show the expected driver.
  std::chrono::milliseconds step_timeout{10000};
  // Longest to wait for <dev>/vfio/<group> after a group's devices are bound (udev creates it).
  std::chrono::milliseconds vfio_node_timeout{10000};
  // The VFIO driver's name under <sysfs>/bus/pci/drivers.
  std::string vfio_driver = "vfio-pci";
  // Its kernel module's name under <sysfs>/module.
  std::string vfio_module = "vfio_pci";
  // Names for messages and inventory; nullptr: ids only.
  std::shared_ptr<const pci::PciIds> pci_ids;
  // Wall clock for the ledger's updated_unix_ms; empty: the system clock.
  std::function<int64_t()> now_unix_ms;
};

// What reconcile() did, per device (each entry "0000:18:00.0 (vm <id>)" plus detail).
struct ReconcileReport {
  std::vector<std::string> kept;      // rows of VMs that keep devices, on vfio-pci: untouched
  std::vector<std::string> released;  // returned to the original driver, row deleted
  std::vector<std::string> failed;    // could not be returned: "<bdf> (vm <id>): <error>"; row kept
  std::vector<std::string> unowned_vfio;  // on vfio-pci without a ledger row (bound by someone
                                          // else, e.g. the operator): reported, not touched
};

enum class Readiness { kYes, kNo, kUnknown };

// Where a device stands for passthrough.
enum class DeviceStatus {
  kAvailable,      // a GPU (or a function of one) that prepare() would take now
  kAssigned,       // held by a VM in the ledger (assigned_vm)
  kNotAssignable,  // reason says why
};

struct InventoryDevice {
  pci::Device device;
  std::string vendor_name;  // pci.ids names; empty when unknown or no database
  std::string device_name;
  std::string class_name;    // pci.ids, else a built-in base-class name ("network controller")
  bool is_bridge = false;    // a PCI-to-PCI bridge: never passed, ignored in group checks
  bool is_gpu = false;       // display/3D class (03xx)
  std::string gpu;           // for a companion function: its GPU's address; for a GPU: itself
  std::vector<pci::Address> group_members;  // its IOMMU group's members (itself included)
  DeviceStatus status = DeviceStatus::kNotAssignable;
  std::string assigned_vm;   // kAssigned
  std::string reason;        // kNotAssignable (e.g. "boot VGA", "no IOMMU group"), or a note
};

struct Inventory {
  bool iommu_enabled = false;
  std::vector<InventoryDevice> devices;  // every PCI function, sorted by address
};

struct GpuReadiness {
  std::string address;  // "0000:18:00.0"
  std::string id;       // "10de:2330"
  std::string name;     // pci.ids name or ""
  std::string driver;   // current driver or ""
  bool ready = false;   // prepare() would accept it now (or it is held by a VM: see reason)
  std::string reason;   // why not ready; "assigned to vm X" for held ones; "" when ready
  // How vfio-pci can reset it between VMs (pci::Device::reset_methods); empty: none, so GPU
  // memory and state may carry over from one VM to the next.
  std::vector<std::string> reset_methods;
};

struct HostCheck {
  bool iommu_enabled = false;
  std::string iommu_detail;  // "62 IOMMU groups" or the hint to enable it
  Readiness interrupt_remapping = Readiness::kUnknown;
  std::string interrupt_remapping_detail;
  bool vfio_pci_available = false;
  std::string vfio_pci_detail;
  std::string policy;  // Policy::describe()
  std::vector<GpuReadiness> gpus;
};

class HostDevices {
 public:
  // `fs` and `db` must outlive this object (and `fs` every write it left blocked, see above).
  HostDevices(sys::Filesystem& fs, sys::HostPaths paths, store::Database& db, Policy policy,
              Options options = {});
  ~HostDevices();
  HostDevices(const HostDevices&) = delete;
  HostDevices& operator=(const HostDevices&) = delete;

  // Resolves `gpus` for VM `vm_id` without side effects: each request becomes every function of
  // its card's slot (function 0 first) plus the other endpoints of their IOMMU groups that the
  // policy lets travel along (group_peers); original drivers are the current ones, BARs the
  // present ones, numa_node the requested function's. Checks, in this order, and fails on the
  // first problem:
  //   INVALID_ARGUMENT  empty vm_id; an address that is not DDDD:BB:DD.F / BB:DD.F (nothing is
  //                     read for it); the same card twice (also via two of its functions).
  //   NOT_FOUND         no such PCI function.
  //   FAILED_PRECONDITION
  //                     the requested function is not display/3D ("0000:03:00.0 is a network
  //                     controller (0x020000) device, not a GPU"); the host has no IOMMU groups
  //                     ("IOMMU is not enabled ... boot with intel_iommu=on / amd_iommu=on"); a
  //                     function has no IOMMU group; an IOMMU group holds an endpoint that is
  //                     neither part of the request nor a peer the policy allows (naming it and
  //                     the group); the boot VGA without GpuSpec::boot_vga; a device held by a VM
  //                     in the ledger ("0000:18:00.0 is assigned to vm X"); a card's device nodes
  //                     (<dev>/nvidiaN, <dev>/dri/cardN, renderDN) or its group's <dev>/vfio/N
  //                     open in a host process (naming pid and command); vfio-pci not available
  //                     ("... modprobe vfio-pci").
  //   PERMISSION_DENIED the policy does not allow the requested GPU (naming it).
  //   INTERNAL          unreadable sysfs/proc data, naming the path.
  Result<std::vector<model::AssignedGpu>> plan(const std::string& vm_id,
                                               const std::vector<model::GpuSpec>& gpus) const;

  // plan(), then claims every device in the ledger in one transaction (of concurrent prepares of
  // the same device exactly one wins; the others fail FAILED_PRECONDITION naming the winner), then
  // reads each device's driver and driver_override again (a release by another VM may have been
  // returning it while it was planned; if so the claim is given back and the plan made again,
  // at most 3 times), then binds each device to vfio-pci: driver_override, unbind from the current driver, drivers_probe,
  // verify the driver link, and per group wait for <dev>/vfio/<group>. The ledger step is written
  // before each write. Independent IOMMU groups are prepared in parallel (one thread each).
  // On any failure every device is returned to its recorded state in reverse order (unbind from
  // vfio-pci, restore driver_override, rebind the original driver) and its ledger row deleted;
  // a device that cannot be returned keeps its row (step "releasing") and the error names it.
  // Returns what plan() returned. An empty `gpus` returns an empty list and touches nothing.
  // Errors: as plan(); FAILED_PRECONDITION when a prepare/release of this VM is in progress;
  // ABORTED when a device kept changing between plan and claim (naming it; retry);
  // DEADLINE_EXCEEDED for a write or wait that timed out (naming device and step);
  // INTERNAL/NOT_FOUND/FAILED_PRECONDITION from the kernel (naming device and step, errno text);
  // store errors from the ledger.
  Result<std::vector<model::AssignedGpu>> prepare(const std::string& vm_id,
                                                  const std::vector<model::GpuSpec>& gpus);

  // Returns every device the ledger holds for `vm_id` to the host (IOMMU groups in parallel):
  // unbind from vfio-pci, restore driver_override, bind the recorded original driver, verify;
  // then deletes the rows. Idempotent: a VM without rows is OK. A device that cannot be returned
  // keeps its row (step "releasing") and the error names it; the others are still released.
  // Errors: FAILED_PRECONDITION when a prepare/release of this VM is in progress; the first
  // device failure's code with every failed device in the message; store errors.
  Status release(const std::string& vm_id);

  // At daemon start: compares the ledger with the kernel's driver links. Rows of VMs in
  // `vms_that_keep_devices` whose device is on vfio-pci stay (step set back to "bound"); every
  // other row (unknown or stopped VMs, half-prepared devices at any step, devices of kept VMs that
  // are no longer on vfio-pci) is released like release() does. Devices on vfio-pci without a
  // row are reported, not touched (the operator may have bound them).
  // Errors: store errors only; device failures are listed in the report (rows kept for retry).
  Result<ReconcileReport> reconcile(const std::set<std::string>& vms_that_keep_devices);

  // Every PCI function with its facts, names, IOMMU group, and passthrough status. Reads devices
  // in parallel.
  // Errors: NOT_FOUND when <sysfs>/bus/pci/devices is missing; INTERNAL for unreadable sysfs.
  Result<Inventory> inventory() const;

  // Host readiness for passthrough: IOMMU, interrupt remapping, vfio-pci, and each GPU.
  // Errors: as inventory().
  Result<HostCheck> check_host() const;

  const Policy& policy() const { return policy_; }

 private:
  friend class VmOperation;

  // Binds the devices of one IOMMU group to vfio-pci, in order, then waits for its VFIO node.
  // Stops (CANCELLED) before the next device once `abort` is set (another group failed).
  Status bind_group(const std::string& vm_id, const std::vector<const detail::Target*>& devices,
                    const std::atomic<bool>& abort);
  // release() for a VM the caller has marked busy.
  Status release_rows_of(const std::string& vm_id);
  // Returns the VMs of devices whose blocked write came back (InDoubt) until destruction.
  void retry_loop();
  // Returns one device to `original_driver` / `original_override`, recording step "releasing".
  Status restore_device(const store::DeviceAssignment& row);
  // restore_device() for every row, IOMMU groups in parallel; deletes the rows it restored.
  // Returns the failures ("<bdf>: <error>") and the first failure's code.
  Status restore_rows(const std::string& vm_id, const std::vector<store::DeviceAssignment>& rows,
                      std::vector<std::string>* failures);
  Status set_step(const std::string& vm_id, const std::string& bdf, store::AssignmentStep step);
  // Polls the device's driver link until it names `driver` (step_timeout).
  Status wait_for_driver(const std::string& bdf, const std::string& driver, const std::string& what);
  // The bound driver's name, "" when unbound; NOT_FOUND when the device is gone.
  Result<std::string> current_driver(const std::string& bdf) const;
  // driver_override, "" for none.
  Result<std::string> current_override(const std::string& bdf) const;
  int64_t now_ms() const;
  // Marks `vm_id` busy for the caller's operation; FAILED_PRECONDITION when it already is.
  Status begin_vm_operation(const std::string& vm_id);
  void end_vm_operation(const std::string& vm_id);

  sys::Filesystem& fs_;
  const sys::HostPaths paths_;
  store::Database& db_;
  const Policy policy_;
  const Options options_;

  std::mutex busy_mu_;
  std::set<std::string> busy_vms_;  // guarded by busy_mu_
  // Static PCI facts kept between inventory() calls (it re-reads only what changes).
  mutable std::unique_ptr<detail::DeviceCache> device_cache_;

  struct InDoubt;  // host_devices.cc
  // Hooks for a write about `bdf` on behalf of `vm_id` that keep in_doubt_ current.
  LateWriteHooks late_hooks(const std::string& vm_id, const std::string& bdf) const;
  std::shared_ptr<InDoubt> in_doubt_;
  std::thread retrier_;  // runs retry_loop(); last member: starts after the others exist
};

}  // namespace feos::hostdev
