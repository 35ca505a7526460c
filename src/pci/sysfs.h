#pragma once
// Reads PCI facts from sysfs (bus/pci/devices, kernel/iommu_groups) through the Filesystem seam
// and HostPaths, so tests and `--sysfs-root` point it at any tree. Read-only: binding drivers is
// the hostdev layer's business (it reads a device's driver and driver_override through here).
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "pci/address.h"
#include "pci/device.h"
#include "pci/iommu_group.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"

namespace feos::pci {

class PciSysfs {
 public:
  // `fs` must outlive this object.
  PciSysfs(const sys::Filesystem& fs, sys::HostPaths paths);

  // Every function under bus/pci/devices, sorted. Entries whose names are not addresses are
  // skipped. NOT_FOUND if the directory is missing, other errors as the filesystem reports them.
  Result<std::vector<Address>> list() const;

  // True when the function has a sysfs directory.
  bool exists(const Address& address) const;

  // All facts of one function. NOT_FOUND if it has no sysfs directory; INTERNAL if a required
  // attribute (vendor, device, class, resource) is missing or malformed, or the iommu_group link
  // does not name a number, naming the path.
  // Optional attributes the kernel does not provide for this device are left empty.
  Result<Device> read(const Address& address) const;
  // Re-reads the facts of `device` that change while the host runs (driver, driver_override,
  // current link, enable); the rest (ids, class, BARs, group, NUMA, local CPUs) only change with
  // hot-plug.
  // Cheaper than read(): callers cache devices and refresh them. NOT_FOUND if the function is gone.
  Status refresh(Device& device) const;

  // The driver bound to the function: its `driver` link's name, "" when unbound.
  // NOT_FOUND "PCI device 0000:18:00.0 is gone (no <dir>)" when the function has no sysfs
  // directory; other errors as the filesystem reports them.
  Result<std::string> driver(const Address& address) const;
  // The function's driver_override, "" for none (sysfs shows "(null)").
  // Errors as the filesystem reports them (NOT_FOUND when the function is gone).
  Result<std::string> driver_override(const Address& address) const;

  // The functions bound to `driver`: the address entries of its driver directory (the others,
  // bind, unbind, new_id, module, ..., are skipped), sorted. NOT_FOUND when no such driver is
  // registered; other errors as the filesystem reports them.
  Result<std::vector<Address>> bound_to(const std::string& driver) const;

  // read() for every function of list(), in its order. Fails on the first device that fails.
  Result<std::vector<Device>> read_all() const;

  // The functions present in `address`'s slot (itself included when present), sorted.
  // NOT_FOUND if no function of that slot exists.
  Result<std::vector<Address>> slot_functions(const Address& address) const;

  // The function's IOMMU group, or nullopt when it has none (no IOMMU, as in most guests).
  // NOT_FOUND if the function does not exist; INTERNAL when its iommu_group link does not name a
  // number.
  Result<std::optional<IommuGroup>> iommu_group(const Address& address) const;

  // Members of IOMMU group `group` (kernel/iommu_groups/<group>/devices), sorted.
  // NOT_FOUND if the group does not exist.
  Result<std::vector<Address>> iommu_group_members(const IommuGroup& group) const;

  // Number of IOMMU groups (entries under kernel/iommu_groups); 0 when the directory is absent
  // (the IOMMU is off). Other errors as the filesystem reports them.
  Result<size_t> iommu_group_count() const;

  const sys::HostPaths& paths() const { return paths_; }

 private:
  // Attribute `name` of device `bdf`, trimmed; nullopt when the kernel does not provide it for
  // this device.
  Result<std::optional<std::string>> optional_attr(const std::string& bdf, const char* name) const;
  Result<std::string> required_attr(const std::string& bdf, const char* name) const;
  // Basename of the device's link `name`; nullopt when there is no such link.
  Result<std::optional<std::string>> link_basename(const std::string& bdf, const char* name) const;
  // The group its iommu_group link names; INTERNAL "malformed <link>: ..." when not a number.
  Result<std::optional<IommuGroup>> group_link(const std::string& bdf) const;
  // The run-time facts read() and refresh() share.
  Status read_dynamic(const std::string& bdf, Device& d) const;
  Result<std::optional<Link>> read_pcie_link(const std::string& bdf, const char* speed_name,
                                             const char* width_name) const;

  const sys::Filesystem& fs_;
  sys::HostPaths paths_;
};

}  // namespace feos::pci
