#include "pci/device.h"

#include <cstdio>

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

std::vector<Resource> Device::present_bars() const {
  std::vector<Resource> out;
  for (const auto& bar : bars)
    if (bar.present()) out.push_back(bar);
  return out;
}

Result<DeviceId> DeviceId::parse(std::string_view text) {
  auto hex4 = [](std::string_view s, uint16_t& out) {
    if (s.size() != 4) return false;
    unsigned v = 0;
    for (char c : s) {
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else return false;
    }
    out = static_cast<uint16_t>(v);
    return true;
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
