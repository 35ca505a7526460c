#pragma once
// The QEMU implementation of vmm::Hypervisor: checks specs against the host (HostCaps), builds the
// command line (argv_builder), readies the runtime directory (RuntimeDir, RunAsGrants) and keeps
// one QemuProcess per VM, which launches qemu through the ProcessLauncher seam, drives it over QMP
// and owns its serial console.
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "sys/filesystem.h"
#include "sys/host_paths.h"
#include "sys/permissions.h"
#include "sys/process.h"
#include "sys/run_as.h"
#include "vmm/hypervisor.h"
#include "vmm/qemu/argv_builder.h"
#include "vmm/qemu/firmware.h"
#include "vmm/qemu/host_caps.h"
#include "vmm/qemu/memory_backing.h"
#include "vmm/qemu/qemu_cmdline.h"
#include "vmm/qemu/qemu_process.h"
#include "vmm/qemu/request_files.h"

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
  // The qemu places the GPUDirect capability at D4h when a GPU's MSI-X holds C8h (QEMU 8.1 and
  // newer; ArgvConfig::gpudirect_d4). The daemon sets it from probe_qemu_version(); false (QEMU
  // 7.2, Debian 12's) gives such GPUs no clique.
  bool gpudirect_d4 = false;
  // Mirror the host NUMA nodes of a VM's GPUs in the guest (guest_numa.h) when the host has more
  // than one node; false: never.
  bool guest_numa = true;
  // Run qemu as this unprivileged user (sys::resolve_user) instead of the daemon's root; see
  // start() for what the user is given. Unset: qemu runs as the daemon's user. Either way qemu
  // runs under its seccomp sandbox (kSandbox).
  std::optional<sys::RunAs> run_as;
  // Directories whose files (images, disks, kernels, initramfs, qcow2 backing files and external
  // data files) requests may name; empty: any regular file (request_files.h).
  FileRoots image_roots;
  // Directories of feosd's own files no request may name, inside the roots or not: its state
  // directory and image cache (feosd_reserved_dirs(), request_files.h). Of a VM's files only a
  // registry image's root disk lies there, in the cache.
  ReservedDirs reserved_dirs;
  // Empty pcie-root-ports each VM gets at start for disks and NICs attached while it runs
  // (hotplug_ports.h; 0..kMaxHotplugPorts), and how long a detach waits for the guest to release
  // a device (Linux's pciehp alone waits 5 s after the request).
  int hotplug_ports = 4;
  std::chrono::milliseconds unplug_timeout{20000};
  // Where UEFI guests' firmware is found: QEMU firmware descriptors (firmware.h), in priority order.
  std::vector<std::string> firmware_dirs = kFirmwareDescriptorDirs;
};

class QemuHypervisor final : public Hypervisor {
 public:
  // Checks `config` and resolves the accelerator. The launcher, filesystem and permissions must
  // outlive the hypervisor. Errors: INVALID_ARGUMENT for an unknown accel, an empty binary, a
  // timeout <= 0, or a run_as user with uid or gid 0.
  static Result<std::unique_ptr<QemuHypervisor>> create(sys::ProcessLauncher& launcher,
                                                        sys::Filesystem& fs,
                                                        sys::Permissions& permissions,
                                                        sys::HostPaths paths, QemuConfig config);
  // As above, with the real chown/chmod and access checks (sys::make_posix_permissions()),
  // owned by the hypervisor.
  static Result<std::unique_ptr<QemuHypervisor>> create(sys::ProcessLauncher& launcher,
                                                        sys::Filesystem& fs,
                                                        sys::HostPaths paths, QemuConfig config);

  // Detaches from every VM and leaves the qemu processes running (a restarted daemon adopts
  // them); no exit callback runs after this returns. Not from inside the exit callback.
  ~QemuHypervisor() override;

