#include "pci/resource.h"

#include <cstdio>

#include "common/parse.h"

namespace feos::pci {
namespace {

// "0x" (or "0X") followed by 1-16 hex digits.
std::optional<uint64_t> parse_hex64(std::string_view token) {
  std::string_view digits = strip_hex_prefix(token);
  if (digits.size() == token.size()) return std::nullopt;  // no prefix
  return parse_hex(digits, 16);
}

std::vector<std::string_view> split_spaces(std::string_view line) {
  std::vector<std::string_view> tokens;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) tokens.push_back(line.substr(start, i - start));
  }
  return tokens;
}

}  // namespace

Result<std::vector<Resource>> parse_resource_file(std::string_view text, std::string_view where) {
  std::vector<Resource> out;
  size_t pos = 0;
  int index = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (line.empty() && pos >= text.size()) break;  // the final newline
    auto tokens = split_spaces(line);
    std::optional<uint64_t> start, end, flags;
    if (tokens.size() == 3) {
      start = parse_hex64(tokens[0]);
      end = parse_hex64(tokens[1]);
      flags = parse_hex64(tokens[2]);
    }
    if (!start || !end || !flags)
      return fail(Code::kInternal, "malformed line " + std::to_string(index + 1) + " in " +
                                       std::string(where) + ": " + quote_for_message(line));
    out.push_back(Resource{index, *start, *end, *flags});
    ++index;
  }
  if (out.size() < kRomIndex + 1)
    return fail(Code::kInternal, std::string(where) + " has " + std::to_string(out.size()) +
                                     " lines, expected at least 7 (6 BARs and the ROM)");
  return out;
}

BarTotals bar_totals(const std::vector<Resource>& bars) {
  // The file's numbers are 64-bit, so two huge lines could wrap a plain sum to a small total.
  auto add = [](uint64_t& total, uint64_t size) {
    total = size > UINT64_MAX - total ? UINT64_MAX : total + size;
  };
  BarTotals t;
  for (const auto& r : bars) {
    if (r.index >= kRomIndex || !r.present()) continue;
    if (r.is_io()) add(t.io, r.size());
    else if (r.is_64bit() && r.is_prefetchable()) add(t.mem64_prefetchable, r.size());
    else if (r.is_64bit()) add(t.mem64_other, r.size());
    else if (r.is_mem()) add(t.mem32, r.size());
  }
  return t;
}

std::string format_bytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int unit = 0;
  while (unit < 6 && bytes >= (uint64_t{1} << (10 * (unit + 1)))) ++unit;
  uint64_t scale = uint64_t{1} << (10 * unit);
  char buf[32];
  if (bytes % scale == 0)
    std::snprintf(buf, sizeof buf, "%llu %s", static_cast<unsigned long long>(bytes / scale), kUnits[unit]);
  else  // not a whole number of units: one decimal, so "128.0 GiB" is visibly not exact
    std::snprintf(buf, sizeof buf, "%.1f %s", static_cast<double>(bytes) / static_cast<double>(scale), kUnits[unit]);
  return buf;
}

}  // namespace feos::pci
