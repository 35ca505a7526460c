#include "vmm/qemu/qemu_hypervisor.h"

#include <signal.h>
#include <sys/un.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "common/log.h"
#include "vmm/qemu/console.h"
#include "vmm/qemu/mmio_layout.h"
#include "vmm/qemu/qmp_client.h"
#include "vmm/qemu/request_files.h"
#include "vmm/qemu/run_as_grants.h"
#include "vmm/qemu/runtime_dir.h"
#include "vmm/spec_validation.h"

namespace feos::vmm::qemu {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// One qemu process the adapter started or adopted.
struct QemuHypervisor::VmProcess {
  std::string id;
  int pid = 0;
  RuntimeDir dir{""};  // set before the process is launched or adopted
  Accel accel = Accel::kTcg;
  off_t log_offset = 0;  // qemu.log size before this process started writing
  // Set before `attached` becomes true, closed by the exit handler or the destructor.
  std::unique_ptr<QmpClient> qmp;
  std::shared_ptr<QemuConsole> console;

  std::mutex mutex;
  std::condition_variable cv;
  bool attached = false;   // start()/adopt() succeeded: the exit handler owns the ending
  bool exited = false;     // the process is gone
  bool finished = false;   // the adapter dropped it (after exited)
  bool stop_requested = false;
  std::string shutdown_reason;  // "reason" of the last SHUTDOWN event
  sys::ExitStatus exit_status;
  // What the run-as user was given; set before the process is launched or adopted.
  std::optional<RunAsGrants> grants;
};

// State that exit watchers (launcher threads) share with the adapter; they hold it weakly, so
// a destroyed adapter is never called back.
struct QemuHypervisor::Shared {
  std::mutex mutex;
  std::condition_variable cv;
  std::map<std::string, std::shared_ptr<VmProcess>> vms;  // attached or being started/adopted
  Hypervisor::ExitCallback callback;
  bool destroyed = false;
  int running_handlers = 0;
};

namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("qemu"); }

// True on a launcher thread while it runs on_process_exit().
thread_local bool t_in_exit_handler = false;

std::string with_log(std::string message, const QemuHypervisor::VmProcess& vm) {
  std::string tail = vm.dir.qemu_log_tail(vm.log_offset);
  if (!tail.empty()) message += "; qemu.log: " + tail;
  return message;
}

ExitInfo exit_info(const QemuHypervisor::VmProcess& vm) {
  if (vm.stop_requested) return {true, "stopped on request"};
  if (vm.shutdown_reason == "guest-shutdown") return {true, "guest powered off"};
  std::string reason = "qemu " + vm.exit_status.describe();
  if (!vm.shutdown_reason.empty()) reason += " after shutdown (reason " + vm.shutdown_reason + ")";
  return {false, with_log(reason, vm)};
}

// Runs on the launcher's watcher thread when the process ends.
void on_process_exit(const std::weak_ptr<QemuHypervisor::Shared>& weak,
                     const std::shared_ptr<QemuHypervisor::VmProcess>& vm,
                     const sys::ExitStatus& status) {
  bool attached;
  {
    std::lock_guard lock(vm->mutex);
    vm->exited = true;
    vm->exit_status = status;
    attached = vm->attached;
  }
  vm->cv.notify_all();
  if (!attached) return;  // start() or adopt() is still running and reports it
  auto shared = weak.lock();
  if (!shared) return;
  {
    std::lock_guard lock(shared->mutex);
    if (shared->destroyed) return;
    ++shared->running_handlers;
  }
  t_in_exit_handler = true;
  // The process is gone: nothing of its user may keep the VM's devices.
  vm->grants->give_back();
  // qemu sends SHUTDOWN before it exits; once the QMP connection has ended, the reader has
  // handed us every event, so the reason below is final.
  vm->qmp->wait_closed(milliseconds(2000));
  ExitInfo info;
  {
    std::lock_guard lock(vm->mutex);
    info = exit_info(*vm);
  }
  Hypervisor::ExitCallback callback;
  {
    std::lock_guard lock(shared->mutex);
    auto it = shared->vms.find(vm->id);
    if (it != shared->vms.end() && it->second == vm) shared->vms.erase(it);
    callback = shared->callback;
  }
  vm->qmp->close();
  vm->console->close();
  {
    std::lock_guard lock(vm->mutex);
    vm->finished = true;
  }
  vm->cv.notify_all();
  logger()->info("qemu exited vm={} pid={} clean={} reason=\"{}\"", vm->id, vm->pid, info.clean,
                 info.reason);
  if (callback) callback(vm->id, info);
  t_in_exit_handler = false;
  {
    std::lock_guard lock(shared->mutex);
    --shared->running_handlers;
  }
  shared->cv.notify_all();
}

