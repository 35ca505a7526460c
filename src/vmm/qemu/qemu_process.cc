#include "vmm/qemu/qemu_process.h"

#include <signal.h>

#include <fmt/format.h>

#include "common/log.h"
#include "vmm/qemu/console.h"
#include "vmm/qemu/qmp_client.h"

namespace feos::vmm::qemu {
namespace {

using std::chrono::milliseconds;

std::shared_ptr<spdlog::logger> logger() { return log::get("qemu"); }

}  // namespace

QemuProcess::QemuProcess(std::string vm_id, RuntimeDir dir, Accel accel, const Context& context)
    : vm_id_(std::move(vm_id)),
      dir_(std::move(dir)),
      accel_(accel),
      context_(context),
      grants_(context.permissions, vm_id_) {}

QemuProcess::~QemuProcess() = default;

Status QemuProcess::launch(const std::vector<std::string>& argv, uint64_t memlock_bytes, const std::vector<int>& cpus,
                           const std::optional<sys::RunAs>& run_as) {
  log_offset_ = dir_.qemu_log_size();
  sys::LaunchSpec spec;
  spec.argv = argv;
  spec.output_path = dir_.files().qemu_log;
  spec.memlock_bytes = memlock_bytes;
  spec.cpus = cpus;
  spec.run_as = run_as;
  logger()->debug("launching qemu vm={} argv=\"{}\"", vm_id_, fmt::join(argv, " "));
  auto pid = context_.launcher.launch(spec);
  if (!pid) return fail(pid.error().context("vm " + vm_id_ + ": launch qemu"));
  pid_ = *pid;
  return ok();
}

void QemuProcess::adopt(int pid) {
  pid_ = pid;
  log_offset_ = dir_.qemu_log_size();
}

Status QemuProcess::watch(std::function<void(const sys::ExitStatus&)> on_exit) {
  return context_.launcher.watch_exit(pid_, std::move(on_exit));
}

Status QemuProcess::connect(milliseconds timeout) {
  auto keep_trying = [this] {
    std::lock_guard lock(mutex_);
    return !exited_;
  };
  QmpClient::Options qmp_options;
  qmp_options.connect_timeout = timeout;
  qmp_options.command_timeout = context_.command_timeout;
  qmp_options.keep_trying = keep_trying;
  auto on_event = [this](const QmpEvent& event) {
    if (event.name == "SHUTDOWN") {
      std::string reason = event.data.contains("reason") && event.data["reason"].is_string()
                               ? event.data["reason"].get<std::string>()
                               : "unknown";
      std::lock_guard lock(mutex_);
      shutdown_reason_ = reason;
    }
    if (event.name == "DEVICE_DELETED" && event.data.contains("device") && event.data["device"].is_string()) {
      {
        std::lock_guard lock(mutex_);
        deleted_devices_.insert(event.data["device"].get<std::string>());
      }
      cv_.notify_all();
    }
    logger()->info("qemu event vm={} event={} data={}", vm_id_, event.name, event.data.dump());
  };
  auto qmp = QmpClient::connect(dir_.files().qmp_socket, on_event, qmp_options);
  if (!qmp) return fail(qmp.error());
  QemuConsole::Options console_options;
  console_options.connect_timeout = context_.command_timeout;
  console_options.keep_trying = keep_trying;
  auto console = QemuConsole::open(vm_id_, dir_.files().console_socket, dir_.files().console_log,
                                   console_options);
  if (!console) return fail(console.error());
  qmp_ = std::move(*qmp);
  console_ = std::move(*console);
  return ok();
}

Status QemuProcess::run_vcpus() {
  FEOS_TRY(qmp_->execute("cont"));
  FEOS_ASSIGN_OR_RETURN(auto status, qmp_->execute("query-status"));
  std::string run_state = status.value("status", "");
  if (run_state != "running")
    return fail(Code::kInternal, "guest is " + run_state + " after cont, not running");
  return ok();
}

bool QemuProcess::attach() {
  std::lock_guard lock(mutex_);
  if (!exited_) attached_ = true;
  return attached_;
}

bool QemuProcess::attached() const {
  std::lock_guard lock(mutex_);
  return attached_;
}

Status QemuProcess::check_attached() const {
  std::lock_guard lock(mutex_);
  if (!attached_) return fail(Code::kFailedPrecondition, "vm " + vm_id_ + ": qemu is still starting");
  if (exited_) return fail(Code::kNotFound, "vm " + vm_id_ + ": qemu has exited");
  return ok();
}

Result<nlohmann::json> QemuProcess::execute(const std::string& command) {
  return qmp_->execute(command);
}

Result<nlohmann::json> QemuProcess::execute(const std::string& command, const nlohmann::json& arguments) {
  return qmp_->execute(command, arguments);
}

void QemuProcess::forget_deleted(const std::string& device_id) {
  std::lock_guard lock(mutex_);
  deleted_devices_.erase(device_id);
}

bool QemuProcess::wait_deleted(const std::string& device_id, milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!cv_.wait_for(lock, timeout, [&] { return deleted_devices_.count(device_id) != 0 || exited_; })) return false;
  return deleted_devices_.erase(device_id) != 0;
}

