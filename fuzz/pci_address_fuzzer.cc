// PCI addresses and vendor:device ids come from API callers (GpuConfig.address), the operator's
// policy file and sysfs directory names, and addresses become sysfs path components. Checks:
// nothing crashes; an accepted address is exactly a well-formed one (its canonical form, either
// case, or the short form) and round-trips through to_string(); the same for DeviceId;
// quote_for_message() yields bounded printable ASCII.
#include <cctype>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "pci/address.h"
#include "pci/device.h"

using feos::Code;
using feos::fuzz::as_text;
using feos::fuzz::check_error;
using feos::pci::Address;
using feos::pci::DeviceId;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void check_address(std::string_view text) {
  auto parsed = Address::parse(text);
  if (!parsed) {
    check_error(parsed.error(), Code::kInvalidArgument, "Address::parse");
    return;
  }
  const std::string canonical = parsed->to_string();
  FUZZ_CHECK(canonical.size() == 12, "to_string '%s' is not DDDD:BB:DD.F", canonical.c_str());
  // Only the two documented spellings are accepted: nothing else can reach a sysfs path.
  const std::string spelled = lower(text);
  FUZZ_CHECK(spelled == canonical || "0000:" + spelled == canonical,
             "accepted '%s' but its canonical form is '%s'", spelled.c_str(), canonical.c_str());
  auto again = Address::parse(canonical);
  FUZZ_CHECK(again && *again == *parsed, "'%s' does not parse back to the same address", canonical.c_str());
  FUZZ_CHECK(parsed->device() <= 0x1f && parsed->function() <= 7, "out of range fields in '%s'",
             canonical.c_str());
  FUZZ_CHECK(canonical.rfind(parsed->slot(), 0) == 0, "slot '%s' is not a prefix of '%s'",
             parsed->slot().c_str(), canonical.c_str());
  FUZZ_CHECK(parsed->same_slot(parsed->with_function(7)), "with_function leaves the slot");
  FUZZ_CHECK(std::hash<Address>{}(*parsed) == std::hash<Address>{}(*again), "hash differs");
}

void check_device_id(std::string_view text) {
  auto parsed = DeviceId::parse(text);
  if (!parsed) {
    check_error(parsed.error(), Code::kInvalidArgument, "DeviceId::parse");
    return;
  }
  const std::string canonical = parsed->to_string();
  FUZZ_CHECK(lower(text) == canonical, "accepted id '%.*s' as '%s'", static_cast<int>(text.size()),
             text.data(), canonical.c_str());
  auto again = DeviceId::parse(canonical);
  FUZZ_CHECK(again && *again == *parsed, "id '%s' does not parse back", canonical.c_str());
}

void check_quote(std::string_view text) {
  const std::string quoted = feos::quote_for_message(text);
  // 64 characters of at most 4 bytes each, two quotes and "...".
  FUZZ_CHECK(quoted.size() <= 64 * 4 + 2 + 3, "quote of %zu bytes is %zu long", text.size(), quoted.size());
  for (char c : quoted) {
    auto u = static_cast<unsigned char>(c);
    FUZZ_CHECK(u >= 0x20 && u < 0x7f, "quote contains byte 0x%02x", u);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = as_text(data, size);
  check_address(text);
  check_device_id(text);
  check_quote(text);
  return 0;
}
