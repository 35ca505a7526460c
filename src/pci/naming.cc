#include "pci/naming.h"

#include <cstdio>

namespace feos::pci {
namespace {

// Base class names (PCI Code and ID Assignment Specification), for hosts without pci.ids.
const char* base_class_name(uint8_t base) {
  switch (base) {
    case 0x00: return "unclassified device";
    case 0x01: return "mass storage controller";
    case 0x02: return "network controller";
    case 0x03: return "display controller";
    case 0x04: return "multimedia controller";
    case 0x05: return "memory controller";
    case 0x06: return "bridge";
    case 0x07: return "communication controller";
    case 0x08: return "generic system peripheral";
    case 0x09: return "input device controller";
    case 0x0a: return "docking station";
    case 0x0b: return "processor";
    case 0x0c: return "serial bus controller";
    case 0x0d: return "wireless controller";
    case 0x0e: return "intelligent controller";
    case 0x0f: return "satellite communications controller";
    case 0x10: return "encryption controller";
    case 0x11: return "signal processing controller";
    case 0x12: return "processing accelerator";
    case 0x13: return "non-essential instrumentation";
    case 0x40: return "coprocessor";
    default: return nullptr;
  }
}

}  // namespace

std::string class_name(uint32_t class_code, const PciIds* ids) {
  if (ids != nullptr) {
    if (auto name = ids->class_name(class_code)) return std::string(*name);
  }
  if (const char* name = base_class_name(static_cast<uint8_t>(class_code >> 16))) return name;
  char buf[24];
  std::snprintf(buf, sizeof buf, "class 0x%06x", class_code & 0xffffff);
  return buf;
}

std::string describe_device(const Device& device, const PciIds* ids) {
  return device.address.to_string() + " (" + device.id() + " " +
         class_name(device.class_code, ids) + ", driver " +
         (device.driver.empty() ? std::string("none") : device.driver) + ")";
}

}  // namespace feos::pci
