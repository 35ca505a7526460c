#pragma once
// Strict number parsing for outside data (sysfs attributes, PCI addresses, pci.ids, procfs, qemu
// command lines, requests): no sign, no whitespace, no prefix, no overflow. The one hex and the one
// decimal parser of the tree.
#include <cstdint>
#include <optional>
#include <string_view>

namespace feos {

// `digits` as hexadecimal (either case): 1..max_digits digits and nothing else (max_digits <= 16).
// nullopt otherwise. "0x" prefixes are the caller's to strip (see strip_hex_prefix).
std::optional<uint64_t> parse_hex(std::string_view digits, size_t max_digits = 16);

// `digits` as decimal: 1..max_digits digits and nothing else (max_digits <= 19, so it never
// overflows). nullopt otherwise.
std::optional<uint64_t> parse_decimal(std::string_view digits, size_t max_digits = 19);

// `text` without a leading "0x" or "0X" (sysfs writes ids as "0x10de").
std::string_view strip_hex_prefix(std::string_view text);

}  // namespace feos