// Waits until `done` holds for `vm`, at most `timeout`.
template <typename Pred>
bool wait_vm(QemuHypervisor::VmProcess& vm, milliseconds timeout, Pred done) {
  std::unique_lock lock(vm.mutex);
  return vm.cv.wait_for(lock, timeout, [&] { return done(vm); });
}

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
  if (config.gpudirect_clique && (*config.gpudirect_clique < 0 || *config.gpudirect_clique > 15))
    return fail(Code::kInvalidArgument, "gpudirect clique " +
                                            std::to_string(*config.gpudirect_clique) +
                                            " is outside 0..15");
  if (config.run_as && (config.run_as->uid == 0 || config.run_as->gid == 0))
    return fail(Code::kInvalidArgument, "qemu " + config.run_as->describe() +
                                            ": uid and gid must not be 0 (root)");
  Accel accel;
  if (config.accel == "kvm") {
    accel = Accel::kKvm;
  } else if (config.accel == "tcg") {
    accel = Accel::kTcg;
  } else if (config.accel == "auto") {
    accel = kvm_available(paths) ? Accel::kKvm : Accel::kTcg;
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
      shared_(std::make_shared<Shared>()) {}

QemuHypervisor::~QemuHypervisor() {
  std::map<std::string, std::shared_ptr<VmProcess>> vms;
  {
    std::unique_lock lock(shared_->mutex);
    shared_->destroyed = true;
    shared_->cv.wait(lock, [&] { return shared_->running_handlers == 0; });
    vms.swap(shared_->vms);
  }
  for (auto& [id, vm] : vms) {
    bool attached;
    {
      std::lock_guard lock(vm->mutex);
      attached = vm->attached;
    }
    if (!attached) continue;  // a start()/adopt() in flight cleans up after itself
    vm->qmp->close();
    vm->console->close();
    logger()->info("detached from qemu vm={} pid={}", id, vm->pid);
  }
}

Status QemuHypervisor::validate(const model::VmSpec& spec) const {
  FEOS_TRY(validate_spec(spec));
  auto exists = [&](const std::string& path, const std::string& field) -> Status {
    // With image roots, whether a file exists is only told for files inside them:
    // check_spec_files() gives every other path one answer (request_files.h).
    if (!config_.image_roots.empty()) return ok();
    if (!path.empty() && !fs_.exists(path))
      return fail(Code::kNotFound, field + ": " + quote_for_message(path) + " not found");
    return ok();
  };
  FEOS_TRY(exists(spec.image_path, "image_ref"));
  FEOS_TRY(exists(spec.boot.kernel, "boot.kernel"));
  FEOS_TRY(exists(spec.boot.initramfs, "boot.initramfs"));
  for (size_t i = 0; i < spec.disks.size(); ++i)
    FEOS_TRY(exists(spec.disks[i].path, "disks[" + std::to_string(i) + "].path"));
  if (spec.memory.hugepages && !fs_.exists(paths_.hugepages()))
    return fail(Code::kNotFound, "memory.hugepages: hugetlbfs mount " + paths_.hugepages() + " not found");
  uint64_t host_mib = host_.memory_mib();  // 0: unknown, not checked
  if (host_mib != 0 && spec.memory.size_mib > host_mib)
    return fail(Code::kInvalidArgument, "memory.size_mib: " + std::to_string(spec.memory.size_mib) +
                                            " MiB is more than this host's memory (" +
                                            std::to_string(host_mib) + " MiB)");
  return ok();
}

Result<model::VmSpec> QemuHypervisor::admit(const model::VmSpec& spec) const {
  FEOS_TRY(validate(spec));
  auto files = check_spec_files(spec, config_.image_roots);
  if (!files) return fail(files.error());
  return std::move(files->spec);
}

Status QemuHypervisor::watch(const std::shared_ptr<VmProcess>& vm) {
  std::weak_ptr<Shared> weak = shared_;
  return launcher_.watch_exit(vm->pid, [weak, vm](const sys::ExitStatus& status) {
    on_process_exit(weak, vm, status);
  });
}

Status QemuHypervisor::connect(const std::shared_ptr<VmProcess>& vm, milliseconds timeout) {
  VmProcess* raw = vm.get();  // the QMP client and console are closed before *vm goes away
  auto keep_trying = [raw] {
    std::lock_guard lock(raw->mutex);
    return !raw->exited;
  };
  QmpClient::Options qmp_options;
  qmp_options.connect_timeout = timeout;
  qmp_options.command_timeout = config_.command_timeout;
  qmp_options.keep_trying = keep_trying;
  auto on_event = [raw](const QmpEvent& event) {
    if (event.name == "SHUTDOWN") {
      std::string reason = event.data.contains("reason") && event.data["reason"].is_string()
                               ? event.data["reason"].get<std::string>()
                               : "unknown";
      std::lock_guard lock(raw->mutex);
      raw->shutdown_reason = reason;
    }
    logger()->info("qemu event vm={} event={} data={}", raw->id, event.name, event.data.dump());
  };
  auto qmp = QmpClient::connect(vm->dir.files().qmp_socket, on_event, qmp_options);
  if (!qmp) return fail(qmp.error());
  QemuConsole::Options console_options;
  console_options.connect_timeout = config_.command_timeout;
  console_options.keep_trying = keep_trying;
  auto console = QemuConsole::open(vm->id, vm->dir.files().console_socket,
                                   vm->dir.files().console_log, console_options);
  if (!console) return fail(console.error());
  vm->qmp = std::move(*qmp);
  vm->console = std::move(*console);
  return ok();
}

Status QemuHypervisor::check_vfio_groups(const std::vector<model::AssignedGpu>& gpus) const {
  for (size_t i = 0; i < gpus.size(); ++i) {
    std::vector<const model::PassthroughFunction*> functions;
    for (const auto& function : gpus[i].functions) functions.push_back(&function);
    for (const auto& peer : gpus[i].group_peers) functions.push_back(&peer);
    for (const auto* function : functions) {
      // build_argv() checked that the group is a number, so this is a plain path.
      std::string path = paths_.vfio_group(function->iommu_group);
      if (!fs_.exists(path))
        return fail(Code::kNotFound, "gpus[" + std::to_string(i) + "]: IOMMU group " +
                                         function->iommu_group + " of " + function->address +
                                         ": " + path +
                                         " not found: the host side did not bind it to vfio-pci");
    }
  }
  return ok();
}

Status QemuHypervisor::grant_to_user(VmProcess& vm, const CheckedFiles& files,
                                     const std::vector<model::AssignedGpu>& gpus) {
  const sys::RunAs& user = *config_.run_as;
  // The daemon's files exist before the user may create entries in the directory, so qemu
  // cannot plant links under their names; the sticky bit keeps it from replacing them.
  FEOS_TRY(vm.dir.create_logs());
  auto nodes = vfio_group_nodes(paths_, gpus);
  FEOS_TRY(vm.grants->grant(user, vm.dir, files.spec.ignition.has_value(), nodes));
  FEOS_TRY(permissions_.check_access(
      user, run_as_access_checks(files, vm.dir, nodes, paths_, accel_ == Accel::kKvm)));
  logger()->info("qemu runs as {} vm={} vfio_groups={} runtime_dir={}", user.describe(), vm.id,
                 nodes.size(), vm.dir.path());
  return ok();
}

std::vector<FoundProcess> QemuHypervisor::find_processes(const std::string& runtime_root) {
  std::vector<FoundProcess> found;
  auto entries = fs_.list_dir(paths_.proc_root);
  if (!entries) {
    logger()->warn("cannot list processes path={} error=\"{}\"", paths_.proc_root, entries.error().message);
    return found;
  }
  std::error_code ec;
  const auto root = std::filesystem::weakly_canonical(runtime_root, ec);
  for (const auto& name : *entries) {
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos || name.size() > 9) continue;
    int pid = std::stoi(name);
    auto identity = read_process_identity(fs_, paths_, pid, "process " + name);
    if (!identity || identity->runtime_dir.empty()) continue;  // gone meanwhile, a kernel thread, or not ours
    auto dir = std::filesystem::weakly_canonical(identity->runtime_dir, ec);
    if (ec || dir.parent_path() != root || dir.filename().string() != identity->vm_id) continue;
    found.push_back({identity->vm_id, pid});
  }
  return found;
}

