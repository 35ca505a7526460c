#include "pci/device.h"

#include <cstdio>

#include "common/parse.h"

namespace feos::pci {

std::string Link::to_string() const {
  char buf[64];
  if (gts > 0) std::snprintf(buf, sizeof buf, "%.1f GT/s x%d", gts, width);
  else std::snprintf(buf, sizeof buf, "%s x%d", speed.empty() ? "unknown" : speed.c_str(), width);
  return buf;
}

std::string Device::id() const { return DeviceId{vendor_id, device_id}.to_string(); }

std::string Device::subsystem_id() const {
  return DeviceId{subsystem_vendor_id, subsystem_device_id}.to_string();
}

std::string Device::class_string() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%06x", class_code & 0xffffff);
  return buf;
}

bool Device::is_pci_bridge() const {
  const uint32_t base_sub = class_code >> 8;
  return base_sub == 0x0604 || base_sub == 0x0609 || base_sub == 0x0607;
}

bool Device::is_nvswitch() const { return vendor_id == kVendorNvidia && (class_code >> 8) == 0x0680; }

std::vector<Resource> Device::present_bars() const {
  std::vector<Resource> out;
  for (const auto& bar : bars)
    if (bar.present()) out.push_back(bar);
  return out;
}

Result<DeviceId> DeviceId::parse(std::string_view text) {
  auto hex4 = [](std::string_view s, uint16_t& out) {
    auto value = s.size() == 4 ? parse_hex(s, 4) : std::nullopt;
    if (value) out = static_cast<uint16_t>(*value);
    return value.has_value();
  };
  DeviceId id;
  if (text.size() != 9 || text[4] != ':' || !hex4(text.substr(0, 4), id.vendor) ||
      !hex4(text.substr(5, 4), id.device))
    return fail(Code::kInvalidArgument, "invalid PCI id " + quote_for_message(text) +
                                            " (expected VVVV:DDDD, hex, e.g. 10de:2330)");
  return id;
}

std::string DeviceId::to_string() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04x:%04x", vendor, device);
  return buf;
}

}  // namespace feos::pci
