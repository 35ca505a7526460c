// sysfs `resource` files (one "0x<start> 0x<end> 0x<flags>" line per region): parse_resource_file,
// then what callers compute from it (bar_totals for feos-gpu-check's report, format_bytes). Checks: nothing crashes; errors are INTERNAL naming the file; accepted files have at least
// 7 lines, numbered in order; BAR totals equal exact sums (capped at UINT64_MAX, never wrapped).
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>

#include "fuzz_check.h"
#include "pci/resource.h"

using feos::Code;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = feos::fuzz::as_text(data, size);
  auto parsed = feos::pci::parse_resource_file(text, "fuzz/resource");
  if (!parsed) {
    feos::fuzz::check_error(parsed.error(), Code::kInternal, "parse_resource_file");
    FUZZ_CHECK(parsed.error().message.find("fuzz/resource") != std::string::npos,
               "error does not name the file: %s", parsed.error().message.c_str());
    return 0;
  }
  const auto& lines = *parsed;
  FUZZ_CHECK(lines.size() >= 7, "%zu lines accepted", lines.size());
  unsigned __int128 mem64_prefetchable = 0, mem64_other = 0, mem32 = 0, io = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& r = lines[i];
    FUZZ_CHECK(r.index == static_cast<int>(i), "line %zu has index %d", i, r.index);
    FUZZ_CHECK(r.present() == (r.size() != 0), "present() and size() disagree on line %zu", i);
    if (r.present()) {
      FUZZ_CHECK(r.end >= r.start, "present line %zu ends before it starts", i);
      (void)feos::pci::format_bytes(r.size());
    }
    if (r.index >= feos::pci::kRomIndex || !r.present()) continue;
    if (r.is_io()) io += r.size();
    else if (r.is_64bit() && r.is_prefetchable()) mem64_prefetchable += r.size();
    else if (r.is_64bit()) mem64_other += r.size();
    else if (r.is_mem()) mem32 += r.size();
  }
  // The same sums in 128 bits, capped at UINT64_MAX, must equal what bar_totals() reports.
  auto capped = [](unsigned __int128 v) {
    return v > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(v);
  };
  const auto totals = feos::pci::bar_totals(lines);
  FUZZ_CHECK(totals.mem64_prefetchable == capped(mem64_prefetchable) &&
                 totals.mem64_other == capped(mem64_other) && totals.mem32 == capped(mem32) &&
                 totals.io == capped(io),
             "bar_totals wrapped around: mem64 prefetchable %" PRIu64 ", mem64 %" PRIu64
             ", mem32 %" PRIu64 ", io %" PRIu64,
             totals.mem64_prefetchable, totals.mem64_other, totals.mem32, totals.io);
  return 0;
}
