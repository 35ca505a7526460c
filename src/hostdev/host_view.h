#pragma once
// Internal to src/hostdev: the PCI facts of one host as one operation (a plan, an inventory)
// reads them, each device read once, and the cache that keeps their static part between
// inventory calls.
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "pci/address.h"
#include "pci/device.h"
#include "pci/sysfs.h"
#include "pci/topology.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"

namespace feos::hostdev::detail {

// What an inventory knows of one function: its PCI facts and where it hangs in the PCIe tree.
struct DeviceFacts {
  pci::Device device;
  // Absent when its sysfs path does not parse as a PCIe tree (pci::read_topology's
  // INVALID_ARGUMENT, e.g. a device behind a VMD domain): the place is unknown, not an error.
  std::optional<pci::Topology> topology;
};

// PCI facts that only change with hot-plug (ids, class, BARs, IOMMU group, NUMA, local CPUs, the
// place in the PCIe tree), kept across inventory calls so a listing re-reads only what changes at
// run time (pci::PciSysfs::refresh). Thread-safe. A function that disappears from the listing is
// forgotten.
class DeviceCache {
 public:
  std::optional<DeviceFacts> get(const pci::Address& address) const;
  void put(const DeviceFacts& facts);
  // Forgets every device not in `present` (sorted).
  void retain(const std::vector<pci::Address>& present);

 private:
  mutable std::mutex mu_;
  std::map<pci::Address, DeviceFacts> devices_;  // guarded by mu_
};

// Lazily read, cached PCI facts of one host. Not thread-safe: one per operation.
class HostView {
 public:
  HostView(const sys::Filesystem& fs, const sys::HostPaths& paths);

  // NOT_FOUND "PCI device 0000:18:00.0 not found (no <path>)"; INTERNAL for unreadable facts.
  Result<const pci::Device*> device(const pci::Address& address);
  // Functions of `address`'s slot present on the host, sorted (from one cached listing).
  Result<std::vector<pci::Address>> slot_functions(const pci::Address& address);
  // Members of IOMMU group `group`, sorted.
  Result<std::vector<pci::Address>> group_members(const pci::IommuGroup& group);
  // Number of entries under <sysfs>/kernel/iommu_groups (0 when absent).
  Result<size_t> iommu_group_count();
  // Reads every function (in `threads` parallel readers) with its place in the PCIe tree, and
  // derives group membership from the devices' iommu_group links.
  // With a cache, known functions are only refreshed and new ones are added to it.
  Status load_all(unsigned threads, DeviceCache* cache = nullptr);
  // Reads every display function (class 03xx) and every NVSwitch with its place in the PCIe
  // tree, like load_all() but without reading the functions `cache` already knows to be something
  // else (a class is a static fact): what a plan needs to know the host's GPUs and NVSwitch
  // fabric, on a 1,000-function host a few dozen reads. Other functions are read lazily by
  // device() as before.
  Status load_displays(DeviceCache& cache);
  // Whether load_all() or load_displays() ran: devices() then holds every GPU and NVSwitch.
  bool displays_loaded() const { return displays_loaded_; }
  // After load_all() (or load_displays(): those loaded), every function, sorted.
  const std::map<pci::Address, pci::Device>& devices() const { return devices_; }
  // After load_all() (or load_displays()): the place of every function whose place is known.
  const std::map<pci::Address, pci::Topology>& topologies() const { return topologies_; }

 private:
  Result<const std::vector<pci::Address>*> all_addresses();
  // A function's facts: refreshed from `cache` when it holds them, else read (and cached).
  Result<DeviceFacts> load_one(const pci::Address& address, DeviceCache* cache) const;

  const sys::Filesystem& fs_;
  pci::PciSysfs sysfs_;
  std::optional<std::vector<pci::Address>> all_;
  std::map<pci::Address, pci::Device> devices_;
  std::map<pci::Address, pci::Topology> topologies_;
  std::map<pci::IommuGroup, std::vector<pci::Address>> groups_;
  bool groups_complete_ = false;  // groups_ holds every group (after load_all)
  bool displays_loaded_ = false;
};

}  // namespace feos::hostdev::detail
