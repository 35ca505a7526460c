#pragma once
// Internal to src/hostdev: cached reads of PCI facts, the host processes that hold device nodes
// open, and naming helpers for messages. Also the few host paths hostdev needs that
// sys::HostPaths does not build (yet): they are derived from its roots here and nowhere else.
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "pci/address.h"
#include "pci/device.h"
#include "pci/pci_ids.h"
#include "pci/sysfs.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"

namespace feos::hostdev::detail {

// <sysfs>/bus/pci/devices/<bdf>/<attribute>
std::string device_attr(const sys::HostPaths& paths, const std::string& bdf, const char* attribute);
// <sysfs>/bus/pci/drivers/<driver>/<file>
std::string driver_file(const sys::HostPaths& paths, const std::string& driver, const char* file);
// <sysfs>/class/iommu: one entry per IOMMU unit (dmar0, ivhd0, ...).
std::string iommu_class(const sys::HostPaths& paths);
// <proc>/driver/nvidia/gpus/<bdf>/information: the NVIDIA driver's per-GPU facts ("Device Minor").
std::string nvidia_gpu_information(const sys::HostPaths& paths, const std::string& bdf);
// <proc>/cmdline
std::string kernel_cmdline(const sys::HostPaths& paths);
// <dev>/dri/<name>, <dev>/nvidia<minor>
std::string dri_node(const sys::HostPaths& paths, const std::string& name);
std::string nvidia_node(const sys::HostPaths& paths, int minor);

// A PCI-to-PCI (or CardBus) bridge, header type 1/2: class 0604, 0609, 0607. VFIO lets such
// bridges stay with the host driver (pcieport) while endpoints of their group go to a VM. Other
// "bridge" classes (0680: NVSwitch, 0600: host bridge) are endpoints.
bool is_pci_bridge(const pci::Device& device);

// The pci.ids name of the class (most specific known), else a built-in base-class name
// ("network controller"), else "class 0x..".
std::string class_name(uint32_t class_code, const pci::PciIds* ids);
// "0000:04:00.0 (8086:1521 Ethernet controller, driver igb)" (driver "none" when unbound).
std::string describe_device(const pci::Device& device, const pci::PciIds* ids);

// PCI facts that only change with hot-plug (ids, class, BARs, IOMMU group, NUMA), kept across
// inventory calls so a listing re-reads only what changes at run time (pci::PciSysfs::refresh).
// Thread-safe. A function that disappears from the listing is forgotten.
class DeviceCache {
 public:
  std::optional<pci::Device> get(const pci::Address& address) const;
  void put(const pci::Device& device);
  // Forgets every device not in `present` (sorted).
  void retain(const std::vector<pci::Address>& present);

 private:
  mutable std::mutex mu_;
  std::map<pci::Address, pci::Device> devices_;  // guarded by mu_
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
  Result<std::vector<pci::Address>> group_members(const std::string& group);
  // Number of entries under <sysfs>/kernel/iommu_groups (0 when absent).
  Result<size_t> iommu_group_count();
  // Reads every function (in `threads` parallel readers) and derives group membership from the
  // devices' iommu_group links.
  // With a cache, known functions are only refreshed and new ones are added to it.
  Status load_all(unsigned threads, DeviceCache* cache = nullptr);
  // After load_all(): every function, sorted.
  const std::map<pci::Address, pci::Device>& devices() const { return devices_; }

 private:
  Result<const std::vector<pci::Address>*> all_addresses();

  const sys::Filesystem& fs_;
  pci::PciSysfs sysfs_;
  std::optional<std::vector<pci::Address>> all_;
  std::map<pci::Address, pci::Device> devices_;
  std::map<std::string, std::vector<pci::Address>> groups_;
  bool groups_complete_ = false;  // groups_ holds every group (after load_all)
};

// A host process holding a device node open.
struct Opener {
  long pid = 0;
  std::string command;  // <proc>/<pid>/comm
  std::string node;     // the node's path
};

// The device nodes under <dev> that host processes hold open: one scan of <proc>/*/fd.
class OpenNodes {
 public:
  // Processes that vanish or whose fds cannot be read during the scan are skipped.
  // Errors: NOT_FOUND when <proc> is missing.
  static Result<OpenNodes> scan(const sys::Filesystem& fs, const sys::HostPaths& paths);

  // Processes holding `node` open.
  std::vector<Opener> of(const std::string& node) const;
  // Processes holding open a node "<prefix><digits>" (e.g. <dev>/nvidia0, <dev>/nvidia7).
  std::vector<Opener> of_numbered(const std::string& prefix) const;

 private:
  std::map<std::string, std::vector<Opener>> by_node_;
};

// The per-card device nodes of one function that host processes may hold: its DRM nodes
// (<device>/drm/cardN, renderDN -> <dev>/dri/...) and its NVIDIA node (<dev>/nvidia<minor>, the
// minor from <proc>/driver/nvidia/gpus/<bdf>/information).
struct CardNodes {
  std::vector<std::string> nodes;
  // The function is bound to "nvidia" but its minor is unknown (no information file): any open
  // <dev>/nvidia<N> may be this card's.
  bool nvidia_minor_unknown = false;
};
Result<CardNodes> card_nodes(const sys::Filesystem& fs, const sys::HostPaths& paths,
                             const pci::Device& device);

// The first host process that holds one of `device`'s card nodes open, as an error message
// "0000:01:00.0 is in use on the host: pid 4242 (Xorg) has <dev>/dri/card1 open", or nullopt.
// When the NVIDIA minor is unknown, an open <dev>/nvidiaN counts if `device` is the only function
// bound to nvidia (then it must be its node), and also otherwise (it may be: refusing is the safe
// side, and the message says so).
Result<std::optional<std::string>> held_open_by(const sys::Filesystem& fs,
                                                const sys::HostPaths& paths,
                                                const pci::Device& device,
                                                const OpenNodes& open);

}  // namespace feos::hostdev::detail
