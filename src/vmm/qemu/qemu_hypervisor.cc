#include "vmm/qemu/qemu_hypervisor.h"

#include <signal.h>
#include <sys/un.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "common/log.h"
#include "model/field_path.h"
#include "model/validate.h"
#include "vmm/qemu/console.h"
#include "vmm/qemu/hotplug_ports.h"
#include "vmm/qemu/mmio_layout.h"
#include "vmm/qemu/qmp_client.h"
#include "vmm/qemu/run_as_grants.h"
#include "vmm/qemu/run_as_taps.h"
#include "vmm/qemu/runtime_dir.h"

namespace feos::vmm::qemu {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// State that exit watchers (launcher threads) share with the adapter; they hold it weakly, so
// a destroyed adapter is never called back.
struct QemuHypervisor::Shared {
  std::mutex mutex;
  std::condition_variable cv;
  std::map<std::string, std::shared_ptr<QemuProcess>> vms;  // attached or being started/adopted
  Hypervisor::ExitCallback callback;
  bool destroyed = false;
  int running_handlers = 0;
};

namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("qemu"); }

// True on a launcher thread while it runs on_exit().
thread_local bool t_in_exit_handler = false;

}  // namespace

Result<std::unique_ptr<QemuHypervisor>> QemuHypervisor::create(sys::ProcessLauncher& launcher,
                                                               sys::Filesystem& fs,
                                                               sys::HostPaths paths,
                                                               QemuConfig config) {
  auto permissions = sys::make_posix_permissions();
  auto hv = create(launcher, fs, *permissions, std::move(paths), std::move(config));
  if (hv) (*hv)->owned_permissions_ = std::move(permissions);
  return hv;
}

Result<std::unique_ptr<QemuHypervisor>> QemuHypervisor::create(sys::ProcessLauncher& launcher,
                                                               sys::Filesystem& fs,
                                                               sys::Permissions& permissions,
                                                               sys::HostPaths paths,
                                                               QemuConfig config) {
  if (config.binary.empty()) return fail(Code::kInvalidArgument, "qemu binary is empty");
  if (config.start_timeout.count() <= 0 || config.command_timeout.count() <= 0 ||
      config.stop_grace.count() <= 0)
    return fail(Code::kInvalidArgument, "qemu timeouts must be positive");
  if (config.hotplug_ports < 0 || config.hotplug_ports > kMaxHotplugPorts || config.unplug_timeout.count() <= 0)
    return fail(Code::kInvalidArgument, "hot-plug ports must be 0.." + std::to_string(kMaxHotplugPorts) +
                                            ", the unplug timeout positive");
  if (config.run_as && (config.run_as->uid == 0 || config.run_as->gid == 0))
    return fail(Code::kInvalidArgument, "qemu " + config.run_as->describe() +
                                            ": uid and gid must not be 0 (root)");
  Accel accel;
  if (config.accel == "kvm") {
    accel = Accel::kKvm;
    if (auto why_not = kvm_unusable_reason(paths))
      logger()->warn("accel kvm as configured, but guests may fail or hang: {}", *why_not);
  } else if (config.accel == "tcg") {
    accel = Accel::kTcg;
  } else if (config.accel == "auto") {
    auto why_not = kvm_unusable_reason(paths);
    accel = why_not ? Accel::kTcg : Accel::kKvm;
    if (why_not) logger()->info("accel auto picks tcg: {}", *why_not);
  } else {
    return fail(Code::kInvalidArgument,
                "qemu accel \"" + config.accel + "\" is not one of auto, kvm, tcg");
  }
  logger()->info("qemu adapter ready binary={} accel={} (configured {}) user={}", config.binary,
                 accel_name(accel), config.accel,
                 config.run_as ? config.run_as->describe() : "the daemon's");
  return std::unique_ptr<QemuHypervisor>(
      new QemuHypervisor(launcher, fs, permissions, std::move(paths), std::move(config), accel));
}

QemuHypervisor::QemuHypervisor(sys::ProcessLauncher& launcher, sys::Filesystem& fs,
                               sys::Permissions& permissions, sys::HostPaths paths,
                               QemuConfig config, Accel accel)
    : launcher_(launcher),
      fs_(fs),
      permissions_(permissions),
      paths_(std::move(paths)),
      config_(std::move(config)),
      accel_(accel),
      host_(fs_, paths_),
      process_context_{launcher_, permissions_, config_.command_timeout, config_.stop_grace},
      shared_(std::make_shared<Shared>()) {}

