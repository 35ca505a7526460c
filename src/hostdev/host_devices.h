#pragma once
// Host side of GPU passthrough, as a transaction: turns a VM's GPU requests into whole cards and
// IOMMU groups, validates them before touching anything, claims them in the ownership ledger,
// binds them to vfio-pci one recorded step at a time (ledger step first, then the kernel write,
// through VfioBinder), rolls back on failure, returns them to their host drivers, and reconciles
// the ledger with the kernel after a crash. Reads and writes only through sys::Filesystem and
// sys::HostPaths, so tests run it on a fake kernel; the ledger is a store::DeviceLedger.
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
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "hostdev/options.h"
#include "hostdev/policy.h"
#include "hostdev/vfio_binder.h"
#include "model/gpu.h"
#include "store/device_assignment.h"
#include "store/device_ledger.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"

namespace feos::hostdev {

namespace detail {
class DeviceCache;
struct Plan;
struct Target;
}

// What reconcile() did, per device (each entry "0000:18:00.0 (vm <id>)" plus detail).
struct ReconcileReport {
  std::vector<std::string> kept;      // rows of VMs that keep devices, on vfio-pci: untouched
  std::vector<std::string> released;  // returned to the original driver, row deleted
  std::vector<std::string> failed;    // could not be returned: "<bdf> (vm <id>): <error>"; row kept
  std::vector<std::string> unowned_vfio;  // on vfio-pci without a ledger row (bound by someone
                                          // else, e.g. the operator): reported, not touched
};

class HostDevices {
 public:
  // `fs` and `ledger` must outlive this object (and `fs` every write it left blocked, see above).
  HostDevices(sys::Filesystem& fs, sys::HostPaths paths, store::DeviceLedger& ledger,
              Policy policy, Options options = {});
  ~HostDevices();
  HostDevices(const HostDevices&) = delete;
  HostDevices& operator=(const HostDevices&) = delete;

  // Resolves `gpus` for VM `vm_id` without side effects: each request becomes every function of
  // its card's slot (function 0 first) plus the other endpoints of their IOMMU groups that the
  // policy lets travel along (group_peers); original drivers are the current ones, BARs the
  // present ones, numa_node the requested function's. Checks, in this order, and fails on the
  // first problem:
  //   INVALID_ARGUMENT  empty vm_id; the same card twice (also via two of its functions).
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
  //   FAILED_PRECONDITION (NVSwitch fabric, policy.h; after the policy check) on a host with
  //                     NVSwitches: some but not all of the board's GPUs in full-passthrough mode
  //                     or with no mode ("0000:18:00.0: this host's 8 GPUs are joined by 4
  //                     NVSwitches ... Ask for all 8 (gpu_count 8), or ..."); in shared mode, board
  //                     GPUs that are not exactly one partition (naming the partitions). A VM with
  //                     every board GPU in full-passthrough mode also takes every function of the
  //                     NVSwitches' IOMMU groups (AssignedGpu::fabric of its first board GPU,
  //                     ledger role kFabric), bound, claimed and released with the GPUs.
  //   PERMISSION_DENIED the policy does not allow the requested GPU (naming it).
  //   INTERNAL          unreadable sysfs/proc data, naming the path.
  // With `by_count`, that many more GPUs are picked by topology first (placement.h: one NUMA node
  // when possible, switch pairs for p2p), appended to `gpus`; errors: NOT_FOUND when no GPU
  // matches its model, RESOURCE_EXHAUSTED naming the free ones when too few are free; on an
  // NVSwitch board the fabric decides (placement.h).
  // With `decisions`, the planner's decisions (the placement, policy, whole cards, group peers,
  // bridges left to the host, each device's driver now and after) are appended, one sentence each.
  // prepare() plans with the same function (detail::make_plan) before it claims anything.
  Result<std::vector<model::AssignedGpu>> plan(const std::string& vm_id,
                                               const std::vector<model::GpuSpec>& gpus,
                                               std::vector<std::string>* decisions = nullptr,
                                               const std::optional<model::GpuCount>& by_count = std::nullopt) const;

  // plan(), then claims every device in the ledger in one transaction (of concurrent prepares of
  // the same device exactly one wins; the others fail FAILED_PRECONDITION naming the winner), then
  // reads each device's driver and driver_override again (a release by another VM may have been
  // returning it while it was planned; if so the claim is given back and the plan made again,
  // at most 3 times), then binds each device to vfio-pci: driver_override, unbind from the current
  // driver, drivers_probe, verify the driver link, and per group wait for <dev>/vfio/<group>. The
  // ledger step is written before each write. Independent IOMMU groups are prepared in parallel
  // (one thread each).
  // On any failure every device is returned to its recorded state in reverse order (unbind from
  // vfio-pci, restore driver_override, rebind the original driver) and its ledger row deleted;
  // a device that cannot be returned keeps its row (step "releasing") and the error names it.
  // The pick of `by_count` and the claim are one step: plans and claims of all VMs are serialized
  // (they only read sysfs and write the ledger; binding runs in parallel), so concurrent requests
  // never pick the same GPU, and a request that finds too few free ones is told which are.
  // Returns what plan() returned. An empty `gpus` returns an empty list and touches nothing.
  // Errors: as plan(); FAILED_PRECONDITION when a prepare/release of this VM is in progress;
  // ABORTED when a device kept changing between plan and claim (naming it; retry);
  // DEADLINE_EXCEEDED for a write or wait that timed out (naming device and step);
  // INTERNAL/NOT_FOUND/FAILED_PRECONDITION from the kernel (naming device and step, errno text);
  // ledger errors.
  Result<std::vector<model::AssignedGpu>> prepare(const std::string& vm_id,
                                                  const std::vector<model::GpuSpec>& gpus,
                                                  const std::optional<model::GpuCount>& by_count = std::nullopt);

