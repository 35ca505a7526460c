#include "model/vm_id.h"

#include <cctype>
#include <cstdio>
#include <random>

namespace feos::model {

Result<VmId> VmId::parse(std::string_view text) {
  static constexpr int kGroups[] = {8, 4, 4, 4, 12};
  size_t pos = 0;
  bool valid = text.size() == 36;
  for (int g = 0; valid && g < 5; ++g) {
    for (int i = 0; i < kGroups[g]; ++i, ++pos)
      if (!std::isxdigit(static_cast<unsigned char>(text[pos]))) valid = false;
    if (g < 4 && valid && text[pos++] != '-') valid = false;
  }
  if (valid) return VmId(std::string(text));
  return fail(Code::kInvalidArgument, "invalid vm id " + quote_for_message(text) +
                                          ": expected a UUID like 123e4567-e89b-12d3-a456-426614174000");
}

VmId VmId::random() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return VmId(buf);
}

VmId VmId::canonical() const {
  std::string lower = text_;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return VmId(std::move(lower));
}

}  // namespace feos::model
