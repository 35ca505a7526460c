#pragma once
// The hot-plug ports every VM gets at start, and the names of what is plugged into them. A disk
// or NIC attached to a running VM goes into a free port (qemu_hotplug.cc); its backend is named
// after the port, so a port's names are free again once the port is (whatever an unplug that
// timed out left behind). GPUs are cold-plug only and never use these ports. The argv builder
// adds the ports (machine_plan.h, add_hotplug_ports()).
#include <string>

namespace feos::vmm::qemu {

// At most this many ports per VM: each takes a slot of pcie.0 and small memory windows
// (firmware's defaults for an empty hot-plug port, a few MiB each), which the 256 MiB that
// mmio_layout.h keeps below 4 GiB for the machine's own devices (kMmio32Reserved) holds.
inline constexpr int kMaxHotplugPorts = 16;

// "feos-hp<k>": the port's id, and the name of the bus a device plugged into it sits on.
std::string hotplug_port_id(int k);
// The node name of the top image of a disk in port k ("feos-hp<k>-disk"; its other nodes are
// named from it, block_graph.h) and the id of a NIC's netdev there ("feos-hp<k>-net").
std::string hotplug_disk_node(int k);
std::string hotplug_netdev_id(int k);

}  // namespace feos::vmm::qemu
