#pragma once
// The hypervisor seam. core/ drives VMs only through this interface, in domain types; the QEMU
// adapter (vmm/qemu) is the real implementation. Per-VM runtime files (control socket, console
// socket, logs) live in a directory that core/ owns and passes in.
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "model/capacity.h"
#include "model/vm.h"
#include "model/vm_plan.h"

namespace feos::vmm {

// Why a hypervisor process ended.
struct ExitInfo {
  bool clean = false;  // guest powered off, or the daemon asked the process to stop
  std::string reason;  // e.g. "guest powered off", "qemu killed by signal 9 (Killed)"
};

struct PingInfo {
  std::string version;  // hypervisor version, e.g. "7.2.19"
  int pid = 0;
  std::vector<std::string> features;  // e.g. "accel=tcg", "vfio"
};

// A guest's serial console. The adapter keeps the only connection to the hypervisor's console and
// fans its output out to any number of readers; recent output is replayed to each new reader.
class Console {
 public:
  using OnOutput = std::function<void(std::string_view bytes)>;
  using OnClosed = std::function<void()>;
  virtual ~Console() = default;
  // Delivers the retained recent output, then live output, from the console's reader thread.
  // `on_closed` runs once when the VM's console goes away. Returns a token for unsubscribe().
  virtual int subscribe(OnOutput on_output, OnClosed on_closed) = 0;
  virtual void unsubscribe(int token) = 0;
  // Sends input to the guest's serial port. UNAVAILABLE if the console is closed.
  virtual Status write(std::string_view input) = 0;
};

// Where the guest of a live hypervisor process stands. core/ decides the VM's state from it.
enum class RunState {
  kRunning,
  kPaused,
  kNotStarted,  // launched but never resumed: a start that was cut short (qemu's "prelaunch")
};

// A live hypervisor process that belongs to a VM, found on the host (see find_processes()).
struct FoundProcess {
  std::string vm_id;
  int pid = 0;
};

class Hypervisor {
 public:
  using ExitCallback = std::function<void(const std::string& vm_id, const ExitInfo& info)>;
  virtual ~Hypervisor() = default;

  // Checks a spec against what this hypervisor and host can run, with no side effects:
  // model::validate() first (INVALID_ARGUMENT), then what needs the host: referenced files exist
  // (NOT_FOUND), values within this host's bounds (INVALID_ARGUMENT).
  virtual Status validate(const model::VmSpec& spec) const = 0;

  // At create: validate(), plus the checks that need the real files, and what is recorded of them
  // for every later start (disk formats). Returns the spec to store.
  // Errors: as validate(); PERMISSION_DENIED for a file the host's rules do not allow.
  virtual Result<model::VmSpec> admit(const model::VmSpec& spec) const {
    FEOS_TRY(validate(spec));
    return spec;
  }

  // Starts the hypervisor process for `vm_id` with runtime files in `runtime_dir` (exists, owned
  // by the caller), passing through `gpus` (already bound to vfio-pci by the host side; empty for
  // none). Returns the pid once the guest is running. On failure nothing is left running and the
  // error carries the hypervisor's own message (INTERNAL/UNAVAILABLE). ALREADY_EXISTS, and
  // nothing is launched, while a process of this VM is alive: never two for one VM (the caller
  // must not take the VM's devices back from it).
  virtual Result<int> start(const std::string& vm_id, const model::VmSpec& spec,
                            const std::vector<model::AssignedGpu>& gpus,
                            const std::string& runtime_dir) = 0;

  // What start() would run for these arguments, computed by the code start() runs, with nothing
  // created, written or launched: the command line, the guest's address space and the decisions
  // behind it. Checks and errors as start(), except what only exists once create and start did
  // their work (the GPUs' VFIO nodes, the runtime directory, a live process of the VM).
  virtual Result<model::LaunchPlan> plan_start(const std::string& vm_id, const model::VmSpec& spec,
                                               const std::vector<model::AssignedGpu>& gpus,
                                               const std::string& runtime_dir) const = 0;

  // The bounds of a guest on this host (address bits, RAM, UEFI firmware), read anew on each call.
  virtual model::GuestLimits guest_limits() const = 0;

