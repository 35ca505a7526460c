#pragma once
// PCI identifiers written as text in test data ("0000:17:00.0"), for the typed fields of model/
// and store/. A typo is a broken test, not a case to handle: it aborts with the parser's message.
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "pci/address.h"

namespace feos::test {

inline pci::Address pci_address(std::string_view text) {
  auto address = pci::Address::parse(text);
  if (!address) {
    std::fprintf(stderr, "test data: %s\n", address.error().message.c_str());
    std::abort();
  }
  return *address;
}

}  // namespace feos::test
