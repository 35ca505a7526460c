// QemuHypervisor after a daemon restart: finding the qemu processes of this state directory,
// adopting one as a VM's process, and killing one that cannot be adopted. Split from
// qemu_hypervisor.cc, which starts and drives the processes it launched itself.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "common/log.h"
#include "vmm/qemu/qemu_cmdline.h"
#include "vmm/qemu/qemu_hypervisor.h"
#include "vmm/qemu/qemu_process.h"
#include "vmm/qemu/run_as_grants.h"
#include "vmm/qemu/runtime_dir.h"

namespace feos::vmm::qemu {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("qemu"); }

}  // namespace

Result<RunState> QemuHypervisor::adopt(const std::string& vm_id, int pid, const std::string& runtime_dir) {
  std::string where = "vm " + vm_id + ": process " + std::to_string(pid);
  if (pid <= 0 || !launcher_.is_alive(pid)) return fail(Code::kNotFound, where + " is not running");
  FEOS_ASSIGN_OR_RETURN(auto identity, read_process_identity(fs_, paths_, pid, where));
  if (!same_vm_id(identity.vm_id, vm_id))
    return fail(Code::kNotFound, where + " is not this VM's qemu (no \"-name " + name_argument(vm_id) +
                                     "\" in its command line)");

  auto vm = std::make_shared<QemuProcess>(vm_id, RuntimeDir(runtime_dir), identity.accel, process_context_);
  vm->adopt(pid);
  vm->grants().take_over(adopted_grants(fs_, paths_, pid, identity.vfio_functions, vm->dir(), vm_id));
  if (!reserve(vm))
    return fail(Code::kFailedPrecondition, "vm " + vm_id + " already has a qemu process attached");
  auto failed = [&](const Error& error) -> Result<RunState> {
    vm->disconnect();
    forget(vm);
    return fail(error);
  };
  auto watched = watch(vm);
  if (!watched) return failed(Error{Code::kNotFound, where + " is gone: " + watched.error().message});
  auto connected = vm->connect(config_.command_timeout);
  if (!connected) return failed(connected.error().context(where));
  auto status = vm->execute("query-status");
  if (!status) return failed(status.error().context(where));
  std::string run_state = status->value("status", "");
  if (!vm->attach()) {
    vm->grants().give_back();  // it ended: its user keeps nothing
    return failed(Error{Code::kNotFound, where + " exited during adoption"});
  }
  // Its vCPU threads keep their affinity across our restart; pinning again covers a qemu whose
  // threads were moved meanwhile (a start cut short before pinning).
  if (!identity.vcpu_host_nodes.empty()) pin_vcpus(*vm, identity.vcpu_host_nodes);
  logger()->info("adopted qemu vm={} pid={} status={}", vm_id, pid, run_state);
  if (run_state == "running") return RunState::kRunning;
  if (run_state == "prelaunch") return RunState::kNotStarted;
  return RunState::kPaused;
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

}  // namespace feos::vmm::qemu