QemuHypervisor::~QemuHypervisor() {
  std::map<std::string, std::shared_ptr<QemuProcess>> vms;
  {
    std::unique_lock lock(shared_->mutex);
    shared_->destroyed = true;
    shared_->cv.wait(lock, [&] { return shared_->running_handlers == 0; });
    vms.swap(shared_->vms);
  }
  for (auto& [id, vm] : vms) {
    if (!vm->attached()) continue;  // a start()/adopt() in flight cleans up after itself
    vm->disconnect();
    logger()->info("detached from qemu vm={} pid={}", id, vm->pid());
  }
}

Status QemuHypervisor::validate(const model::VmSpec& spec) const {
  FEOS_TRY(model::validate(spec));
  auto exists = [&](const std::string& path, const std::string& field) -> Status {
    // With image roots, whether a file exists is only told for files inside them:
    // check_spec_files() gives every other path one answer (request_files.h).
    if (!config_.image_roots.empty()) return ok();
    if (!path.empty() && !fs_.exists(path))
      return fail(Code::kNotFound, field + ": " + quote_for_message(path) + " not found");
    return ok();
  };
  FEOS_TRY(exists(spec.image_path, model::field::kImageRef));
  FEOS_TRY(exists(spec.boot.kernel, model::field::kBootKernel));
  FEOS_TRY(exists(spec.boot.initramfs, model::field::kBootInitramfs));
  for (size_t i = 0; i < spec.disks.size(); ++i)
    FEOS_TRY(exists(spec.disks[i].path, model::field::disk(i, "path")));
  if (spec.memory.hugepages) FEOS_TRY(hugepage_mount(spec));
  if (spec.firmware.kind == model::FirmwareKind::kUefi)
    FEOS_TRY(find_uefi_firmware(fs_, config_.firmware_dirs, spec.firmware.secure_boot));
  uint64_t host_mib = host_.memory_mib();  // 0: unknown, not checked
  if (host_mib != 0 && spec.memory.size_mib > host_mib)
    return fail(Code::kInvalidArgument, std::string(model::field::kMemorySizeMib) + ": " +
                                            std::to_string(spec.memory.size_mib) +
                                            " MiB is more than this host's memory (" +
                                            std::to_string(host_mib) + " MiB)");
  return ok();
}

model::GuestLimits QemuHypervisor::guest_limits() const {
  model::GuestLimits limits;
  limits.host_phys_bits = host_.phys_bits();
  limits.accelerator = std::string(accel_name(accel_));
  limits.guest_phys_bits_max =
      accel_ == Accel::kKvm && limits.host_phys_bits > 0 ? limits.host_phys_bits : kMaxPhysBits;
  limits.guest_ram_bytes = host_.memory_mib() * kMiB;
  auto uefi = find_uefi_firmware(fs_, config_.firmware_dirs, /*secure_boot=*/false);
  if (uefi) limits.uefi_firmware = uefi->code;
  else limits.uefi_problem = uefi.error().message;
  return limits;
}

model::GpuFit QemuHypervisor::fit_gpus(const std::vector<model::AssignedGpu>& cards) const {
  const uint64_t ram = host_.memory_mib() * kMiB;
  // As argv_config(): only kvm binds the guest to the host's address bits.
  const int host_bits = accel_ == Accel::kKvm ? host_.phys_bits() : 0;
  return {.bios = fit_cards(ram, /*uefi=*/false, host_bits, cards),
          .uefi = fit_cards(ram, /*uefi=*/true, host_bits, cards)};
}

Result<model::VmSpec> QemuHypervisor::admit(const model::VmSpec& spec) const {
  FEOS_TRY(validate(spec));
  FEOS_ASSIGN_OR_RETURN(auto files, check_spec_files(spec, config_.image_roots, config_.reserved_dirs));
  return std::move(files.spec);
}

Status QemuHypervisor::watch(const std::shared_ptr<QemuProcess>& vm) {
  std::weak_ptr<Shared> weak = shared_;
  return vm->watch([weak, vm](const sys::ExitStatus& status) { on_exit(weak, vm, status); });
}

// Runs on the launcher's watcher thread when the process ends.
void QemuHypervisor::on_exit(const std::weak_ptr<Shared>& weak,
                             const std::shared_ptr<QemuProcess>& vm, const sys::ExitStatus& status) {
  if (!vm->mark_exited(status)) return;  // start() or adopt() is still running and reports it
  auto shared = weak.lock();
  if (!shared) return;
  {
    std::lock_guard lock(shared->mutex);
    if (shared->destroyed) return;
    ++shared->running_handlers;
  }
  t_in_exit_handler = true;
  ExitInfo info = vm->wind_down();
  Hypervisor::ExitCallback callback;
  {
    // Out of the map before stop() returns: the VM may be started again right after.
    std::lock_guard lock(shared->mutex);
    auto it = shared->vms.find(vm->vm_id());
    if (it != shared->vms.end() && it->second == vm) shared->vms.erase(it);
    callback = shared->callback;
  }
  vm->finish();
  logger()->info("qemu exited vm={} pid={} clean={} reason=\"{}\"", vm->vm_id(), vm->pid(),
                 info.clean, info.reason);
  if (callback) callback(vm->vm_id(), info);
  t_in_exit_handler = false;
  {
    std::lock_guard lock(shared->mutex);
    --shared->running_handlers;
  }
  shared->cv.notify_all();
}

