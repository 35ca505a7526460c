#pragma once
// An IOMMU group, by the number the kernel names it with (kernel/iommu_groups/<n>). Groups become
// path components (<sysfs>/kernel/iommu_groups/<n>, <dev>/vfio/<n>), so only a number can be one;
// it is parsed where it enters the daemon (sysfs links, stored records) and is a value below.
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"

namespace feos::pci {

class IommuGroup {
 public:
  constexpr explicit IommuGroup(uint32_t number) : number_(number) {}

  // Parses a group's name: a decimal number of 1-10 digits, at most 4294967295 (the kernel writes
  // it with %d). Anything else, including an empty string, a sign, spaces or "../", is
  // INVALID_ARGUMENT "invalid IOMMU group '<text>' (expected a number)".
  static Result<IommuGroup> parse(std::string_view text);

  uint32_t number() const { return number_; }
  // "41": the name under kernel/iommu_groups and <dev>/vfio.
  std::string to_string() const { return std::to_string(number_); }

  friend constexpr auto operator<=>(const IommuGroup&, const IommuGroup&) = default;
  friend constexpr bool operator==(const IommuGroup&, const IommuGroup&) = default;

 private:
  uint32_t number_;
};

}  // namespace feos::pci