Status QemuHypervisor::kill_found(const std::string& vm_id, int pid) {
  std::string where = "vm " + vm_id + ": process " + std::to_string(pid);
  if (pid <= 0 || !launcher_.is_alive(pid)) return ok();
  auto identity = read_process_identity(fs_, paths_, pid, where);
  if (!identity) return launcher_.is_alive(pid) ? fail(Code::kFailedPrecondition, identity.error().message) : ok();
  if (!same_vm_id(identity->vm_id, vm_id))
    return fail(Code::kFailedPrecondition, where + " belongs to vm " + identity->vm_id);
  logger()->warn("killing qemu that is not attached vm={} pid={}", vm_id, pid);
  auto sent = launcher_.send_signal(pid, SIGKILL);
  if (!sent && sent.error().code != Code::kNotFound) return fail(sent.error().context(where));
  for (auto deadline = Clock::now() + config_.stop_grace; Clock::now() < deadline;) {
    if (!launcher_.is_alive(pid)) return ok();
    std::this_thread::sleep_for(milliseconds(20));
  }
  return fail(Code::kInternal, where + " did not exit after SIGKILL");
}

void QemuHypervisor::forget(const std::shared_ptr<VmProcess>& vm) {
  std::lock_guard lock(shared_->mutex);
  auto it = shared_->vms.find(vm->id);
  if (it != shared_->vms.end() && it->second == vm) shared_->vms.erase(it);
}

