#pragma once
// How messages and listings name PCI functions and classes: pci.ids names when a database is
// given, else built-in base-class names (PCI Code and ID Assignment Specification).
#include <cstdint>
#include <string>

#include "pci/device.h"
#include "pci/pci_ids.h"

namespace feos::pci {

// The pci.ids name of the class (most specific known), else a built-in base-class name
// ("network controller"), else "class 0x..".
std::string class_name(uint32_t class_code, const PciIds* ids);

// "0000:04:00.0 (8086:1521 Ethernet controller, driver igb)" (driver "none" when unbound).
std::string describe_device(const Device& device, const PciIds* ids);

}  // namespace feos::pci
