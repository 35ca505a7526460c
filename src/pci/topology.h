#pragma once
// Where a PCI function hangs in the host's PCIe tree, from the path of its sysfs device directory:
// <sysfs>/bus/pci/devices/<bdf> links to .../devices/pci0000:15/0000:15:01.0/0000:16:00.0/
// 0000:17:00.0/0000:18:00.0: the root bus, then every bridge from the root port down, then the
// function itself. PCIe's tree rules name the parts: the bridge right above an endpoint is a root
// port (directly on the root bus) or a switch's downstream port; a downstream port's parent is
// its switch's upstream port.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "pci/address.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"

namespace feos::pci {

struct Topology {
  std::string pcie_root;         // the root bus: "pci0000:15" (the DRA driver's pcieRoot)
  std::vector<Address> bridges;  // the bridges above the function, root port first
  // The upstream port of the PCIe switch the function hangs under: the bridge above its parent
  // when that parent is not a root port. Absent for a function right under a root port (or
  // behind a PCIe-to-PCI bridge on one).
  std::optional<Address> switch_upstream;
};

// Parses the target of a device link (relative or absolute): the component "pciDDDD:BB" and the
// addresses after it, the last being the function `address` itself.
// Errors: INVALID_ARGUMENT naming the path when it has no root bus, a component after it is not a
// PCI address, or it does not end in `address`.
Result<Topology> topology_from_device_path(std::string_view path, const Address& address);

// Reads the link <sysfs>/bus/pci/devices/<address> and parses it.
// Errors: NOT_FOUND when there is no such device; topology_from_device_path()'s.
Result<Topology> read_topology(const sys::Filesystem& fs, const sys::HostPaths& paths,
                               const Address& address);

}  // namespace feos::pci