  // model::validate() plus: without image roots, kernel, initramfs, root image and disk paths exist
  // (NOT_FOUND naming the field and quoting the path; with roots, check_spec_files() answers for
  // them); the hugepages mount exists when hugepages are asked for (NOT_FOUND); the guest's
  // memory is not more than the host's RAM (<proc>/meminfo MemTotal; INVALID_ARGUMENT, skipped
  // when meminfo cannot be read); a UEFI spec finds its firmware (find_uefi_firmware():
  // FAILED_PRECONDITION naming the descriptor directories or the missing file).
  Status validate(const model::VmSpec& spec) const override;
  // validate(), then check_spec_files() on the real files (every file of every disk's image
  // graph): formats recorded.
  Result<model::VmSpec> admit(const model::VmSpec& spec) const override;

  // Starts qemu for the VM: validate(); check_spec_files() again on the real files (image graphs
  // resolved anew, formats recorded at create kept); build_argv() on the resolved paths (with kvm
  // and GPUs, the host's address bits from <proc>/cpuinfo); each GPU function's <dev>/vfio/<group>
  // must exist. Then, in runtime_dir (RuntimeDir): refuses a live qemu of the VM holding qemu.pid's
  // lock (also one this adapter does not know: never two processes for one VM), removes stale
  // sockets and pidfile, writes ignition.json, readies a UEFI guest's variable store
  // (RuntimeDir::ensure_uefi_vars(): copied at the first start, checked at later ones); with config.run_as creates qemu.log and console.log,
  // gives the user its paths (RunAsGrants::grant()) and checks that it reaches every file
  // (run_as_access_checks()). Launches qemu (QemuProcess) with its output in qemu.log and, with
  // GPUs, RLIMIT_MEMLOCK = guest RAM + 1 GiB (VFIO pins all guest RAM, plus what qemu maps beside
  // it: libvirt's allowance); connects QMP and the console; resumes the vCPUs and checks they run.
  // The grants go back when the process ends or the start fails.
  // Errors: validate()'s; FAILED_PRECONDITION if `gpus` does not hold one entry per spec.gpus
  // request; INVALID_ARGUMENT if runtime_dir is too long for unix socket paths;
  // check_spec_files()'s; build_argv()'s; NOT_FOUND naming a missing <dev>/vfio/<group> (the host
  // side did not bind it); ALREADY_EXISTS if the VM has a process (attached, or holding the
  // pidfile: naming the pid); RuntimeDir's (FAILED_PRECONDITION when the pidfile cannot be
  // inspected), RunAsGrants::grant()'s and check_access()'s; NOT_FOUND if the qemu binary is
  // missing; after launch, QemuProcess::end_failed_start()'s (INTERNAL when qemu exited by itself,
  // else the QMP or console error; the qemu.log tail). The process is killed on every failure
  // after launch.
  Result<int> start(const std::string& vm_id, const model::VmSpec& spec,
                    const std::vector<model::AssignedGpu>& gpus,
                    const std::string& runtime_dir) override;

  // start()'s checks and command line, up to the VFIO nodes: validate(), the spec's files
  // (check_spec_files()), build_launch() on the resolved paths; plus the RLIMIT_MEMLOCK start
  // would set. Creates, writes and launches nothing. Errors: start()'s up to build_argv()'s.
  Result<model::LaunchPlan> plan_start(const std::string& vm_id, const model::VmSpec& spec,
                                       const std::vector<model::AssignedGpu>& gpus,
                                       const std::string& runtime_dir) const override;

  // Under kvm the guest's address bits are the host CPU's; tcg emulates up to 52. The RAM is the
  // host's MemTotal, the largest guest it could run.
  model::GuestLimits guest_limits() const override;
  model::GpuFit fit_gpus(const std::vector<model::AssignedGpu>& cards) const override;

  // NOT_FOUND when `pid` is not alive or its /proc cmdline lacks this VM's `-name` argument;
  // FAILED_PRECONDITION if the VM has a process attached already; UNAVAILABLE when QMP or the
  // console cannot be reached (the process is left running). qemu's run state "running" ->
  // kRunning, "prelaunch" (started with -S, never resumed) -> kNotStarted, any other -> kPaused.
  Result<RunState> adopt(const std::string& vm_id, int pid, const std::string& runtime_dir) override;

