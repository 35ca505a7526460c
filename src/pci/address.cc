#include "pci/address.h"

#include <cstdio>

#include "common/parse.h"

namespace feos::pci {

Result<Address> Address::parse(std::string_view text) {
  auto invalid = [&](std::string_view why) {
    return fail(Code::kInvalidArgument, "invalid PCI address " + quote_for_message(text) + ": " +
                                            std::string(why) +
                                            " (expected DDDD:BB:DD.F or BB:DD.F, hex)");
  };
  // Full form is 12 characters, short form 7; the separators sit at fixed places, so each field
  // below is exactly its width.
  auto field = [&](size_t pos, size_t digits) { return parse_hex(text.substr(pos, digits), digits); };
  size_t base;
  std::optional<uint64_t> domain = 0;
  if (text.size() == 12) {
    if (text[4] != ':') return invalid("wrong separator after domain");
    domain = field(0, 4);
    if (!domain) return invalid("domain is not 4 hex digits");
    base = 5;
  } else if (text.size() == 7) {
    base = 0;
  } else {
    return invalid(text.empty() ? "empty" : "wrong length");
  }
  if (text[base + 2] != ':' || text[base + 5] != '.') return invalid("wrong separators");
  auto bus = field(base, 2);
  auto device = field(base + 3, 2);
  auto function = field(base + 6, 1);
  if (!bus || !device || !function) return invalid("not hex");
  if (*device > 0x1f) return invalid("device number above 1f");
  if (*function > 7) return invalid("function number above 7");
  return Address(static_cast<uint16_t>(*domain), static_cast<uint8_t>(*bus),
                 static_cast<uint8_t>(*device), static_cast<uint8_t>(*function));
}

std::string Address::to_string() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", domain_, bus_, device_, function_);
  return buf;
}

std::string Address::slot() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x", domain_, bus_, device_);
  return buf;
}

}  // namespace feos::pci
