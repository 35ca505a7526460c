// The requests a client makes of a running VM's qemu over QMP: pause, resume, the ACPI power
// button, ping. (Start, stop and adoption: qemu_hypervisor.cc, qemu_adoption.cc; hot-plug:
// qemu_hotplug.cc.)
#include "common/log.h"
#include "vmm/qemu/qemu_hypervisor.h"
#include "vmm/qemu/qmp_client.h"

namespace feos::vmm::qemu {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("qemu"); }

}  // namespace

Status QemuHypervisor::qmp_command(const std::string& vm_id, const std::string& command,
                                   std::string_view done) {
  FEOS_ASSIGN_OR_RETURN(auto vm, attached_process(vm_id));
  auto reply = vm->execute(command);
  if (!reply) return fail(reply.error().context("vm " + vm_id));
  logger()->info("{} vm={}", done, vm_id);
  return ok();
}

Status QemuHypervisor::pause(const std::string& vm_id) { return qmp_command(vm_id, "stop", "paused"); }

Status QemuHypervisor::resume(const std::string& vm_id) { return qmp_command(vm_id, "cont", "resumed"); }

Status QemuHypervisor::request_shutdown(const std::string& vm_id) {
  return qmp_command(vm_id, "system_powerdown", "power button pressed");
}

Result<PingInfo> QemuHypervisor::ping(const std::string& vm_id) {
  FEOS_ASSIGN_OR_RETURN(auto vm, attached_process(vm_id));
  auto reply = vm->execute("query-version");
  if (!reply) return fail(reply.error().context("vm " + vm_id));
  // Checked like the greeting: qemu's reply is outside data (no float-to-int conversion of 1e300).
  auto version = reply->is_object() && reply->contains("qemu")
                     ? qmp_version_string((*reply)["qemu"])
                     : std::nullopt;
  if (!version)
    return fail(Code::kInternal, "vm " + vm_id + ": unexpected query-version reply " +
                                     reply->dump().substr(0, 512));
  PingInfo info;
  info.version = *version;
  info.pid = vm->pid();
  info.features.push_back("accel=" + std::string(accel_name(vm->accel())));
  return info;
}

}  // namespace feos::vmm::qemu
