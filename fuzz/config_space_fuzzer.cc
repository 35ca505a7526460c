// Configuration space bytes (sysfs `config`): parse_config_space walks the capability list and the
// PCIe extended capability list, whose pointers the device (or a hypervisor in front of it)
// controls. Checks: nothing crashes or reads out of bounds (ASan); errors only for the size and
// all-ones cases; every listed capability lies inside the bytes given, at a legal, aligned
// offset, once; the lists are bounded; the PCI Express capability is decoded only when its
// registers were inside the first 256 bytes.
#include <algorithm>
#include <cstdint>
#include <set>
#include <string>

#include "fuzz_check.h"
#include "pci/config_space.h"

using feos::Code;
using namespace feos::pci;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = feos::fuzz::as_text(data, size);
  auto parsed = parse_config_space(bytes, "fuzz/config");
  if (!parsed) {
    feos::fuzz::check_error(parsed.error(), Code::kInternal, "parse_config_space");
    FUZZ_CHECK(size < kConfigHeaderSize || size > kConfigExtendedSize ||
                   (data[0] == 0xff && data[1] == 0xff),
               "rejected %zu bytes: %s", size, parsed.error().message.c_str());
    return 0;
  }
  const ConfigSpace& cs = *parsed;
  FUZZ_CHECK(cs.size == size, "size %zu for %zu bytes", cs.size, size);
  size_t standard = 0, extended = 0;
  std::set<uint16_t> offsets;
  for (const auto& cap : cs.capabilities) {
    FUZZ_CHECK(offsets.insert(cap.offset).second, "offset 0x%x listed twice", cap.offset);
    FUZZ_CHECK(cap.offset % 4 == 0, "unaligned offset 0x%x", cap.offset);
    if (cap.extended) {
      ++extended;
      FUZZ_CHECK(cap.offset >= kConfigLegacySize && cap.offset + 4u <= size,
                 "extended capability at 0x%x outside 0x100..%zu", cap.offset, size);
      FUZZ_CHECK(cap.version <= 0xf, "version %u", cap.version);
    } else {
      ++standard;
      FUZZ_CHECK(extended == 0, "a standard capability after an extended one");
      FUZZ_CHECK(cap.offset >= kConfigHeaderSize && cap.offset + 2u <= std::min(size, kConfigLegacySize),
                 "capability at 0x%x outside 0x40..%zu", cap.offset, size);
      FUZZ_CHECK(cap.id <= 0xff && cap.id != 0xff, "standard id 0x%x", cap.id);
    }
    (void)cap.to_string();
  }
  FUZZ_CHECK(standard <= static_cast<size_t>(kMaxCapabilities), "%zu standard capabilities", standard);
  FUZZ_CHECK(extended <= static_cast<size_t>(kMaxExtendedCapabilities), "%zu extended capabilities", extended);
  if (extended > 0) FUZZ_CHECK(cs.has_extended_space(), "extended capabilities in %zu bytes", size);
  if (cs.pcie) {
    const Capability* cap = cs.find(kCapPciExpress, false);
    FUZZ_CHECK(cap != nullptr && cap->offset == cs.pcie->offset, "PCIe decoded without its capability");
    FUZZ_CHECK(cs.pcie->offset + 0x10u <= std::min(size, kConfigLegacySize),
               "PCIe capability at 0x%x decoded past the end", cs.pcie->offset);
    FUZZ_CHECK(cs.pcie->max_link_width >= 0 && cs.pcie->max_link_width <= 0x3f, "width %d",
               cs.pcie->max_link_width);
    const double gts = cs.pcie->max_link_gts();
    FUZZ_CHECK(gts == 0 || (gts >= 2.5 && gts <= 64), "speed %f", gts);
    FUZZ_CHECK(cs.flr_supported() == cs.pcie->flr, "flr_supported disagrees");
  } else {
    FUZZ_CHECK(!cs.flr_supported(), "FLR without a PCIe capability");
  }
  return 0;
}
