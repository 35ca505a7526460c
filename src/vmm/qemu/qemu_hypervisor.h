#pragma once
// The QEMU implementation of vmm::Hypervisor: builds the command line (argv_builder), launches
// qemu through the ProcessLauncher seam, drives it over QMP and owns its serial console.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sys/filesystem.h"
#include "sys/host_paths.h"
#include "sys/process.h"
#include "vmm/hypervisor.h"
#include "vmm/qemu/argv_builder.h"

namespace feos::vmm::qemu {

struct QemuConfig {
  std::string binary = "qemu-system-x86_64";  // absolute path, or a name looked up in PATH
  // "kvm", "tcg", or "auto": kvm when <dev>/kvm opens read-write, else tcg.
  std::string accel = "auto";
  // launch -> QMP connected -> console attached -> vCPUs running, in total.
  std::chrono::milliseconds start_timeout{30000};
  std::chrono::milliseconds command_timeout{10000};  // each QMP command
  // stop(): QMP quit, wait this long, SIGTERM, wait again, SIGKILL, wait again.
  std::chrono::milliseconds stop_grace{10000};
  // NVIDIA GPUDirect P2P clique (0..15) given to every NVIDIA GPU of a VM (see
  // ArgvConfig::gpudirect_clique); unset = none.
  std::optional<int> gpudirect_clique;
};

// The physical address bits in /proc/cpuinfo text (the first "address sizes : 46 bits physical,
// 57 bits virtual" line); 0 when there is no such line or it does not parse.
int host_phys_bits_from_cpuinfo(std::string_view cpuinfo);

class QemuHypervisor final : public Hypervisor {
 public:
  // Checks `config` and resolves the accelerator. The launcher and filesystem must outlive the
  // hypervisor. Errors: INVALID_ARGUMENT for an unknown accel, an empty binary, a timeout <= 0
  // or a gpudirect clique outside 0..15.
  static Result<std::unique_ptr<QemuHypervisor>> create(sys::ProcessLauncher& launcher,
                                                        sys::Filesystem& fs,
                                                        sys::HostPaths paths, QemuConfig config);

  // Detaches from every VM and leaves the qemu processes running (a restarted daemon adopts
  // them); no exit callback runs after this returns. Not from inside the exit callback.
  ~QemuHypervisor() override;

  // validate_spec() plus: kernel, initramfs, root image and disk paths exist (NOT_FOUND naming the
  // field and path); the hugepages mount exists when hugepages are asked for (NOT_FOUND).
  Status validate(const model::VmSpec& spec) const override;

  // Writes the runtime files into `runtime_dir` (sockets, qemu.pid, ignition.json; qemu.log and
  // console.log are appended to), detects qcow2 images, launches qemu with its output in
  // qemu.log, connects QMP and the console, then resumes the vCPUs and checks they run.
  // With GPUs: the argv gets their root ports and vfio-pci functions (see build_argv; with kvm
  // the host's physical address bits come from <proc>/cpuinfo), every function's
  // <dev>/vfio/<group> must exist, and qemu runs with RLIMIT_MEMLOCK = guest RAM + 1 GiB: VFIO
  // pins all guest RAM for device DMA, plus what qemu maps for DMA beside it (firmware, option
  // ROMs; the same allowance libvirt makes). Too low a limit fails the start with qemu's
  // "vfio_dma_map ... Cannot allocate memory".
  // Errors: validate()'s; FAILED_PRECONDITION if the VM has a process already or `gpus` does not
  // hold one entry per spec.gpus request; build_argv()'s (INVALID_ARGUMENT / FAILED_PRECONDITION
  // for GPUs that do not fit); NOT_FOUND naming the group when a <dev>/vfio/<group> is missing
  // (the host side did not bind it); INVALID_ARGUMENT if runtime_dir is too long for unix socket
  // paths; NOT_FOUND if the qemu binary is missing; otherwise INTERNAL (qemu exited: its exit
  // status and the tail of qemu.log) or UNAVAILABLE/DEADLINE_EXCEEDED (QMP/console failure, with
  // the qemu.log tail). The process is killed on every failure after launch.
  Result<int> start(const std::string& vm_id, const model::VmSpec& spec,
                    const std::vector<model::AssignedGpu>& gpus,
                    const std::string& runtime_dir) override;

  // NOT_FOUND when `pid` is not alive or its /proc cmdline lacks this VM's `-name` argument;
  // FAILED_PRECONDITION if the VM has a process attached already; UNAVAILABLE when QMP or the
  // console cannot be reached (the process is left running). Running -> kRunning, any other
  // qemu run state (paused, prelaunch, ...) -> kPaused.
  Result<model::VmState> adopt(const std::string& vm_id, int pid,
                               const std::string& runtime_dir) override;

  // QMP stop / cont / system_powerdown. NOT_FOUND if the VM has no attached process; QMP errors
  // otherwise (see QmpClient::execute).
  Status pause(const std::string& vm_id) override;
  Status resume(const std::string& vm_id) override;
  Status request_shutdown(const std::string& vm_id) override;

  // QMP quit, then SIGTERM, then SIGKILL (stop_grace apart); returns once the process is gone
  // and the adapter dropped the VM (the exit callback reports a clean "stopped on request").
  // OK for an unknown VM; FAILED_PRECONDITION while start()/adopt() of it runs; INTERNAL if the
  // process survives SIGKILL.
  Status stop(const std::string& vm_id) override;

  // QMP query-version ("7.2.22"), the pid, features "accel=kvm|tcg". NOT_FOUND as pause().
  Result<PingInfo> ping(const std::string& vm_id) override;
  Result<std::shared_ptr<Console>> console(const std::string& vm_id) override;
  // Replaces the exit callback; when it returns, no call of the previous callback is still
  // running (unless called from inside the callback).
  void set_exit_callback(ExitCallback callback) override;

  // The accelerator new VMs get.
  Accel accel() const { return accel_; }

  struct VmProcess;
  struct Shared;

 private:
  QemuHypervisor(sys::ProcessLauncher& launcher, sys::Filesystem& fs, sys::HostPaths paths,
                 QemuConfig config, Accel accel);
  Result<std::shared_ptr<VmProcess>> attached(const std::string& vm_id) const;
  Status watch(const std::shared_ptr<VmProcess>& vm);
  Status connect(const std::shared_ptr<VmProcess>& vm, std::chrono::milliseconds timeout);
  void forget(const std::shared_ptr<VmProcess>& vm);
  int host_phys_bits() const;
  Status check_vfio_groups(const std::vector<model::AssignedGpu>& gpus) const;

  sys::ProcessLauncher& launcher_;
  sys::Filesystem& fs_;
  const sys::HostPaths paths_;
  const QemuConfig config_;
  const Accel accel_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace feos::vmm::qemu