Result<ArgvConfig> QemuHypervisor::argv_config(const model::VmSpec& spec,
                                               const std::vector<model::AssignedGpu>& gpus) const {
  const bool with_gpus = !gpus.empty();
  ArgvConfig config;
  if (spec.firmware.kind == model::FirmwareKind::kUefi) {
    FEOS_ASSIGN_OR_RETURN(config.uefi, find_uefi_firmware(fs_, config_.firmware_dirs, spec.firmware.secure_boot));
  }
  config.binary = config_.binary;
  config.accel = accel_;
  FEOS_TRY(add_memory_facts(config, spec, gpus));
  config.gpudirect_d4 = config_.gpudirect_d4;
  // The VM's own choice, else the daemon's (--guest-numa); either way only on a multi-node host.
  const bool numa_wanted = spec.guest_numa == model::GuestNumaMode::kDefault
                               ? config_.guest_numa
                               : spec.guest_numa == model::GuestNumaMode::kAuto;
  config.guest_numa = with_gpus && numa_wanted && host_.numa_nodes() > 1;
  config.hotplug_ports = config_.hotplug_ports;
  // Only kvm passes the host's address width through; tcg emulates whatever it is told.
  if (with_gpus && accel_ == Accel::kKvm) config.host_phys_bits = host_.phys_bits();
  return config;
}

Status QemuHypervisor::check_vfio_groups(const std::vector<model::AssignedGpu>& gpus) const {
  for (size_t i = 0; i < gpus.size(); ++i) {
    for (const auto* function : model::passed_functions(gpus[i])) {
      if (!function->iommu_group) continue;  // build_argv() refused it already
      std::string path = paths_.vfio_group(function->iommu_group->to_string());
      if (!fs_.exists(path))
        return fail(Code::kNotFound, model::field::gpu(i) + ": IOMMU group " +
                                         function->iommu_group->to_string() + " of " +
                                         function->address.to_string() + ": " + path +
                                         " not found: the host side did not bind it to vfio-pci");
    }
  }
  return ok();
}

Status QemuHypervisor::prepare_runtime_dir(QemuProcess& vm, const CheckedFiles& files,
                                           const std::vector<model::AssignedGpu>& gpus,
                                           const std::optional<UefiFirmware>& uefi) {
  const RuntimeDir& dir = vm.dir();
  // A qemu of this VM that this adapter does not know (a daemon killed right after launching it)
  // still holds its pidfile: starting another would give one VM two guests and its GPUs two users.
  FEOS_ASSIGN_OR_RETURN(int holder, dir.pid_file_holder());
  if (holder != 0)
    return fail(Code::kAlreadyExists,
                "a qemu process of this VM" +
                    (holder > 0 ? " (pid " + std::to_string(holder) + ")" : std::string()) +
                    " is still running (it holds " + dir.files().pid_file + ")");
  FEOS_TRY(dir.remove_stale());
  if (files.spec.ignition) FEOS_TRY(dir.write_ignition(*files.spec.ignition));
  if (uefi) FEOS_TRY(dir.ensure_uefi_vars(*uefi));
  if (config_.run_as) FEOS_TRY(give_to_user(vm, files, gpus, uefi));
  return ok();
}

