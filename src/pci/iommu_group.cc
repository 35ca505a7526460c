#include "pci/iommu_group.h"

#include <limits>

namespace feos::pci {

Result<IommuGroup> IommuGroup::parse(std::string_view text) {
  auto invalid = [&] {
    return fail(Code::kInvalidArgument,
                "invalid IOMMU group " + quote_for_message(text) + " (expected a number)");
  };
  if (text.empty() || text.size() > 10) return invalid();
  uint64_t number = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return invalid();
    number = number * 10 + static_cast<uint64_t>(c - '0');
  }
  if (number > std::numeric_limits<uint32_t>::max()) return invalid();
  return IommuGroup(static_cast<uint32_t>(number));
}

}  // namespace feos::pci
