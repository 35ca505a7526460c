#pragma once
// Settings of the hostdev layer, shared by HostDevices, HostInventory and VfioBinder (the daemon
// gives them the same).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "pci/pci_ids.h"

namespace feos::hostdev {

struct Options {
  // Longest a single sysfs write (driver_override, unbind, bind, drivers_probe) may take, and
  // longest to wait for a driver link to show the expected driver.
  std::chrono::milliseconds step_timeout{10000};
  // Longest to wait for <dev>/vfio/<group> after a group's devices are bound (udev creates it).
  std::chrono::milliseconds vfio_node_timeout{10000};
  // The VFIO driver's name under <sysfs>/bus/pci/drivers.
  std::string vfio_driver = "vfio-pci";
  // Its kernel module's name under <sysfs>/module.
  std::string vfio_module = "vfio_pci";
  // Names for messages and inventory; nullptr: ids only.
  std::shared_ptr<const pci::PciIds> pci_ids;
  // Wall clock for the ledger's updated_unix_ms; empty: the system clock.
  std::function<int64_t()> now_unix_ms;
};

}  // namespace feos::hostdev
