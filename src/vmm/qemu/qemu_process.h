#pragma once
// One qemu process of a VM, launched or adopted by the adapter: its pid, QMP client and console,
// the grants of its run-as user, its exit, and the stop ladder.
// Its life: launch() or adopt(), watch(), connect(), attach() -> attached: from then on the exit
// watcher owns the ending -> exited (mark_exited(), on the launcher's watcher thread) ->
// finished (finish(): the adapter dropped it; stop() returns). Until attached, the caller
// (QemuHypervisor::start()/adopt()) ends a failed start itself (end_failed_start()).
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sys/permissions.h"
#include "sys/process.h"
#include "sys/run_as.h"
#include "vmm/hypervisor.h"
#include "vmm/qemu/argv_builder.h"
#include "vmm/qemu/run_as_grants.h"
#include "vmm/qemu/runtime_dir.h"

namespace feos::vmm::qemu {

class QmpClient;
class QemuConsole;

class QemuProcess {
 public:
  // What the processes of one adapter share. The launcher and permissions must outlive every
  // call of a QemuProcess method (an exit watcher may hold the object longer, without calling).
  struct Context {
    sys::ProcessLauncher& launcher;
    sys::Permissions& permissions;
    std::chrono::milliseconds command_timeout;  // each QMP command; connecting the console
    std::chrono::milliseconds stop_grace;       // each rung of the stop ladder
  };

  QemuProcess(std::string vm_id, RuntimeDir dir, Accel accel, const Context& context);
  ~QemuProcess();
  QemuProcess(const QemuProcess&) = delete;
  QemuProcess& operator=(const QemuProcess&) = delete;

  const std::string& vm_id() const { return vm_id_; }
  int pid() const { return pid_; }  // 0 before launch()/adopt()
  Accel accel() const { return accel_; }
  const RuntimeDir& dir() const { return dir_; }
  // What the run-as user was given for this process (empty without run_as).
  RunAsGrants& grants() { return grants_; }

  // Launches `argv` with its output appended to qemu.log (this process's own output, as
  // end_failed_start() and the exit reason quote it, begins at the log's size now), RLIMIT_MEMLOCK
  // `memlock_bytes` (0: inherited), on host CPUs `cpus` (empty: any) and as `run_as` when set.
  // Errors: the launcher's, with the context "vm <id>: launch qemu".
  Status launch(const std::vector<std::string>& argv, uint64_t memlock_bytes, const std::vector<int>& cpus,
                const std::optional<sys::RunAs>& run_as);
  // Takes over the live qemu `pid` (a restarted daemon); its output is what qemu.log gets from
  // now on.
  void adopt(int pid);

  // Calls `on_exit` once, from the launcher's watcher thread, when the process ends.
  // NOT_FOUND if it is gone already.
  Status watch(std::function<void(const sys::ExitStatus&)> on_exit);

  // Connects QMP (the reason of each SHUTDOWN event is kept for the exit; every event is logged)
  // and the console (appending to console.log), each retrying while the process lives: QMP up to
  // `timeout`, the console up to command_timeout. Errors: QmpClient::connect()'s and
  // QemuConsole::open()'s.
  Status connect(std::chrono::milliseconds timeout);

  // QMP cont, then query-status: the vCPUs of a fresh qemu (started stopped, -S) run.
  // Errors: execute()'s; INTERNAL "guest is <state> after cont, not running".
  Status run_vcpus();

  // Marks the process attached unless it exited meanwhile (then its watcher left the ending to
  // the caller). Returns whether it is attached.
  bool attach();
  bool attached() const;
  // OK while attached and alive; FAILED_PRECONDITION "vm <id>: qemu is still starting" before
  // attach(); NOT_FOUND "vm <id>: qemu has exited" after the exit.
  Status check_attached() const;

  // Runs one QMP command (QmpClient::execute(), its errors). Precondition: connected.
  Result<nlohmann::json> execute(const std::string& command);
  Result<nlohmann::json> execute(const std::string& command, const nlohmann::json& arguments);
  // The DEVICE_DELETED events qemu sent (by device id), for hot-unplug: forget_deleted() before
  // device_del, then wait_deleted() until the guest released the device (true) or `timeout`.
  void forget_deleted(const std::string& device_id);
  bool wait_deleted(const std::string& device_id, std::chrono::milliseconds timeout);
  // Precondition: connected.
  std::shared_ptr<QemuConsole> console() const;

  // The exit watcher's steps, in this order:
  // 1. Records the exit status. Returns whether the process was attached; if not, the start()
  //    or adopt() still running reports the exit and the watcher does nothing more.
  bool mark_exited(const sys::ExitStatus& status);
  // 2. The process is gone: gives back what its user was given, waits up to 2 s until QMP has
  //    delivered qemu's last events (SHUTDOWN comes before the exit), and says why it ended:
  //    "stopped on request" (clean) after stop(); "guest powered off" (clean) after a SHUTDOWN
  //    with reason guest-shutdown; otherwise "qemu <exit status>[ after shutdown (reason R)]"
  //    with the qemu.log tail.
  ExitInfo wind_down();
  // 3. Closes QMP and the console and marks the process finished: stop() returns.
  void finish();

  // Closes QMP and the console, leaving the process running (a detaching adapter, a failed
  // adoption). Idempotent; fine before connect().
  void disconnect();

  // The stop ladder: QMP quit, then SIGTERM, then SIGKILL, stop_grace apart; returns once the
  // watcher finished the process. Errors: send_signal()'s (but NOT_FOUND: gone already), with
  // "vm <id>" context; INTERNAL "vm <id>: qemu pid N did not exit after SIGKILL".
  // Precondition: attached.
  Status stop();

  // Ends a start that failed after launch() with `cause`: SIGKILL unless the process exits by
  // itself within 200 ms, wait up to stop_grace for the exit, disconnect. Returns the error to
  // report, with the qemu.log tail: INTERNAL "vm <id>: qemu <exit status> during start" when
  // the process exited by itself (its exit is the real cause), else `cause`'s code with
  // "vm <id>: qemu start failed: <cause's message>"; " (pid N did not exit after SIGKILL)" when
  // it did not go.
  Error end_failed_start(const Error& cause);

 private:
  // Waits until `done` holds (under mutex_), at most `timeout`.
  bool wait_until(std::chrono::milliseconds timeout, const std::function<bool()>& done);
  // `message` with "; qemu.log: <tail>" when this process wrote anything.
  std::string with_log(std::string message) const;

  const std::string vm_id_;
  const RuntimeDir dir_;
  const Accel accel_;
  const Context context_;
  int pid_ = 0;           // set before watch(), then read only
  off_t log_offset_ = 0;  // qemu.log's size before this process wrote to it
  RunAsGrants grants_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool attached_ = false;
  bool exited_ = false;
  bool finished_ = false;
  bool stop_requested_ = false;
  std::string shutdown_reason_;  // "reason" of the last SHUTDOWN event
  std::set<std::string> deleted_devices_;  // ids of DEVICE_DELETED events not yet waited for
  sys::ExitStatus exit_status_;

  // Set by connect(), before attach(); closed by finish() or disconnect(). Declared last: QMP's
  // reader thread uses the members above until the client is gone.
  std::unique_ptr<QmpClient> qmp_;
  std::shared_ptr<QemuConsole> console_;
};

}  // namespace feos::vmm::qemu