  // prepare() in two calls, for a create that answers before the slow part: claim() is step 1
  // (plan and ledger claim, no sysfs write; prepare()'s plan/claim errors) and keeps the plan for
  // the VM; bind() is step 2 on that plan. bind() stops between devices once `*cancel` is set
  // (CANCELLED). A failed or cancelled bind() does NOT roll back: the devices stay the VM's in the
  // ledger (each row at the step it reached) until the caller's release(), so the caller can stop
  // showing them on its VM before another VM may take them. FAILED_PRECONDITION from bind()
  // without a claim; release() gives a claim back too (its rows, nothing bound yet).
  Result<std::vector<model::AssignedGpu>> claim(const std::string& vm_id, const std::vector<model::GpuSpec>& gpus,
                                                const std::optional<model::GpuCount>& by_count = std::nullopt);
  Status bind(const std::string& vm_id, const std::atomic<bool>* cancel = nullptr);

  // Returns every device the ledger holds for `vm_id` to the host (IOMMU groups in parallel):
  // unbind from vfio-pci, restore driver_override, bind the recorded original driver, verify;
  // then deletes the rows. Idempotent: a VM without rows is OK. A device that cannot be returned
  // keeps its row (step "releasing") and the error names it; the others are still released.
  // Errors: FAILED_PRECONDITION when a prepare/release of this VM is in progress; the first
  // device failure's code with every failed device in the message; ledger errors.
  Status release(const std::string& vm_id);

  // At daemon start: compares the ledger with the kernel's driver links. Rows of VMs in
  // `vms_that_keep_devices` whose device is on vfio-pci stay (step set back to "bound"); every
  // other row (unknown or stopped VMs, half-prepared devices at any step, devices of kept VMs that
  // are no longer on vfio-pci) is released like release() does. Devices on vfio-pci without a
  // row are reported, not touched (the operator may have bound them).
  // Errors: ledger errors only; device failures are listed in the report (rows kept for retry).
  Result<ReconcileReport> reconcile(const std::set<std::string>& vms_that_keep_devices);

  const Policy& policy() const { return policy_; }

 private:
  friend class VmOperation;

  // prepare(), step 1: plan, claim every device in the ledger, and read each device again; a
  // device that moved meanwhile gives the claim back and plans again (at most 3 times).
  Result<detail::Plan> claim_plan(const std::string& vm_id, const std::vector<model::GpuSpec>& gpus,
                                  const std::optional<model::GpuCount>& by_count);
  // plan()'s body: the placement of `by_count` (when set) and make_plan() on one view.
  Result<detail::Plan> make_full_plan(const std::vector<model::GpuSpec>& gpus,
                                      const std::optional<model::GpuCount>& by_count) const;
  // prepare(), step 2: bind_group() for every IOMMU group, groups in parallel. The error: the
  // first failing group's code, every failing group's message.
  Status bind_groups(const std::string& vm_id, const detail::Plan& plan, const std::atomic<bool>* cancel = nullptr);
  // Binds the devices of one IOMMU group to vfio-pci, in order, then waits for its VFIO node.
  // Stops (CANCELLED) before the next device once `abort` is set (another group failed).
  Status bind_group(const std::string& vm_id, const std::vector<const detail::Target*>& devices,
                    const std::atomic<bool>& abort, const std::atomic<bool>* cancel);
  // prepare(), step 3: returns every device the ledger holds for `vm_id` after `failure`; the
  // result is `failure` with what the rollback left behind added to its message.
  Error roll_back(const std::string& vm_id, const Error& failure);

  // release() for a VM the caller has marked busy.
  Status release_rows_of(const std::string& vm_id);
  // The in-doubt tracker's callback: release_rows_of(vm_id) once no operation of the VM runs;
  // false (ask again) while one does.
  bool release_after_late_write(const std::string& vm_id);
  // Returns one device to `original_driver` / `original_override`, recording step "releasing".
  Status restore_device(const store::DeviceAssignment& row);
  // restore_device() for every row, IOMMU groups in parallel; deletes the rows it restored.
  // Returns the failures ("<bdf>: <error>") and the first failure's code.
  Status restore_rows(const std::string& vm_id, const std::vector<store::DeviceAssignment>& rows,
                      std::vector<std::string>* failures);

  Status set_step(const std::string& vm_id, const pci::Address& bdf, store::AssignmentStep step);
  int64_t now_ms() const;
  // Marks `vm_id` busy for the caller's operation; FAILED_PRECONDITION when it already is.
  Status begin_vm_operation(const std::string& vm_id);
  void end_vm_operation(const std::string& vm_id);

  const sys::Filesystem& fs_;
  const sys::HostPaths paths_;
  store::DeviceLedger& ledger_;
  const Policy policy_;
  const Options options_;

  std::mutex busy_mu_;
  std::set<std::string> busy_vms_;  // guarded by busy_mu_
  // claim()'s plans until bind() or release(); guarded by busy_mu_.
  std::map<std::string, std::unique_ptr<detail::Plan>> claims_;
  // Held from plan to claim in claim_plan(): one VM's pick sees every earlier claim.
  std::mutex claim_mu_;
  // Static PCI facts kept between placements (a by-count pick reads every function).
  const std::unique_ptr<detail::DeviceCache> device_cache_;

  // Last member: destroyed first, it stops the in-doubt thread that calls back into this object.
  VfioBinder binder_;
};

}  // namespace feos::hostdev
