#include "pci/address.h"

#include <cstdio>

namespace feos::pci {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Exactly `digits` hex digits at text[pos...]; -1 if any is not a hex digit.
long fixed_hex(std::string_view text, size_t pos, size_t digits) {
  long value = 0;
  for (size_t i = 0; i < digits; ++i) {
    int v = hex_value(text[pos + i]);
    if (v < 0) return -1;
    value = value * 16 + v;
  }
  return value;
}

}  // namespace

Result<Address> Address::parse(std::string_view text) {
  auto invalid = [&](std::string_view why) {
    return fail(Code::kInvalidArgument, "invalid PCI address " + quote_for_message(text) + ": " +
                                            std::string(why) +
                                            " (expected DDDD:BB:DD.F or BB:DD.F, hex)");
  };
  // Full form is 12 characters, short form 7; the separators sit at fixed places.
  size_t base;
  long domain = 0;
  if (text.size() == 12) {
    if (text[4] != ':') return invalid("wrong separator after domain");
    domain = fixed_hex(text, 0, 4);
    if (domain < 0) return invalid("domain is not 4 hex digits");
    base = 5;
  } else if (text.size() == 7) {
    base = 0;
  } else {
    return invalid(text.empty() ? "empty" : "wrong length");
  }
  if (text[base + 2] != ':' || text[base + 5] != '.') return invalid("wrong separators");
  long bus = fixed_hex(text, base, 2);
  long device = fixed_hex(text, base + 3, 2);
  long function = fixed_hex(text, base + 6, 1);
  if (bus < 0 || device < 0 || function < 0) return invalid("not hex");
  if (device > 0x1f) return invalid("device number above 1f");
  if (function > 7) return invalid("function number above 7");
  return Address(static_cast<uint16_t>(domain), static_cast<uint8_t>(bus),
                 static_cast<uint8_t>(device), static_cast<uint8_t>(function));
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
