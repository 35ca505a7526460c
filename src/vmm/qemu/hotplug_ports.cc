#include "vmm/qemu/hotplug_ports.h"

#include "vmm/qemu/machine_plan.h"

namespace feos::vmm::qemu {

std::string hotplug_port_id(int k) { return "feos-hp" + std::to_string(k); }
std::string hotplug_disk_node(int k) { return hotplug_port_id(k) + "-disk"; }
std::string hotplug_netdev_id(int k) { return hotplug_port_id(k) + "-net"; }

}  // namespace feos::vmm::qemu

namespace feos::vmm::qemu::internal {

void add_hotplug_ports(MachinePlan& plan, const ArgvConfig& config) {
  for (int k = 0; k < config.hotplug_ports; ++k)
    plan.devices.push_back(QemuOpts("pcie-root-port")
                               .set("id", hotplug_port_id(k))
                               .set("bus", "pcie.0")
                               .set("chassis", "2")
                               .set("slot", std::to_string(k + 1))
                               .set("io-reserve", "0"));
  if (config.hotplug_ports > 0)
    plan.decisions.push_back("hot-plug: " + std::to_string(config.hotplug_ports) +
                             " pcie-root-ports for disks and NICs attached while the VM runs");
}

}  // namespace feos::vmm::qemu::internal
