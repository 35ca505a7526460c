#pragma once
// VM ids written as text in tests ("123e4567-..."), for the typed model::VmId of VmManager's API.
// A typo is a broken test, not a case to handle: it aborts with the parser's message.
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "model/vm_id.h"

namespace feos::test {

inline model::VmId vm_id(std::string_view text) {
  auto id = model::VmId::parse(text);
  if (!id) {
    std::fprintf(stderr, "test data: %s\n", id.error().message.c_str());
    std::abort();
  }
  return *id;
}

}  // namespace feos::test
