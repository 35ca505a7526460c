#pragma once
// A PCI function's configuration space as sysfs `config` shows it: the header, the capability
// list (pointer at 0x34) and the PCI Express extended capability list (from 0x100), and what the
// PCI Express capability says about Function Level Reset and the link. The bytes come from the
// device (or, in a VM, from the hypervisor's emulation of it), so every pointer is checked before
// it is followed: a broken list ends the walk and is recorded in `problems`, never read past.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace feos::pci {

// Sizes of `config`: 256 bytes for conventional PCI, 4096 with PCIe extended configuration space.
// A reader without CAP_SYS_ADMIN gets only the first 64 bytes (128 for a CardBus bridge).
inline constexpr size_t kConfigHeaderSize = 64;
inline constexpr size_t kConfigLegacySize = 256;
inline constexpr size_t kConfigExtendedSize = 4096;

// Standard capability ids (PCI Local Bus spec / include/uapi/linux/pci_regs.h).
inline constexpr uint16_t kCapPowerManagement = 0x01;
inline constexpr uint16_t kCapMsi = 0x05;
inline constexpr uint16_t kCapVendorSpecific = 0x09;
inline constexpr uint16_t kCapPciExpress = 0x10;
inline constexpr uint16_t kCapMsix = 0x11;
inline constexpr uint16_t kCapAdvancedFeatures = 0x13;  // conventional PCI FLR lives here
// Extended capability ids.
inline constexpr uint16_t kExtCapNull = 0x0000;  // also what QEMU's vfio-pci writes over a hidden one
inline constexpr uint16_t kExtCapAer = 0x0001;
inline constexpr uint16_t kExtCapAcs = 0x000d;
inline constexpr uint16_t kExtCapAri = 0x000e;
inline constexpr uint16_t kExtCapSriov = 0x0010;
inline constexpr uint16_t kExtCapResizableBar = 0x0015;

// Bounds of the walks. 48 is the kernel's PCI_FIND_CAP_TTL: (256 - 64) / 4 entries fit at most.
inline constexpr int kMaxCapabilities = 48;
// (4096 - 256) / 8: the kernel's limit for the extended list (each entry is at least 8 bytes).
inline constexpr int kMaxExtendedCapabilities = 480;

struct Capability {
  uint16_t id = 0;         // 8-bit standard id, or 16-bit extended id
  uint16_t offset = 0;     // where its header is
  bool extended = false;   // in the PCIe extended list (offset >= 0x100)
  uint8_t version = 0;     // extended capabilities' version field; 0 for standard ones
  // "PCI Express", "MSI-X", "ext 0x0001 AER", "ext 0x0000 (null)", "0x42".
  std::string to_string() const;
};

// What the PCI Express capability (id 0x10) says.
struct PcieCapability {
  uint16_t offset = 0;
  uint8_t version = 0;      // Capabilities register bits 3:0 (1 or 2)
  uint8_t port_type = 0;    // bits 7:4: 0 endpoint, 1 legacy endpoint, 9 RC integrated endpoint, ...
  bool flr = false;         // Device Capabilities bit 28: Function Level Reset supported
  uint8_t max_link_speed = 0;  // Link Capabilities bits 3:0 (1 = 2.5 GT/s ... 6 = 64 GT/s)
  int max_link_width = 0;      // Link Capabilities bits 9:4 (lanes); 0 when not reported
  // The speed code as GT/s (2.5, 5, 8, 16, 32, 64); 0 for a code the spec does not define.
  double max_link_gts() const;
};

struct ConfigSpace {
  size_t size = 0;  // bytes given (64 ... 4096)
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint32_t class_code = 0;  // 24 bits
  uint8_t header_type = 0;  // bits 6:0 of 0x0e: 0 endpoint, 1 PCI bridge, 2 CardBus bridge
  // Standard capabilities in list order, then extended ones in list order.
  std::vector<Capability> capabilities;
  std::optional<PcieCapability> pcie;
  // Why a walk stopped early (a pointer out of bounds, a loop, a truncated read, too many
  // entries); empty when both lists ended normally. The capabilities before the fault are kept.
  std::vector<std::string> problems;

  // The first capability with `id` in the standard (extended = false) or extended list.
  const Capability* find(uint16_t id, bool extended) const;
  // Function Level Reset, from the PCI Express capability's Device Capabilities (false without
  // one; the conventional PCI Advanced Features capability is listed but not decoded).
  bool flr_supported() const { return pcie && pcie->flr; }
  // The extended list was available (the read covered more than 256 bytes).
  bool has_extended_space() const { return size > kConfigLegacySize; }
};

// Parses `bytes`, the contents of sysfs `config`. `where` names it in messages (the file's path).
// Preconditions: none (any bytes are safe). Errors: INTERNAL naming `where` when the size is
// below 64 or above 4096 bytes, or when the header reads as all ones (vendor 0xffff: the function
// is gone or powered off). Faults in the capability lists are not errors: see `problems`.
Result<ConfigSpace> parse_config_space(std::string_view bytes, std::string_view where);

}  // namespace feos::pci