Status QemuHypervisor::give_to_user(QemuProcess& vm, const CheckedFiles& files,
                                    const std::vector<model::AssignedGpu>& gpus,
                                    const std::optional<UefiFirmware>& uefi) {
  const sys::RunAs& user = *config_.run_as;
  // The daemon's files exist before the user may create entries in the directory, so qemu
  // cannot plant links under their names; the sticky bit keeps it from replacing them.
  FEOS_TRY(vm.dir().create_logs());
  auto nodes = vfio_group_nodes(paths_, gpus);
  FEOS_TRY(vm.grants().grant(user, vm.dir(), files.spec.ignition.has_value(), uefi.has_value(), nodes));
  FEOS_TRY(permissions_.check_access(
      user, run_as_access_checks(files, vm.dir(), nodes, paths_, accel_ == Accel::kKvm, uefi,
                                 files.spec.memory.hugepages ? hugepage_mount(files.spec).value_or(HugetlbMount{}).path : "")));
  if (!files.spec.nets.empty())
    FEOS_TRY(permissions_.check_access(user, {tun_access_check(paths_, model::field::net(0, "tap.tap_name"))}));
  for (size_t i = 0; i < files.spec.nets.size(); ++i)
    FEOS_TRY(check_tap_for_user(fs_, paths_, user, files.spec.nets[i].tap_name, model::field::net(i, "tap.tap_name")));
  logger()->info("qemu runs as {} vm={} vfio_groups={} runtime_dir={}", user.describe(),
                 vm.vm_id(), nodes.size(), vm.dir().path());
  return ok();
}

Result<QemuHypervisor::PlannedStart> QemuHypervisor::plan_launch(
    const std::string& vm_id, const model::VmSpec& spec,
    const std::vector<model::AssignedGpu>& gpus, const std::string& runtime_dir) const {
  auto in_vm = [&](const Error& e) { return e.context("vm " + vm_id); };
  FEOS_TRY(validate(spec).map_error(in_vm));
  if (gpus.size() != spec.gpus.size())
    return fail(Code::kFailedPrecondition,
                "vm " + vm_id + ": gpus: the spec asks for " + std::to_string(spec.gpus.size()) +
                    " GPUs but " + std::to_string(gpus.size()) + " were prepared");
  RuntimeDir dir(runtime_dir);
  if (dir.files().console_socket.size() >= sizeof(sockaddr_un::sun_path))
    return fail(Code::kInvalidArgument, "vm " + vm_id + ": runtime dir " + runtime_dir +
                                            " is too long for unix socket paths");
  FEOS_ASSIGN_OR_RETURN(ArgvConfig argv_config, this->argv_config(spec, gpus).map_error(in_vm));
  // The files again (they may have changed since create), with the formats recorded at create;
  // a VM created before formats were recorded gets them detected now.
  FEOS_ASSIGN_OR_RETURN(auto files, check_spec_files(spec, config_.image_roots, config_.reserved_dirs).map_error(in_vm));
  // qemu gets the resolved paths: a symbolic link swapped after the checks cannot redirect it.
  model::VmSpec resolved = files.spec;
  resolved.boot.kernel = files.kernel;
  resolved.boot.initramfs = files.initramfs;
  FEOS_ASSIGN_OR_RETURN(auto launch, build_launch(argv_config, resolved, files.images, gpus,
                                                  dir.files(), vm_id));
  if (argv_config.guest_numa) FEOS_TRY(check_guest_numa(spec, gpus, argv_config).map_error(in_vm));
  FEOS_ASSIGN_OR_RETURN(MemoryPlan memory, plan_guest_memory(spec, gpus, argv_config).map_error(in_vm));
  if (!gpus.empty())
    launch.decisions.push_back(
        "RLIMIT_MEMLOCK: " + format_bytes(memlock_bytes(spec, gpus)) +
        " (guest RAM + 1 GiB: VFIO pins all guest RAM for device DMA)");
  if (config_.run_as) launch.decisions.push_back("qemu runs as " + config_.run_as->describe());
  return PlannedStart{std::move(files), std::move(argv_config.uefi), std::move(launch), std::move(memory)};
}

Result<model::LaunchPlan> QemuHypervisor::plan_start(const std::string& vm_id,
                                                     const model::VmSpec& spec,
                                                     const std::vector<model::AssignedGpu>& gpus,
                                                     const std::string& runtime_dir) const {
  FEOS_ASSIGN_OR_RETURN(auto planned, plan_launch(vm_id, spec, gpus, runtime_dir));
  return std::move(planned.launch);
}

