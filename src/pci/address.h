#pragma once
// A PCI function address (domain:bus:device.function). Parsing is strict because addresses come
// from operators and API callers and end up as sysfs path components: nothing that is not a
// well-formed address ever reaches a path.
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace feos::pci {

class Address {
 public:
  // 0000:00:00.0
  constexpr Address() = default;
  // Precondition: device <= 0x1f, function <= 7 (use parse() for untrusted input).
  constexpr Address(uint16_t domain, uint8_t bus, uint8_t device, uint8_t function)
      : domain_(domain), bus_(bus), device_(device), function_(function) {}

  // Parses "DDDD:BB:DD.F" (4, 2, 2 and 1 hex digits, either case) or the short form "BB:DD.F"
  // (domain 0). Bounds: device <= 1f, function <= 7. Anything else, including surrounding spaces,
  // "../" traversal, 5-digit (VMD) domains, or an empty string, is INVALID_ARGUMENT naming the input.
  static Result<Address> parse(std::string_view text);

  uint16_t domain() const { return domain_; }
  uint8_t bus() const { return bus_; }
  uint8_t device() const { return device_; }
  uint8_t function() const { return function_; }

  // Canonical lowercase form, the sysfs directory name: "0000:17:00.0".
  std::string to_string() const;
  // The slot (all functions of one card share it): "0000:17:00".
  std::string slot() const;
  // True when both addresses name functions of the same slot (same domain, bus and device).
  bool same_slot(const Address& other) const {
    return domain_ == other.domain_ && bus_ == other.bus_ && device_ == other.device_;
  }
  // The same slot's function `function`. Precondition: function <= 7.
  Address with_function(uint8_t function) const { return Address(domain_, bus_, device_, function); }

  // Ordered by domain, bus, device, function (the order lspci lists).
  friend constexpr auto operator<=>(const Address&, const Address&) = default;
  friend constexpr bool operator==(const Address&, const Address&) = default;

 private:
  // Declaration order is the comparison order.
  uint16_t domain_ = 0;
  uint8_t bus_ = 0;
  uint8_t device_ = 0;
  uint8_t function_ = 0;
};

}  // namespace feos::pci

template <>
struct std::hash<feos::pci::Address> {
  size_t operator()(const feos::pci::Address& a) const noexcept {
    // The four fields fit in 32 bits without overlap, so distinct addresses hash differently.
    uint32_t packed = (uint32_t{a.domain()} << 16) | (uint32_t{a.bus()} << 8) |
                      (uint32_t{a.device()} << 3) | a.function();
    return std::hash<uint32_t>{}(packed);
  }
};
