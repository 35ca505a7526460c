#pragma once
// A PCI device's memory and I/O regions as the kernel reports them in sysfs `resource`: one line
// "0x<start> 0x<end> 0x<flags>" per resource; lines 0-5 are the BARs (by register index: a 64-bit
// BAR takes two registers, so the line after it is empty), line 6 the expansion ROM, and bridges
// add their windows after that.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace feos::pci {

// Flag bits of struct resource, from the kernel's include/linux/ioport.h.
inline constexpr uint64_t kIoresourceIo = 0x00000100;
inline constexpr uint64_t kIoresourceMem = 0x00000200;
inline constexpr uint64_t kIoresourcePrefetch = 0x00002000;
inline constexpr uint64_t kIoresourceMem64 = 0x00100000;
inline constexpr uint64_t kIoresourceDisabled = 0x10000000;
inline constexpr uint64_t kIoresourceUnset = 0x20000000;

inline constexpr int kRomIndex = 6;  // PCI_ROM_RESOURCE

struct Resource {
  int index = 0;  // line number: 0-5 BAR register index, 6 ROM, 7+ bridge windows
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t flags = 0;

  // Bytes spanned (end - start + 1); 0 for an unused line (all zero).
  uint64_t size() const {
    if ((start == 0 && end == 0) || end < start) return 0;
    return end - start + 1;
  }
  bool present() const { return size() != 0; }
  bool is_io() const { return (flags & kIoresourceIo) != 0; }
  bool is_mem() const { return (flags & kIoresourceMem) != 0; }
  // A 64-bit memory BAR (the kernel sets IORESOURCE_MEM_64 when the BAR's type bits are 10b).
  bool is_64bit() const { return (flags & kIoresourceMem64) != 0; }
  bool is_prefetchable() const { return (flags & kIoresourcePrefetch) != 0; }
  // Sized but no address assigned (the firmware or kernel could not fit it).
  bool is_unassigned() const { return (flags & kIoresourceUnset) != 0; }
};

// All lines of a `resource` file, in order. Precondition: none. INTERNAL if a line is not three
// 0x-prefixed hex numbers of at most 16 digits or there are fewer than 7 lines; the message
// names `where` (the file's path) and the line.
Result<std::vector<Resource>> parse_resource_file(std::string_view text, std::string_view where);

// Sums of present BAR sizes (lines 0-5 only; ROM and bridge windows are not counted), each
// capped at UINT64_MAX rather than wrapping around.
struct BarTotals {
  uint64_t mem64_prefetchable = 0;  // what a VM's 64-bit MMIO window (pci-hole64) must hold
  uint64_t mem64_other = 0;
  uint64_t mem32 = 0;
  uint64_t io = 0;
};
BarTotals bar_totals(const std::vector<Resource>& bars);

// "16 MiB", "128 GiB", "4 KiB", "1.5 GiB", "512 B": binary units, at most one decimal.
std::string format_bytes(uint64_t bytes);

}  // namespace feos::pci