Result<int> QemuHypervisor::start(const std::string& vm_id, const model::VmSpec& spec,
                                  const std::vector<model::AssignedGpu>& gpus,
                                  const std::string& runtime_dir) {
  auto started_at = Clock::now();
  FEOS_TRY(validate(spec).map_error([&](const Error& e) { return e.context("vm " + vm_id); }));
  if (gpus.size() != spec.gpus.size())
    return fail(Code::kFailedPrecondition,
                "vm " + vm_id + ": gpus: the spec asks for " + std::to_string(spec.gpus.size()) +
                    " GPUs but " + std::to_string(gpus.size()) + " were prepared");
  auto vm = std::make_shared<VmProcess>();
  vm->id = vm_id;
  vm->dir = RuntimeDir(runtime_dir);
  vm->grants.emplace(permissions_, vm_id);
  vm->accel = accel_;
  if (vm->dir.files().console_socket.size() >= sizeof(sockaddr_un::sun_path))
    return fail(Code::kInvalidArgument, "vm " + vm_id + ": runtime dir " + runtime_dir +
                                            " is too long for unix socket paths");

  ArgvConfig argv_config;
  argv_config.binary = config_.binary;
  argv_config.accel = accel_;
  argv_config.hugepages_dir = paths_.hugepages();
  argv_config.gpudirect_clique = config_.gpudirect_clique;
  // Only kvm passes the host's address width through; tcg emulates whatever it is told.
  if (!gpus.empty() && accel_ == Accel::kKvm) argv_config.host_phys_bits = host_.phys_bits();
  // The files again (they may have changed since create), with the formats recorded at create;
  // a VM created before formats were recorded gets them detected now.
  auto files = check_spec_files(spec, config_.image_roots);
  if (!files) return fail(files.error().context("vm " + vm_id));
  // qemu gets the resolved paths: a symbolic link swapped after the checks cannot redirect it.
  model::VmSpec resolved = files->spec;
  resolved.boot.kernel = files->kernel;
  resolved.boot.initramfs = files->initramfs;
  auto argv = build_argv(argv_config, resolved, files->images, gpus, vm->dir.files(), vm_id);
  if (!argv) return fail(argv.error());
  FEOS_TRY(check_vfio_groups(gpus).map_error([&](const Error& e) { return e.context("vm " + vm_id); }));

  {
    std::lock_guard lock(shared_->mutex);
    if (shared_->vms.count(vm_id) != 0)
      return fail(Code::kAlreadyExists, "vm " + vm_id + " already has a qemu process");
    shared_->vms[vm_id] = vm;
  }
  auto failed = [&](Error error) -> Result<int> {
    vm->grants->give_back();  // nothing of qemu's user outlives a failed start
    forget(vm);
    return fail(std::move(error));
  };
  // A qemu of this VM that this adapter does not know (a daemon killed right after launching it)
  // still holds its pidfile: starting another would give one VM two guests and its GPUs two users.
  auto holder = vm->dir.pid_file_holder();
  if (!holder) return failed(holder.error().context("vm " + vm_id));
  if (*holder != 0)
    return failed(Error{Code::kAlreadyExists,
                        "vm " + vm_id + ": a qemu process of this VM" +
                            (*holder > 0 ? " (pid " + std::to_string(*holder) + ")" : std::string()) +
                            " is still running (it holds " + vm->dir.files().pid_file + ")"});
  auto removed = vm->dir.remove_stale();
  if (!removed) return failed(removed.error().context("vm " + vm_id));
  if (spec.ignition) {
    auto written = vm->dir.write_ignition(*spec.ignition);
    if (!written) return failed(written.error().context("vm " + vm_id));
  }
  if (config_.run_as) {
    auto granted = grant_to_user(*vm, *files, gpus);
    if (!granted) return failed(granted.error().context("vm " + vm_id));
  }

  vm->log_offset = vm->dir.qemu_log_size();
  sys::LaunchSpec launch;
  launch.argv = *argv;
  launch.output_path = vm->dir.files().qemu_log;
  // VFIO pins all guest RAM for device DMA, plus what qemu maps beside it (firmware, option
  // ROMs): RAM + 1 GiB, as libvirt allows. Without GPUs nothing is pinned: inherit the limit.
  launch.memlock_bytes = gpus.empty() ? 0 : spec.memory.size_mib * kMiB + kGiB;
  launch.run_as = config_.run_as;
  logger()->debug("launching qemu vm={} argv=\"{}\"", vm_id, fmt::join(*argv, " "));
  auto pid = launcher_.launch(launch);
  if (!pid) return failed(pid.error().context("vm " + vm_id + ": launch qemu"));
  vm->pid = *pid;
  auto launched_at = Clock::now();

  // From here on, any failure kills the process and reports qemu's own words.
  auto abort_start = [&](const Error& error) -> Result<int> {
    bool exited_by_itself;
    {
      std::lock_guard lock(vm->mutex);
      exited_by_itself = vm->exited;
    }
    if (!exited_by_itself) {
      // It may be on its way out (a QMP failure often means qemu is exiting): give its own
      // exit status a moment to arrive before we kill it.
      exited_by_itself = wait_vm(*vm, milliseconds(200), [](const VmProcess& v) { return v.exited; });
      if (!exited_by_itself) (void)launcher_.send_signal(vm->pid, SIGKILL);
    }
    bool gone = wait_vm(*vm, config_.stop_grace, [](const VmProcess& v) { return v.exited; });
    if (vm->qmp) vm->qmp->close();
    if (vm->console) vm->console->close();
    std::string message;
    Code code = error.code;
    if (exited_by_itself) {
      // qemu ended on its own (bad option, missing file, ...): its exit is the real cause.
      std::lock_guard lock(vm->mutex);
      message = "qemu " + vm->exit_status.describe() + " during start";
      code = Code::kInternal;
    } else {
      message = "qemu start failed: " + error.message;
    }
    if (!gone) message += " (pid " + std::to_string(vm->pid) + " did not exit after SIGKILL)";
    std::string full = with_log("vm " + vm_id + ": " + message, *vm);
    logger()->warn("qemu start failed vm={} pid={} error=\"{}\"", vm_id, vm->pid, full);
    return failed(Error{code, std::move(full)});
  };

  auto watched = watch(vm);
  if (!watched) return abort_start(watched.error());
  auto left = std::chrono::duration_cast<milliseconds>(started_at + config_.start_timeout - Clock::now());
  auto connected = connect(vm, std::max(left, milliseconds(1)));
  if (!connected) return abort_start(connected.error());
  auto qmp_at = Clock::now();
  // The console is attached: let the vCPUs run (qemu started them stopped, -S).
  auto resumed = vm->qmp->execute("cont");
  if (!resumed) return abort_start(resumed.error());
  auto status = vm->qmp->execute("query-status");
  if (!status) return abort_start(status.error());
  std::string run_state = status->value("status", "");
  if (run_state != "running")
    return abort_start(Error{Code::kInternal, "guest is " + run_state + " after cont, not running"});
  bool attached = false;
  {
    // If the process exited meanwhile, its watcher saw attached == false and left it to us.
    std::lock_guard lock(vm->mutex);
    if (!vm->exited) vm->attached = attached = true;
  }
  if (!attached) return abort_start(Error{Code::kInternal, "qemu exited while starting"});
  auto ms = [](auto d) { return std::chrono::duration_cast<milliseconds>(d).count(); };
  logger()->info("qemu started vm={} pid={} accel={} launch_ms={} qmp_ms={} running_ms={}", vm_id,
                 vm->pid, accel_name(accel_), ms(launched_at - started_at),
                 ms(qmp_at - launched_at), ms(Clock::now() - launched_at));
  return vm->pid;
}