  // How many of `cards`, taken in order, one VM on this host holds with each firmware, by the
  // address-space check plan_start() runs, with guest_limits()'s RAM. Pure: nothing is reserved.
  virtual model::GpuFit fit_gpus(const std::vector<model::AssignedGpu>& cards) const = 0;

  // Re-attaches to the process `pid` of `vm_id` after a daemon restart; returns where its guest
  // stands. NOT_FOUND if the process is gone or is not this VM's.
  virtual Result<RunState> adopt(const std::string& vm_id, int pid, const std::string& runtime_dir) = 0;

  // Every live hypervisor process on the host whose runtime directory is <runtime_root>/<vm id>,
  // whatever the daemon's records say: a daemon killed while starting a VM leaves one that no
  // record names. Recovery adopts or stops each. A process that cannot be inspected is skipped.
  virtual std::vector<FoundProcess> find_processes(const std::string& runtime_root) = 0;

  // Ends a process of `vm_id` that find_processes() reported and that is not attached (adopt()
  // failed or was not wanted): SIGKILL, then waits until it is gone. OK if it is already gone.
  // FAILED_PRECONDITION if `pid` is not that VM's process; INTERNAL if it does not die.
  virtual Status kill_found(const std::string& vm_id, int pid) = 0;

  // Pause / resume the vCPUs. NOT_FOUND if the VM has no process.
  virtual Status pause(const std::string& vm_id) = 0;
  virtual Status resume(const std::string& vm_id) = 0;
  // Presses the ACPI power button; the guest decides when to power off.
  virtual Status request_shutdown(const std::string& vm_id) = 0;
  // Ends the process now (graceful quit, then SIGKILL) and waits for it. OK if already gone.
  virtual Status stop(const std::string& vm_id) = 0;
  virtual Result<PingInfo> ping(const std::string& vm_id) = 0;
  // The console of a started or adopted VM. NOT_FOUND if the VM has no process.
  virtual Result<std::shared_ptr<Console>> console(const std::string& vm_id) = 0;

  // --- Live device changes (hot-plug) of a running guest; GPUs are cold-plug only ---
  // Each plugs the device into a free hot-plug port reserved at start and returns once the
  // hypervisor holds it (the guest's own hot-plug driver picks it up). NOT_FOUND if the VM has
  // no process; ALREADY_EXISTS if a device of this id is plugged; RESOURCE_EXHAUSTED when every
  // hot-plug port is taken. attach_disk() checks the disk's files as start() does (the same
  // roots and refusals) and returns the disk with its format recorded; attach_nic() creates a
  // missing tap and returns whether it did (model::NetSpec::tap_created).
  virtual Result<model::DiskSpec> attach_disk(const std::string& vm_id, const model::DiskSpec& disk) = 0;
  virtual Result<bool> attach_nic(const std::string& vm_id, const model::NetSpec& nic) = 0;
  // Asks the guest to release the device, waits until it did (the hypervisor's unplug timeout),
  // then drops the device's backend. NOT_FOUND if the VM has no process; DEADLINE_EXCEEDED when
  // the guest did not release it in time (the device stays; the request may be retried);
  // FAILED_PRECONDITION for a device the guest cannot release while it runs (one it booted with
  // on the root bus). A device the hypervisor no longer has is OK (its backend is dropped).
  virtual Status detach_disk(const std::string& vm_id, const std::string& device_id) = 0;
  virtual Status detach_nic(const std::string& vm_id, const std::string& device_id) = 0;
  // Removes a tap attach_nic() created, once its NIC left the VM (detached, or the VM deleted);
  // OK when it is gone already.
  virtual Status remove_created_tap(const std::string& tap_name) = 0;

  // Runs once per started/adopted process when it ends (from a background thread), after the
  // adapter dropped its own state for the VM. Set before the first start()/adopt().
  virtual void set_exit_callback(ExitCallback callback) = 0;

  // What a slow start is doing, said while start() runs, on its thread ("memory": "preallocating
  // 64 GiB on host node 1 (2 MiB pages, 8 threads)", "guest memory ready after 41.2 s"), so a
  // client sees why a big VM takes time. A hypervisor that says nothing ignores the callback.
  using ProgressCallback =
      std::function<void(const std::string& vm_id, const std::string& component, const std::string& text)>;
  virtual void set_progress_callback(ProgressCallback /*callback*/) {}
};

}  // namespace feos::vmm
