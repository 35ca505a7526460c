#include "vmm/qemu/hotplug_ports.h"

#include "vmm/qemu/machine_plan.h"

namespace feos::vmm::qemu {

std::string hotplug_port_id(int k) { return "feos-hp" + std::to_string(k); }
std::string hotplug_disk_node(int k) { return hotplug_port_id(k) + "-disk"; }
std::string hotplug_netdev_id(int k) { return hotplug_port_id(k) + "-net"; }

}  // namespace feos::vmm::qemu

namespace feos::vmm::qemu::internal {

// What the firmware reserves behind each empty port is set, not left to its defaults, which may
// add a prefetchable window per port to the 64-bit hole feosd sizes for the GPUs' BARs. A virtio
// disk or NIC needs under 2 MiB of 32-bit space; Linux places its prefetchable BAR in that window
// when the port has no prefetchable one. (QEMU takes pref32-reserve or pref64-reserve, not both.)
void add_hotplug_ports(MachinePlan& plan, const ArgvConfig& config) {
  for (int k = 0; k < config.hotplug_ports; ++k)
    plan.devices.push_back(QemuOpts("pcie-root-port")
                               .set("id", hotplug_port_id(k))
                               .set("bus", "pcie.0")
                               .set("chassis", "2")
                               .set("slot", std::to_string(k + 1))
                               .set("io-reserve", "0")
                               .set("mem-reserve", "2M")
                               .set("pref64-reserve", "0"));
  if (config.hotplug_ports > 0)
    plan.decisions.push_back("hot-plug: " + std::to_string(config.hotplug_ports) +
                             " pcie-root-ports for disks and NICs attached while the VM runs");
}

}  // namespace feos::vmm::qemu::internal