Result<RunState> QemuHypervisor::adopt(const std::string& vm_id, int pid, const std::string& runtime_dir) {
  std::string where = "vm " + vm_id + ": process " + std::to_string(pid);
  if (pid <= 0 || !launcher_.is_alive(pid)) return fail(Code::kNotFound, where + " is not running");
  auto identity = read_process_identity(fs_, paths_, pid, where);
  if (!identity) return fail(identity.error());
  if (!same_vm_id(identity->vm_id, vm_id))
    return fail(Code::kNotFound, where + " is not this VM's qemu (no \"-name " + name_argument(vm_id) +
                                     "\" in its command line)");

  auto vm = std::make_shared<VmProcess>();
  vm->id = vm_id;
  vm->pid = pid;
  vm->dir = RuntimeDir(runtime_dir);
  vm->accel = identity->accel;
  vm->log_offset = vm->dir.qemu_log_size();
  vm->grants.emplace(permissions_, vm_id);
  vm->grants->take_over(adopted_grants(fs_, paths_, pid, identity->vfio_functions, vm->dir, vm_id));
  {
    std::lock_guard lock(shared_->mutex);
    if (shared_->vms.count(vm_id) != 0)
      return fail(Code::kFailedPrecondition, "vm " + vm_id + " already has a qemu process attached");
    shared_->vms[vm_id] = vm;
  }
  auto failed = [&](Error error) -> Result<RunState> {
    if (vm->qmp) vm->qmp->close();
    if (vm->console) vm->console->close();
    forget(vm);
    return fail(std::move(error));
  };
  auto watched = watch(vm);
  if (!watched) return failed(Error{Code::kNotFound, where + " is gone: " + watched.error().message});
  auto connected = connect(vm, config_.command_timeout);
  if (!connected) return failed(connected.error().context(where));
  auto status = vm->qmp->execute("query-status");
  if (!status) return failed(status.error().context(where));
  std::string run_state = status->value("status", "");
  bool attached = false;
  {
    std::lock_guard lock(vm->mutex);
    if (!vm->exited) vm->attached = attached = true;
  }
  if (!attached) {
    vm->grants->give_back();  // it ended: its user keeps nothing
    return failed(Error{Code::kNotFound, where + " exited during adoption"});
  }
  logger()->info("adopted qemu vm={} pid={} status={}", vm_id, pid, run_state);
  if (run_state == "running") return RunState::kRunning;
  if (run_state == "prelaunch") return RunState::kNotStarted;
  return RunState::kPaused;
}

