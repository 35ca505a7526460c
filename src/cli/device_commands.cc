#include "cli/device_commands.h"

#include "cli/requests.h"

namespace feos::cli {

void add_device_commands(CLI::App& vm, DeviceCommands& c) {
  auto group = [&](const char* name, const char* what) {
    CLI::App* app = vm.add_subcommand(name, what);
    app->require_subcommand(1);
    return app;
  };
  auto command = [&](CLI::App* parent, const char* name, const char* what, const char* arg, const char* arg_what) {
    CLI::App* app = parent->add_subcommand(name, what);
    app->add_option("ID", c.vm_id, "VM id")->required();
    app->add_option(arg, c.argument, arg_what)->required();
    return app;
  };
  CLI::App* disk = group("disk", "Attach or detach a disk (live while the VM runs, else at its next start)");
  c.disk_attach = command(disk, "attach", "Attach a raw or qcow2 disk image; prints its device id", "DISK",
                          "PATH[,ro][,id=ID] (id default: disk<N>)");
  c.disk_detach = command(disk, "detach", "Detach a disk (waits for a running guest to release it)", "DEVICE_ID",
                          "the disk's device id");
  CLI::App* nic = group("nic", "Attach or detach a tap NIC (live while the VM runs, else at its next start)");
  c.nic_attach = command(nic, "attach", "Attach a NIC on a host tap (created when missing); prints its device id",
                         "TAP", "NAME[,mac=MAC][,id=ID] (id default: the tap's name)");
  c.nic_detach = command(nic, "detach", "Detach a NIC (waits for a running guest to release it)", "DEVICE_ID",
                         "the NIC's device id");
}

Result<bool> finish_device_command(const DeviceCommands& c, Invocation& inv, std::string_view cwd) {
  CLI::App* chosen = nullptr;
  for (CLI::App* app : {c.disk_attach, c.disk_detach, c.nic_attach, c.nic_detach})
    if (app && app->parsed()) chosen = app;
  if (!chosen) return false;
  if (c.vm_id.empty()) return fail(Code::kInvalidArgument, "ID: must not be empty");
  if (c.argument.empty()) return fail(Code::kInvalidArgument, "DEVICE_ID: must not be empty");
  inv.vm_id = c.vm_id;
  if (chosen == c.disk_attach) {
    FEOS_ASSIGN_OR_RETURN(*inv.attach_disk_request.mutable_disk(), parse_disk_spec(c.argument, cwd));
    inv.command = Command::kVmDiskAttach;
  } else if (chosen == c.nic_attach) {
    FEOS_ASSIGN_OR_RETURN(*inv.attach_nic_request.mutable_nic(), parse_tap_spec(c.argument));
    inv.command = Command::kVmNicAttach;
  } else if (chosen == c.disk_detach) {
    inv.detach_disk_request.set_device_id(c.argument);
    inv.command = Command::kVmDiskDetach;
  } else {
    inv.detach_nic_request.set_device_id(c.argument);
    inv.command = Command::kVmNicDetach;
  }
  return true;
}

}  // namespace feos::cli
