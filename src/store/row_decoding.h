#pragma once
// Helpers the stores share to decode rows (internal to src/store): a row that cannot be decoded
// is a damaged file, reported as INTERNAL "corrupt record", never skipped or turned into defaults.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "model/vm.h"

namespace feos::store {

// INTERNAL "corrupt record for <what>: <detail>", e.g. "corrupt record for vm vm-1: state: ...".
inline tl::unexpected<Error> corrupt(std::string_view what, std::string_view detail) {
  return fail(Code::kInternal, "corrupt record for " + std::string(what) + ": " +
                                   std::string(detail));
}

// A model::VmState stored as its number.
// Errors: corrupt(what, "state: unknown VmState number <n>") outside the enum.
inline Result<model::VmState> state_from_column(int64_t number, std::string_view what) {
  if (number < static_cast<int64_t>(model::VmState::kUnspecified) ||
      number > static_cast<int64_t>(model::VmState::kCrashed)) {
    return corrupt(what, "state: unknown VmState number " + std::to_string(number));
  }
  return static_cast<model::VmState>(number);
}

}  // namespace feos::store