Result<std::shared_ptr<QemuHypervisor::VmProcess>> QemuHypervisor::attached(
    const std::string& vm_id) const {
  std::shared_ptr<VmProcess> vm;
  {
    std::lock_guard lock(shared_->mutex);
    auto it = shared_->vms.find(vm_id);
    if (it != shared_->vms.end()) vm = it->second;
  }
  if (!vm) return fail(Code::kNotFound, "vm " + vm_id + " has no qemu process");
  std::lock_guard lock(vm->mutex);
  if (!vm->attached)
    return fail(Code::kFailedPrecondition, "vm " + vm_id + ": qemu is still starting");
  if (vm->exited) return fail(Code::kNotFound, "vm " + vm_id + ": qemu has exited");
  return vm;
}

Status QemuHypervisor::pause(const std::string& vm_id) {
  auto vm = attached(vm_id);
  if (!vm) return fail(vm.error());
  auto done = (*vm)->qmp->execute("stop");
  if (!done) return fail(done.error().context("vm " + vm_id));
  logger()->info("paused vm={}", vm_id);
  return ok();
}

Status QemuHypervisor::resume(const std::string& vm_id) {
  auto vm = attached(vm_id);
  if (!vm) return fail(vm.error());
  auto done = (*vm)->qmp->execute("cont");
  if (!done) return fail(done.error().context("vm " + vm_id));
  logger()->info("resumed vm={}", vm_id);
  return ok();
}