  // Scans <proc>/*/cmdline for command lines build_argv() wrote whose -pidfile lies in
  // <runtime_root>/<vm id> (paths compared after resolving symlinks and "..").
  std::vector<FoundProcess> find_processes(const std::string& runtime_root) override;
  // Checks the cmdline again (the pid may have been reused), then SIGKILL; waits up to
  // stop_grace for the process to go.
  Status kill_found(const std::string& vm_id, int pid) override;

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

  // Hot-plug over QMP (qemu_hotplug.cc), into the ports of hotplug_ports.h: blockdev-add of the
  // disk's checked image graph (resolve_image_chain(), the image roots) and a virtio-blk-pci, or
  // a tap netdev (the tap created, persistent and up, when missing; owned by run_as's user) and
  // a virtio-net-pci; detach: device_del, DEVICE_DELETED within unplug_timeout, then the
  // backend goes (blockdev-del of the disk's nodes, netdev_del). With run_as, before any QMP
  // command, as at start: every file of the disk's graph must be reachable by the user
  // (chain_access_checks(); nothing of a request is given to the user, so a detach gives back
  // nothing), and the user must open <dev>/net/tun and an existing tap (run_as_taps.h); each
  // FAILED_PRECONDITION naming the file or tap and the user. Errors as Hypervisor's; a failed
  // attach leaves nothing plugged.
  Result<model::DiskSpec> attach_disk(const std::string& vm_id, const model::DiskSpec& disk) override;
  Result<bool> attach_nic(const std::string& vm_id, const model::NetSpec& nic) override;
  Status detach_disk(const std::string& vm_id, const std::string& device_id) override;
  Status detach_nic(const std::string& vm_id, const std::string& device_id) override;
  Status remove_created_tap(const std::string& tap_name) override;

  // QMP query-version ("7.2.22"), the pid, features "accel=kvm|tcg". NOT_FOUND as pause().
  Result<PingInfo> ping(const std::string& vm_id) override;
  Result<std::shared_ptr<Console>> console(const std::string& vm_id) override;
  // Replaces the exit callback; when it returns, no call of the previous callback is still
  // running (unless called from inside the callback).
  void set_exit_callback(ExitCallback callback) override;
  // start() reports, before launch, each preallocated backend (describe_memory()), then when
  // qemu answers QMP (its memory is preallocated and pinned) and when the vCPUs run.
  void set_progress_callback(ProgressCallback callback) override;

  // The accelerator new VMs get.
  Accel accel() const { return accel_; }

 private:
  struct Shared;  // the VM map and the exit callback, shared with exit watchers

