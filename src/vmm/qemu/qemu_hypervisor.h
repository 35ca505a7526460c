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
#include "sys/permissions.h"
#include "sys/process.h"
#include "sys/run_as.h"
#include "vmm/hypervisor.h"
#include "vmm/qemu/argv_builder.h"
#include "vmm/qemu/host_caps.h"
#include "vmm/qemu/qemu_cmdline.h"
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
  // NVIDIA GPUDirect P2P clique (0..15) given to every NVIDIA GPU of a VM (see
  // ArgvConfig::gpudirect_clique); unset = none.
  std::optional<int> gpudirect_clique;
  // Run qemu as this unprivileged user (sys::resolve_user) instead of the daemon's root; see
  // start() for what the user is given. Unset: qemu runs as the daemon's user. Either way qemu
  // runs under its seccomp sandbox (kSandbox).
  std::optional<sys::RunAs> run_as;
  // Directories whose files (images, disks, kernels, initramfs, qcow2 backing files and external
  // data files) requests may name; empty: any regular file (request_files.h).
  FileRoots image_roots;
};

class QemuHypervisor final : public Hypervisor {
 public:
  // Checks `config` and resolves the accelerator. The launcher, filesystem and permissions must
  // outlive the hypervisor. Errors: INVALID_ARGUMENT for an unknown accel, an empty binary, a
  // timeout <= 0, a gpudirect clique outside 0..15, or a run_as user with uid or gid 0.
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

  // validate_spec() plus: without image roots, kernel, initramfs, root image and disk paths exist
  // (NOT_FOUND naming the field and quoting the path; with roots, check_spec_files() answers for
  // them); the hugepages mount exists when hugepages are asked for (NOT_FOUND); the guest's
  // memory is not more than the host's RAM (<proc>/meminfo MemTotal; INVALID_ARGUMENT, skipped
  // when meminfo cannot be read).
  Status validate(const model::VmSpec& spec) const override;
  // validate(), then check_spec_files() on the real files (every file of every disk's image
  // graph): formats recorded.
  Result<model::VmSpec> admit(const model::VmSpec& spec) const override;

  // Writes the runtime files into `runtime_dir` (sockets, qemu.pid, ignition.json; qemu.log and
  // console.log are appended to), checks the spec's files again (check_spec_files(): the image
  // graphs resolved anew, formats recorded at create kept), launches qemu on the resolved paths
  // with the explicit block graph (block_graph.h) and its output in qemu.log, connects QMP and
  // the console, then resumes the vCPUs and checks they run.
  // With GPUs: the argv gets their root ports and vfio-pci functions (see build_argv; with kvm
  // the host's physical address bits come from <proc>/cpuinfo), every function's
  // <dev>/vfio/<group> must exist, and qemu runs with RLIMIT_MEMLOCK = guest RAM + 1 GiB: VFIO
  // pins all guest RAM for device DMA, plus what qemu maps for DMA beside it (firmware, option
  // ROMs; the same allowance libvirt makes). Too low a limit fails the start with qemu's
  // "vfio_dma_map ... Cannot allocate memory".
  // With config.run_as, before the launch: qemu.log and console.log are created (the daemon's,
  // root-owned); runtime_dir becomes root:<user's gid> 01770 (qemu creates its sockets and
  // pidfile there, and the sticky bit keeps it from replacing the daemon's files); ignition.json
  // root:<gid> 0640; every <dev>/vfio/<group> of the VM <uid>:<gid> 0600 (<dev>/vfio/vfio, the
  // container, is left as the kernel made it, 0666). Then a child holding only the user's
  // identity checks that the user can read the kernel and initramfs, read and write the root
  // image and writable disks with their external data files, read the read-only disks and every
  // backing file with its data file, create files in runtime_dir (every parent must be
  // searchable by it) and in the hugepages mount when asked for, open <dev>/kvm with kvm, and
  // the vfio nodes. Request files are never chowned. qemu then execs as the user
  // (RLIMIT_MEMLOCK set before the identity change). When the process ends, or the start fails,
  // the group nodes and ignition.json go back to root:root 0600 and runtime_dir to root:root
  // 0755; for an adopted qemu running as a non-root user, the same happens at its exit (its
  // groups found from its vfio-pci host= arguments).
  // Never two processes for one VM: before anything is written, a live qemu holding the lock of
  // runtime_dir's qemu.pid (qemu locks its pidfile for its lifetime, also one this adapter does not
  // know, e.g. left by a daemon killed mid-start) fails the start.
  // Errors: validate()'s; FAILED_PRECONDITION if the VM has a process already (attached, or alive
  // holding its pidfile, naming the pid) or `gpus` does not hold one entry per spec.gpus request;
  // check_spec_files()'s (request_files.h); build_argv()'s (INVALID_ARGUMENT /
  // FAILED_PRECONDITION for GPUs that do not fit); NOT_FOUND naming the group when a
  // <dev>/vfio/<group> is missing (the host side did not bind it); INVALID_ARGUMENT if
  // runtime_dir is too long for unix socket paths; with run_as, FAILED_PRECONDITION naming the
  // field, path and user that cannot access it, or the set_owner() error naming the path;
  // NOT_FOUND if the qemu binary is missing; otherwise INTERNAL (qemu exited: its exit status and
  // the tail of qemu.log) or UNAVAILABLE/DEADLINE_EXCEEDED (QMP/console failure, with the
  // qemu.log tail). The process is killed on every failure after launch.
  Result<int> start(const std::string& vm_id, const model::VmSpec& spec,
                    const std::vector<model::AssignedGpu>& gpus,
                    const std::string& runtime_dir) override;

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
  QemuHypervisor(sys::ProcessLauncher& launcher, sys::Filesystem& fs,
                 sys::Permissions& permissions, sys::HostPaths paths, QemuConfig config,
                 Accel accel);
  Result<std::shared_ptr<VmProcess>> attached(const std::string& vm_id) const;
  Status watch(const std::shared_ptr<VmProcess>& vm);
  Status connect(const std::shared_ptr<VmProcess>& vm, std::chrono::milliseconds timeout);
  void forget(const std::shared_ptr<VmProcess>& vm);
  Status check_vfio_groups(const std::vector<model::AssignedGpu>& gpus) const;
  Status grant_to_user(VmProcess& vm, const CheckedFiles& files,
                       const std::vector<model::AssignedGpu>& gpus);

  std::unique_ptr<sys::Permissions> owned_permissions_;  // set by the create() without one
  sys::ProcessLauncher& launcher_;
  sys::Filesystem& fs_;
  sys::Permissions& permissions_;
  const sys::HostPaths paths_;
  const QemuConfig config_;
  const Accel accel_;
  const HostCaps host_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace feos::vmm::qemu