Status QemuHypervisor::request_shutdown(const std::string& vm_id) {
  auto vm = attached(vm_id);
  if (!vm) return fail(vm.error());
  auto done = (*vm)->qmp->execute("system_powerdown");
  if (!done) return fail(done.error().context("vm " + vm_id));
  logger()->info("power button pressed vm={}", vm_id);
  return ok();
}

Status QemuHypervisor::stop(const std::string& vm_id) {
  auto found = attached(vm_id);
  if (!found) {
    if (found.error().code == Code::kNotFound) return ok();  // already gone
    return fail(found.error());
  }
  auto vm = *found;
  {
    std::lock_guard lock(vm->mutex);
    vm->stop_requested = true;
  }
  auto finished = [](const VmProcess& v) { return v.finished; };
  logger()->info("stopping qemu vm={} pid={}", vm_id, vm->pid);
  // quit's reply races the exit: a closed connection is fine here.
  (void)vm->qmp->execute("quit");
  if (wait_vm(*vm, config_.stop_grace, finished)) return ok();
  for (int sig : {SIGTERM, SIGKILL}) {
    logger()->warn("qemu still running vm={} pid={}, sending signal {}", vm_id, vm->pid, sig);
    auto sent = launcher_.send_signal(vm->pid, sig);
    if (!sent && sent.error().code != Code::kNotFound)
      return fail(sent.error().context("vm " + vm_id));
    if (wait_vm(*vm, config_.stop_grace, finished)) return ok();
  }
  return fail(Code::kInternal, "vm " + vm_id + ": qemu pid " + std::to_string(vm->pid) +
                                   " did not exit after SIGKILL");
}

Result<PingInfo> QemuHypervisor::ping(const std::string& vm_id) {
  auto vm = attached(vm_id);
  if (!vm) return fail(vm.error());
  auto reply = (*vm)->qmp->execute("query-version");
  if (!reply) return fail(reply.error().context("vm " + vm_id));
  PingInfo info;
  // Checked like the greeting: qemu's reply is outside data (no float-to-int conversion of 1e300).
  auto version = reply->is_object() && reply->contains("qemu")
                     ? qmp_version_string((*reply)["qemu"])
                     : std::nullopt;
  if (!version)
    return fail(Code::kInternal, "vm " + vm_id + ": unexpected query-version reply " +
                                     reply->dump().substr(0, 512));
  info.version = *version;
  info.pid = (*vm)->pid;
  info.features.push_back("accel=" + std::string(accel_name((*vm)->accel)));
  return info;
}

Result<std::shared_ptr<Console>> QemuHypervisor::console(const std::string& vm_id) {
  auto vm = attached(vm_id);
  if (!vm) return fail(vm.error());
  return std::shared_ptr<Console>((*vm)->console);
}

void QemuHypervisor::set_exit_callback(ExitCallback callback) {
  std::unique_lock lock(shared_->mutex);
  shared_->callback = std::move(callback);
  // A callback already copied by a handler may still run; wait it out so the caller can tear
  // down what the old callback uses (not from inside a callback: that would wait for itself).
  if (!t_in_exit_handler) shared_->cv.wait(lock, [&] { return shared_->running_handlers == 0; });
}

}  // namespace feos::vmm::qemu