Result<int> QemuHypervisor::start(const std::string& vm_id, const model::VmSpec& spec,
                                  const std::vector<model::AssignedGpu>& gpus,
                                  const std::string& runtime_dir) {
  auto started_at = Clock::now();
  auto in_vm = [&](const Error& e) { return e.context("vm " + vm_id); };
  FEOS_ASSIGN_OR_RETURN(auto planned, plan_launch(vm_id, spec, gpus, runtime_dir));
  const CheckedFiles& files = planned.files;
  std::vector<std::string>& argv = planned.launch.argv;
  FEOS_TRY(check_vfio_groups(gpus).map_error(in_vm));
  RuntimeDir dir(runtime_dir);

  auto vm = std::make_shared<QemuProcess>(vm_id, std::move(dir), accel_, process_context_);
  if (!reserve(vm)) return fail(Code::kAlreadyExists, "vm " + vm_id + " already has a qemu process");
  auto failed = [&](const Error& error) -> Result<int> {
    vm->grants().give_back();  // nothing of qemu's user outlives a failed start
    forget(vm);
    return fail(error);
  };
  if (auto prepared = prepare_runtime_dir(*vm, files, gpus, planned.uefi); !prepared)
    return failed(in_vm(prepared.error()));
  const std::vector<std::string> memory_lines = describe_memory(planned.memory);
  for (const auto& line : memory_lines) report(vm_id, "memory", line);
  if (auto launched = vm->launch(argv, memlock_bytes(spec, gpus), planned.memory.launch_cpus, config_.run_as); !launched)
    return failed(launched.error());
  auto launched_at = Clock::now();

  // From here on, any failure kills the process and reports qemu's own words. qemu answers QMP
  // once its RAM is preallocated and pinned: a big guest gets longer for that.
  Status up = watch(vm);
  auto deadline = started_at + config_.start_timeout + memory_start_allowance(planned.memory);
  if (up) up = vm->connect(std::max(std::chrono::duration_cast<milliseconds>(deadline - Clock::now()), milliseconds(1)));
  auto qmp_at = Clock::now();
  auto seconds = [](auto d) { return fmt::format("{:.1f} s", std::chrono::duration<double>(d).count()); };
  if (up && !memory_lines.empty()) report(vm_id, "memory", "guest memory ready after " + seconds(qmp_at - launched_at));
  // The vCPU threads exist (stopped): pin them to their host nodes before they run.
  if (up)
    if (auto identity = read_qemu_identity(argv); identity && !identity->vcpu_host_nodes.empty())
      pin_vcpus(*vm, identity->vcpu_host_nodes);
  // The console is attached: let the vCPUs run.
  if (up) up = vm->run_vcpus();
  // If the process exited meanwhile, its watcher saw it unattached and left it to us.
  if (up && !vm->attach()) up = fail(Code::kInternal, "qemu exited while starting");
  if (!up) return failed(vm->end_failed_start(up.error()));
  if (!memory_lines.empty()) report(vm_id, "memory", "running after " + seconds(Clock::now() - started_at));
  auto ms = [](auto d) { return std::chrono::duration_cast<milliseconds>(d).count(); };
  logger()->info("qemu started vm={} pid={} accel={} launch_ms={} qmp_ms={} running_ms={}", vm_id,
                 vm->pid(), accel_name(accel_), ms(launched_at - started_at),
                 ms(qmp_at - launched_at), ms(Clock::now() - launched_at));
  return vm->pid();
}

bool QemuHypervisor::reserve(const std::shared_ptr<QemuProcess>& vm) {
  std::lock_guard lock(shared_->mutex);
  return shared_->vms.emplace(vm->vm_id(), vm).second;
}

void QemuHypervisor::forget(const std::shared_ptr<QemuProcess>& vm) {
  std::lock_guard lock(shared_->mutex);
  auto it = shared_->vms.find(vm->vm_id());
  if (it != shared_->vms.end() && it->second == vm) shared_->vms.erase(it);
}

Result<std::shared_ptr<QemuProcess>> QemuHypervisor::attached_process(const std::string& vm_id) const {
  std::shared_ptr<QemuProcess> vm;
  {
    std::lock_guard lock(shared_->mutex);
    auto it = shared_->vms.find(vm_id);
    if (it != shared_->vms.end()) vm = it->second;
  }
  if (!vm) return fail(Code::kNotFound, "vm " + vm_id + " has no qemu process");
  FEOS_TRY(vm->check_attached());
  return vm;
}

Status QemuHypervisor::stop(const std::string& vm_id) {
  auto vm = attached_process(vm_id);
  if (!vm) return vm.error().code == Code::kNotFound ? ok() : fail(vm.error());  // gone: fine
  return (*vm)->stop();
}

Result<std::shared_ptr<Console>> QemuHypervisor::console(const std::string& vm_id) {
  FEOS_ASSIGN_OR_RETURN(auto vm, attached_process(vm_id));
  return std::shared_ptr<Console>(vm->console());
}

void QemuHypervisor::set_exit_callback(ExitCallback callback) {
  std::unique_lock lock(shared_->mutex);
  shared_->callback = std::move(callback);
  // A callback already copied by a handler may still run; wait it out so the caller can tear
  // down what the old callback uses (not from inside a callback: that would wait for itself).
  if (!t_in_exit_handler) shared_->cv.wait(lock, [&] { return shared_->running_handlers == 0; });
}

}  // namespace feos::vmm::qemu