std::shared_ptr<QemuConsole> QemuProcess::console() const { return console_; }

bool QemuProcess::mark_exited(const sys::ExitStatus& status) {
  bool attached;
  {
    std::lock_guard lock(mutex_);
    exited_ = true;
    exit_status_ = status;
    attached = attached_;
  }
  cv_.notify_all();
  return attached;
}

ExitInfo QemuProcess::wind_down() {
  // Nothing of the process's user may keep the VM's devices.
  grants_.give_back();
  // qemu sends SHUTDOWN before it exits; once the QMP connection has ended, the reader has
  // handed us every event, so the reason below is final.
  qmp_->wait_closed(milliseconds(2000));
  std::lock_guard lock(mutex_);
  if (stop_requested_) return {true, "stopped on request"};
  if (shutdown_reason_ == "guest-shutdown") return {true, "guest powered off"};
  std::string reason = "qemu " + exit_status_.describe();
  if (!shutdown_reason_.empty()) reason += " after shutdown (reason " + shutdown_reason_ + ")";
  return {false, with_log(reason)};
}

void QemuProcess::finish() {
  disconnect();
  {
    std::lock_guard lock(mutex_);
    finished_ = true;
  }
  cv_.notify_all();
}

void QemuProcess::disconnect() {
  if (qmp_) qmp_->close();
  if (console_) console_->close();
}

Status QemuProcess::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = true;
  }
  auto finished = [this] { return finished_; };
  logger()->info("stopping qemu vm={} pid={}", vm_id_, pid_);
  // quit's reply races the exit: a closed connection is fine here.
  (void)qmp_->execute("quit");
  if (wait_until(context_.stop_grace, finished)) return ok();
  for (int sig : {SIGTERM, SIGKILL}) {
    logger()->warn("qemu still running vm={} pid={}, sending signal {}", vm_id_, pid_, sig);
    auto sent = context_.launcher.send_signal(pid_, sig);
    if (!sent && sent.error().code != Code::kNotFound) return fail(sent.error().context("vm " + vm_id_));
    if (wait_until(context_.stop_grace, finished)) return ok();
  }
  return fail(Code::kInternal,
              "vm " + vm_id_ + ": qemu pid " + std::to_string(pid_) + " did not exit after SIGKILL");
}

Error QemuProcess::end_failed_start(const Error& cause) {
  auto exited = [this] { return exited_; };
  // It may be on its way out (a QMP failure often means qemu is exiting): give its own exit
  // status a moment to arrive before we kill it.
  bool exited_by_itself = wait_until(milliseconds(200), exited);
  if (!exited_by_itself) (void)context_.launcher.send_signal(pid_, SIGKILL);
  bool gone = wait_until(context_.stop_grace, exited);
  disconnect();
  std::string message;
  Code code = cause.code;
  if (exited_by_itself) {
    // qemu ended on its own (bad option, missing file, ...): its exit is the real cause.
    std::lock_guard lock(mutex_);
    message = "qemu " + exit_status_.describe() + " during start";
    code = Code::kInternal;
  } else {
    message = "qemu start failed: " + cause.message;
  }
  if (!gone) message += " (pid " + std::to_string(pid_) + " did not exit after SIGKILL)";
  std::string full = with_log("vm " + vm_id_ + ": " + message);
  logger()->warn("qemu start failed vm={} pid={} error=\"{}\"", vm_id_, pid_, full);
  return Error{code, std::move(full)};
}

bool QemuProcess::wait_until(milliseconds timeout, const std::function<bool()>& done) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, timeout, done);
}

std::string QemuProcess::with_log(std::string message) const {
  std::string tail = dir_.qemu_log_tail(log_offset_);
  if (!tail.empty()) message += "; qemu.log: " + tail;
  return message;
}

}  // namespace feos::vmm::qemu
