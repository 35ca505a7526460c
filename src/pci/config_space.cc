#include "pci/config_space.h"

#include <algorithm>
#include <bitset>
#include <cstdio>

namespace feos::pci {
namespace {

// Register offsets (include/uapi/linux/pci_regs.h).
constexpr size_t kStatus = 0x06;
constexpr uint16_t kStatusCapList = 0x10;
constexpr size_t kHeaderType = 0x0e;
constexpr size_t kCapabilityList = 0x34;        // header types 0 and 1
constexpr size_t kCardbusCapabilityList = 0x14;  // header type 2
constexpr size_t kPcieDevCap = 0x04;             // offsets inside the PCI Express capability
constexpr size_t kPcieLinkCap = 0x0c;
constexpr uint32_t kDevCapFlr = 0x10000000;

std::string hex(unsigned value, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%0*x", digits, value);
  return buf;
}

// Little-endian reads; callers check bounds first.
uint8_t u8(std::string_view b, size_t at) { return static_cast<uint8_t>(b[at]); }
uint16_t u16(std::string_view b, size_t at) {
  return static_cast<uint16_t>(u8(b, at) | (u8(b, at + 1) << 8));
}
uint32_t u32(std::string_view b, size_t at) {
  return uint32_t{u16(b, at)} | (uint32_t{u16(b, at + 2)} << 16);
}

const char* standard_name(uint16_t id) {
  switch (id) {
    case 0x01: return "Power Management";
    case 0x02: return "AGP";
    case 0x03: return "VPD";
    case 0x04: return "Slot ID";
    case 0x05: return "MSI";
    case 0x06: return "CompactPCI Hot Swap";
    case 0x07: return "PCI-X";
    case 0x08: return "HyperTransport";
    case 0x09: return "Vendor Specific";
    case 0x0a: return "Debug Port";
    case 0x0b: return "CompactPCI CRC";
    case 0x0c: return "Hot-Plug";
    case 0x0d: return "Bridge Subsystem Vendor ID";
    case 0x0e: return "AGP 8x";
    case 0x0f: return "Secure Device";
    case 0x10: return "PCI Express";
    case 0x11: return "MSI-X";
    case 0x12: return "SATA";
    case 0x13: return "Advanced Features";
    case 0x14: return "Enhanced Allocation";
    case 0x15: return "Flattening Portal Bridge";
    default: return nullptr;
  }
}

const char* extended_name(uint16_t id) {
  switch (id) {
    case 0x00: return "(null)";
    case 0x01: return "AER";
    case 0x02: return "Virtual Channel";
    case 0x03: return "Device Serial Number";
    case 0x04: return "Power Budgeting";
    case 0x05: return "Root Complex Link Declaration";
    case 0x06: return "Root Complex Internal Link Control";
    case 0x07: return "Root Complex Event Collector";
    case 0x08: return "Multi-Function VC";
    case 0x09: return "Virtual Channel (MFVC)";
    case 0x0a: return "RCRB";
    case 0x0b: return "Vendor Specific";
    case 0x0c: return "Config Access Correlation";
    case 0x0d: return "ACS";
    case 0x0e: return "ARI";
    case 0x0f: return "ATS";
    case 0x10: return "SR-IOV";
    case 0x11: return "MR-IOV";
    case 0x12: return "Multicast";
    case 0x13: return "Page Request";
    case 0x15: return "Resizable BAR";
    case 0x16: return "Dynamic Power Allocation";
    case 0x17: return "TPH Requester";
    case 0x18: return "LTR";
    case 0x19: return "Secondary PCIe";
    case 0x1a: return "Protocol Multiplexing";
    case 0x1b: return "PASID";
    case 0x1d: return "DPC";
    case 0x1e: return "L1 PM Substates";
    case 0x1f: return "PTM";
    case 0x23: return "Designated Vendor-Specific";
    case 0x24: return "VF Resizable BAR";
    case 0x25: return "Data Link Feature";
    case 0x26: return "Physical Layer 16.0 GT/s";
    case 0x27: return "Lane Margining at the Receiver";
    case 0x2a: return "Physical Layer 32.0 GT/s";
    case 0x2e: return "Data Object Exchange";
    default: return nullptr;
  }
}

// The list at the pointer register: entries are [id, next] byte pairs inside the first 256
// bytes. The spec reserves a pointer's low two bits, and software masks them (as Linux does).
void walk_standard(std::string_view b, ConfigSpace& cs) {
  if ((u16(b, kStatus) & kStatusCapList) == 0) return;  // the device has no list
  size_t pointer_register;
  if (cs.header_type == 0 || cs.header_type == 1) {
    pointer_register = kCapabilityList;
  } else if (cs.header_type == 2) {
    pointer_register = kCardbusCapabilityList;
  } else {
    cs.problems.push_back("capability list: unknown header type " + hex(cs.header_type, 2) +
                          ", list not read");
    return;
  }
  const size_t limit = std::min(b.size(), kConfigLegacySize);
  std::bitset<kConfigLegacySize / 4> seen;
  std::string from = "the pointer at " + hex(static_cast<unsigned>(pointer_register), 2);
  size_t pos = u8(b, pointer_register) & 0xfcu;
  int count = 0;
  while (pos != 0) {
    if (count == kMaxCapabilities) {
      cs.problems.push_back("capability list: more than " + std::to_string(kMaxCapabilities) +
                            " entries, rest not read");
      return;
    }
    if (pos < kConfigHeaderSize) {
      cs.problems.push_back("capability list: " + from + " points to " + hex(static_cast<unsigned>(pos), 2) +
                            ", inside the 64-byte header");
      return;
    }
    if (pos + 2 > limit) {
      cs.problems.push_back("capability list: " + from + " points to " + hex(static_cast<unsigned>(pos), 2) +
                            ", beyond the " + std::to_string(b.size()) + " bytes read");
      return;
    }
    if (seen[pos / 4]) {
      cs.problems.push_back("capability list: " + from + " points back to " +
                            hex(static_cast<unsigned>(pos), 2) + " (a loop)");
      return;
    }
    seen[pos / 4] = true;
    uint8_t id = u8(b, pos);
    if (id == 0xff) {  // what a function that stopped answering returns
      cs.problems.push_back("capability list: entry at " + hex(static_cast<unsigned>(pos), 2) +
                            " reads as 0xff (the function does not answer)");
      return;
    }
    cs.capabilities.push_back(Capability{id, static_cast<uint16_t>(pos), false, 0});
    ++count;
    from = "the entry at " + hex(static_cast<unsigned>(pos), 2);
    pos = u8(b, pos + 1) & 0xfcu;
  }
}

// The extended list: 32-bit headers [id:16, version:4, next:12] from 0x100 on. Linux stops at a
// zero or all-ones first header (no extended capabilities, or no access to extended space).
void walk_extended(std::string_view b, ConfigSpace& cs) {
  if (b.size() < kConfigLegacySize + 4) return;
  std::bitset<kConfigExtendedSize / 4> seen;
  std::string from = "the start";
  size_t pos = kConfigLegacySize;
  int count = 0;
  while (true) {
    if (count == kMaxExtendedCapabilities) {
      cs.problems.push_back("extended capability list: more than " +
                            std::to_string(kMaxExtendedCapabilities) + " entries, rest not read");
      return;
    }
    if (pos + 4 > b.size()) {
      cs.problems.push_back("extended capability list: " + from + " points to " +
                            hex(static_cast<unsigned>(pos), 3) + ", beyond the " +
                            std::to_string(b.size()) + " bytes read");
      return;
    }
    if (seen[pos / 4]) {
      cs.problems.push_back("extended capability list: " + from + " points back to " +
                            hex(static_cast<unsigned>(pos), 3) + " (a loop)");
      return;
    }
    seen[pos / 4] = true;
    uint32_t header = u32(b, pos);
    if (header == 0 || header == 0xffffffffu) {
      if (pos != kConfigLegacySize)
        cs.problems.push_back("extended capability list: " + from + " points to " +
                              hex(static_cast<unsigned>(pos), 3) +
                              (header == 0 ? ", which is empty" : ", which reads as all ones"));
      return;
    }
    cs.capabilities.push_back(Capability{static_cast<uint16_t>(header & 0xffff),
                                         static_cast<uint16_t>(pos), true,
                                         static_cast<uint8_t>((header >> 16) & 0xf)});
    ++count;
    size_t next = (header >> 20) & 0xffcu;
    if (next == 0) return;
    if (next < kConfigLegacySize) {
      cs.problems.push_back("extended capability list: the entry at " +
                            hex(static_cast<unsigned>(pos), 3) + " points to " +
                            hex(static_cast<unsigned>(next), 3) + ", below 0x100");
      return;
    }
    from = "the entry at " + hex(static_cast<unsigned>(pos), 3);
    pos = next;
  }
}

void decode_pcie(std::string_view b, ConfigSpace& cs) {
  const Capability* cap = cs.find(kCapPciExpress, false);
  if (cap == nullptr) return;
  const size_t at = cap->offset;
  // Everything decoded lies in the first 0x10 bytes of the capability.
  if (at + kPcieLinkCap + 4 > std::min(b.size(), kConfigLegacySize)) {
    cs.problems.push_back("PCI Express capability at " + hex(static_cast<unsigned>(at), 2) +
                          " is cut off by the end of the " + std::to_string(std::min(b.size(), kConfigLegacySize)) +
                          "-byte space");
    return;
  }
  PcieCapability p;
  p.offset = static_cast<uint16_t>(at);
  uint16_t caps = u16(b, at + 2);
  p.version = static_cast<uint8_t>(caps & 0xf);
  p.port_type = static_cast<uint8_t>((caps >> 4) & 0xf);
  p.flr = (u32(b, at + kPcieDevCap) & kDevCapFlr) != 0;
  uint32_t link = u32(b, at + kPcieLinkCap);
  p.max_link_speed = static_cast<uint8_t>(link & 0xf);
  p.max_link_width = static_cast<int>((link >> 4) & 0x3f);
  cs.pcie = p;
}

}  // namespace

std::string Capability::to_string() const {
  const char* name = extended ? extended_name(id) : standard_name(id);
  if (extended) return "ext " + hex(id, 4) + (name ? std::string(" ") + name : std::string());
  return name ? std::string(name) : hex(id, 2);
}

double PcieCapability::max_link_gts() const {
  switch (max_link_speed) {
    case 1: return 2.5;
    case 2: return 5.0;
    case 3: return 8.0;
    case 4: return 16.0;
    case 5: return 32.0;
    case 6: return 64.0;
    default: return 0;
  }
}

const Capability* ConfigSpace::find(uint16_t id, bool extended) const {
  for (const auto& c : capabilities)
    if (c.id == id && c.extended == extended) return &c;
  return nullptr;
}

Result<ConfigSpace> parse_config_space(std::string_view bytes, std::string_view where) {
  if (bytes.size() < kConfigHeaderSize || bytes.size() > kConfigExtendedSize)
    return fail(Code::kInternal, std::string(where) + ": " + std::to_string(bytes.size()) +
                                     " bytes of configuration space, expected 64 to 4096");
  ConfigSpace cs;
  cs.size = bytes.size();
  cs.vendor_id = u16(bytes, 0x00);
  cs.device_id = u16(bytes, 0x02);
  if (cs.vendor_id == 0xffff)
    return fail(Code::kInternal, std::string(where) +
                                     ": configuration space reads as all ones (the function is "
                                     "gone or powered off)");
  cs.class_code = u32(bytes, 0x08) >> 8;
  cs.header_type = u8(bytes, kHeaderType) & 0x7f;
  walk_standard(bytes, cs);
  walk_extended(bytes, cs);
  decode_pcie(bytes, cs);
  return cs;
}

}  // namespace feos::pci