  QemuHypervisor(sys::ProcessLauncher& launcher, sys::Filesystem& fs,
                 sys::Permissions& permissions, sys::HostPaths paths, QemuConfig config,
                 Accel accel);
  // The VM's process, once start()/adopt() attached it: check_attached()'s errors, NOT_FOUND
  // "vm <id> has no qemu process".
  Result<std::shared_ptr<QemuProcess>> attached_process(const std::string& vm_id) const;
  // One QMP command on the VM's attached process; logs "<done> vm=<id>" once it succeeded.
  Status qmp_command(const std::string& vm_id, const std::string& command, std::string_view done);
  // Enters `vm` in the map; false when its VM has a process there already.
  bool reserve(const std::shared_ptr<QemuProcess>& vm);
  void forget(const std::shared_ptr<QemuProcess>& vm);
  Status watch(const std::shared_ptr<QemuProcess>& vm);
  static void on_exit(const std::weak_ptr<Shared>& weak, const std::shared_ptr<QemuProcess>& vm,
                      const sys::ExitStatus& status);
  // What start() runs, computed without side effects: the checked files, the UEFI firmware of a
  // UEFI spec, and the launch plan.
  struct PlannedStart {
    CheckedFiles files;
    std::optional<UefiFirmware> uefi;
    model::LaunchPlan launch;
    MemoryPlan memory;  // the guest RAM's backends, for start()'s progress and its wait
  };
  // A guest NUMA layout's host nodes hold its RAM (guest_numa.h's check_host_nodes(); with
  // hugepages check_hugepages() counts them).
  Status check_guest_numa(const model::VmSpec& spec, const std::vector<model::AssignedGpu>& gpus,
                          const ArgvConfig& config) const;
  // Lets each vCPU thread of `vm` run only on the CPUs of its host node (`vcpu_host_nodes`, from
  // the command line: QemuIdentity), by the thread ids QMP query-cpus-fast gives. Not fatal: a
  // vCPU that cannot be pinned runs where the kernel puts it (logged as a warning).
  void pin_vcpus(QemuProcess& vm, const std::map<int, int>& vcpu_host_nodes);
  Result<PlannedStart> plan_launch(const std::string& vm_id, const model::VmSpec& spec,
                                   const std::vector<model::AssignedGpu>& gpus,
                                   const std::string& runtime_dir) const;
  // The builder's host facts for a VM; a UEFI spec gets its firmware (find_uefi_firmware()'s
  // errors), a hugepages spec its mount (hugepage_mount()'s errors).
  Result<ArgvConfig> argv_config(const model::VmSpec& spec, const std::vector<model::AssignedGpu>& gpus) const;
  // Guest RAM (qemu_memory.cc): the page size a hugepages spec gets (its own, else the host's
  // default; 0: unknown); its hugetlbfs mount (FAILED_PRECONDITION naming what is missing,
  // INVALID_ARGUMENT when the RAM is not whole pages of the host's default size); the mount and
  // the host nodes' CPU counts in `config`; the RAM's backends as build_argv() makes them, once
  // the free hugepages on the nodes the RAM is bound to (or on the host) hold them
  // (FAILED_PRECONDITION naming node, free and needed pages).
  uint64_t hugepage_kib(const model::VmSpec& spec) const;
  Result<HugetlbMount> hugepage_mount(const model::VmSpec& spec) const;
  Status add_memory_facts(ArgvConfig& config, const model::VmSpec& spec,
                          const std::vector<model::AssignedGpu>& gpus) const;
  Result<MemoryPlan> plan_guest_memory(const model::VmSpec& spec, const std::vector<model::AssignedGpu>& gpus,
                                       const ArgvConfig& config) const;
  // Logs a progress line of a start and hands it to the progress callback.
  void report(const std::string& vm_id, const std::string& component, const std::string& text) const;
  // detach_disk() and detach_nic(): the guest releases `device_id`, then `drop_backend` runs.
  Status unplug(const std::string& vm_id, const std::string& device_id, bool disk);
  Status check_vfio_groups(const std::vector<model::AssignedGpu>& gpus) const;
  Status prepare_runtime_dir(QemuProcess& vm, const CheckedFiles& files,
                             const std::vector<model::AssignedGpu>& gpus,
                             const std::optional<UefiFirmware>& uefi);
  Status give_to_user(QemuProcess& vm, const CheckedFiles& files,
                      const std::vector<model::AssignedGpu>& gpus,
                      const std::optional<UefiFirmware>& uefi);

  std::unique_ptr<sys::Permissions> owned_permissions_;  // set by the create() without one
  sys::ProcessLauncher& launcher_;
  sys::Filesystem& fs_;
  sys::Permissions& permissions_;
  const sys::HostPaths paths_;
  const QemuConfig config_;
  const Accel accel_;
  const HostCaps host_;
  const QemuProcess::Context process_context_;
  std::shared_ptr<Shared> shared_;
  mutable std::mutex progress_mutex_;
  ProgressCallback progress_;
};

}  // namespace feos::vmm::qemu
