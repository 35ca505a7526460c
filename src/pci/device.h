#pragma once
// Facts about one PCI function as sysfs shows them. Plain data: reading it is PciSysfs's job.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pci/address.h"
#include "pci/iommu_group.h"
#include "pci/resource.h"

namespace feos::pci {

// PCI base classes used for policy decisions.
inline constexpr uint8_t kClassDisplay = 0x03;  // 0300 VGA, 0302 3D controller, 0380 other
inline constexpr uint8_t kClassBridge = 0x06;
inline constexpr uint32_t kClassVga = 0x030000;  // base+sub class 0300, prog-if 00
inline constexpr uint16_t kVendorNvidia = 0x10de;

// A PCIe link as the kernel prints it in current_link_speed/width and max_link_speed/width.
struct Link {
  std::string speed;   // verbatim, e.g. "32.0 GT/s PCIe"; "Unknown" when the kernel cannot tell
  double gts = 0;      // the number in `speed` (GT/s), 0 when unknown
  int width = 0;       // lanes, 0 when unknown (a link that is down)
  // "32.0 GT/s x16".
  std::string to_string() const;
};

struct Device {
  Address address;
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint16_t subsystem_vendor_id = 0;
  uint16_t subsystem_device_id = 0;
  uint32_t class_code = 0;  // 24 bits: base class, sub class, programming interface
  std::optional<uint8_t> revision;
  std::string driver;                    // bound driver's name; empty when unbound
  std::string driver_override;           // empty when none ("(null)" in sysfs)
  std::optional<IommuGroup> iommu_group;  // absent without an IOMMU
  int numa_node = -1;                    // -1: no NUMA affinity known
  // local_cpulist as the kernel prints it ("0-55", "0-27,56-83"): the CPUs nearest the device,
  // for pinning a VM's vCPUs. Empty when the kernel does not provide it.
  std::string local_cpus;
  std::optional<bool> boot_vga;          // only VGA-class devices have the attribute
  // From reset_method, in the kernel's order ("flr", "bus"); on kernels without that attribute,
  // {"flr"} when config space shows Function Level Reset. Empty: no reset known.
  std::vector<std::string> reset_methods;
  std::optional<Link> current_link;      // PCIe devices only
  std::optional<Link> max_link;
  std::optional<int> enable_count;       // `enable`: >0 when a driver has enabled the device
  std::vector<Resource> bars;            // the 6 BAR lines (index 0-5), unused ones included
  std::optional<Resource> rom;           // the ROM line

  uint8_t base_class() const { return static_cast<uint8_t>(class_code >> 16); }
  uint8_t sub_class() const { return static_cast<uint8_t>(class_code >> 8); }
  bool is_display() const { return base_class() == kClassDisplay; }
  // A PCI-to-PCI (or CardBus) bridge, header type 1/2: class 0604, 0609, 0607. VFIO lets such
  // bridges stay with the host driver (pcieport) while endpoints of their group go to a VM. Other
  // base class 06 devices (0680: NVSwitch, 0600: host bridge) are endpoints.
  bool is_pci_bridge() const;
  // An NVIDIA NVSwitch (10de, class 0680 "other bridge"; 10de:22a3 on HGX H100/H200 boards): an
  // endpoint whose IOMMU group and fabric decide how an HGX board's GPUs can be passed.
  bool is_nvswitch() const;
  // "10de:2330".
  std::string id() const;
  // "10de:16c1".
  std::string subsystem_id() const;
  // "0x030200".
  std::string class_string() const;
  // Present BARs only, by register index.
  std::vector<Resource> present_bars() const;
};

// A vendor:device pair such as "10de:2330" (4 hex digits each). INVALID_ARGUMENT otherwise.
struct DeviceId {
  uint16_t vendor = 0;
  uint16_t device = 0;
  static Result<DeviceId> parse(std::string_view text);
  std::string to_string() const;
  friend bool operator==(const DeviceId&, const DeviceId&) = default;
};

}  // namespace feos::pci
