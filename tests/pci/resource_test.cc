#include "pci/resource.h"

#include <gtest/gtest.h>

namespace feos::pci {
namespace {

// The H100's `resource` file from the captured guest (tests/fixtures/sysfs/h100-guest).
constexpr const char* kH100Resource =
    "0x0000102002000000 0x0000102002ffffff 0x000000000014220c\n"
    "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
    "0x0000100000000000 0x0000101fffffffff 0x000000000014220c\n"
    "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
    "0x0000102000000000 0x0000102001ffffff 0x000000000014220c\n"
    "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
    "0x0000000000000000 0x0000000000000000 0x0000000000000000\n";

TEST(ResourceTest, ParsesTheH100Bars) {
  auto r = parse_resource_file(kH100Resource, "h100/resource");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 7u);
  for (int i = 0; i < 7; ++i) EXPECT_EQ((*r)[i].index, i);

  const Resource& bar0 = (*r)[0];
  EXPECT_EQ(bar0.start, 0x102002000000u);
  EXPECT_EQ(bar0.end, 0x102002ffffffu);
  EXPECT_EQ(bar0.size(), 16ull << 20);
  // 0x14220c = MEM_64 | SIZEALIGN | PREFETCH | MEM | the BAR's own type bits (0xc).
  EXPECT_TRUE(bar0.is_mem());
  EXPECT_FALSE(bar0.is_io());
  EXPECT_TRUE(bar0.is_64bit());
  EXPECT_TRUE(bar0.is_prefetchable());
  EXPECT_FALSE(bar0.is_unassigned());

  // A 64-bit BAR uses two registers: the next line is the empty upper half.
  EXPECT_FALSE((*r)[1].present());
  EXPECT_EQ((*r)[1].size(), 0u);

  EXPECT_EQ((*r)[2].size(), 128ull << 30);
  EXPECT_TRUE((*r)[2].is_64bit());
  EXPECT_TRUE((*r)[2].is_prefetchable());
  EXPECT_EQ((*r)[4].size(), 32ull << 20);
  EXPECT_FALSE((*r)[6].present());  // no ROM

  BarTotals t = bar_totals(*r);
  EXPECT_EQ(t.mem64_prefetchable, (128ull << 30) + (32ull << 20) + (16ull << 20));
  EXPECT_EQ(t.mem64_other, 0u);
  EXPECT_EQ(t.mem32, 0u);
  EXPECT_EQ(t.io, 0u);
}

TEST(ResourceTest, DecodesIoMem32AndNonPrefetchable) {
  // A bare-metal H100 layout (BAR0 32-bit non-prefetchable), an I/O BAR and an enabled ROM.
  const char* text =
      "0x00000000e2000000 0x00000000e2ffffff 0x0000000000040200\n"
      "0x0000020000000000 0x0000021fffffffff 0x000000000014220c\n"
      "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
      "0x0000022000000000 0x0000022001ffffff 0x000000000014220c\n"
      "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
      "0x000000000000e000 0x000000000000e07f 0x0000000000040101\n"
      "0x00000000e3000000 0x00000000e307ffff 0x0000000000046200\n";
  auto r = parse_resource_file(text, "x");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE((*r)[0].is_mem());
  EXPECT_FALSE((*r)[0].is_64bit());
  EXPECT_FALSE((*r)[0].is_prefetchable());
  EXPECT_EQ((*r)[1].size(), 128ull << 30);
  EXPECT_TRUE((*r)[5].is_io());
  EXPECT_FALSE((*r)[5].is_mem());
  EXPECT_EQ((*r)[5].size(), 128u);
  EXPECT_EQ((*r)[6].index, kRomIndex);
  EXPECT_EQ((*r)[6].size(), 512u << 10);

  BarTotals t = bar_totals(*r);
  EXPECT_EQ(t.mem32, 16ull << 20);
  EXPECT_EQ(t.mem64_prefetchable, (128ull << 30) + (32ull << 20));
  EXPECT_EQ(t.io, 128u);  // the ROM (line 6) is not a BAR and is not counted
}

TEST(ResourceTest, AcceptsBridgeWindowsAndUnsetBars) {
  std::string text;
  for (int i = 0; i < 17; ++i) text += "0x0000000000000000 0x0000000000000000 0x0000000000000000\n";
  // An unassigned 64-bit BAR: sized (end = size - 1) but IORESOURCE_UNSET.
  text.replace(0, 56, "0x0000000000000000 0x0000001fffffffff 0x000000002014220c");
  auto r = parse_resource_file(text, "bridge");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->size(), 17u);
  EXPECT_TRUE((*r)[0].is_unassigned());
  EXPECT_EQ((*r)[0].size(), 128ull << 30);
}

TEST(ResourceTest, RejectsMalformedText) {
  const std::string seven_zero_lines = [] {
    std::string s;
    for (int i = 0; i < 7; ++i) s += "0x0 0x0 0x0\n";
    return s;
  }();
  ASSERT_TRUE(parse_resource_file(seven_zero_lines, "ok"));

  const std::string bad[] = {
      "",
      "0x0 0x0 0x0\n",                                  // too few lines
      "0x0 0x0\n" + seven_zero_lines,                  // two fields
      "0x0 0x0 0x0 0x0\n" + seven_zero_lines,          // four fields
      "0 0 0\n" + seven_zero_lines,                    // no 0x
      "0x 0x0 0x0\n" + seven_zero_lines,               // no digits
      "0x00000000000000000 0x0 0x0\n" + seven_zero_lines,  // 17 digits: overflow
      "0xg 0x0 0x0\n" + seven_zero_lines,
      "0x1 0x2 0x3junk\n" + seven_zero_lines,
      "\n" + seven_zero_lines,                         // blank line inside
  };
  for (const auto& text : bad) {
    auto r = parse_resource_file(text, "/fake/x/resource");
    ASSERT_FALSE(r) << "accepted: " << text;
    EXPECT_EQ(r.error().code, Code::kInternal);
    EXPECT_NE(r.error().message.find("/fake/x/resource"), std::string::npos) << r.error().message;
  }
}

TEST(ResourceTest, FormatsBytes) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(4096), "4 KiB");
  EXPECT_EQ(format_bytes(16ull << 20), "16 MiB");
  EXPECT_EQ(format_bytes(128ull << 30), "128 GiB");
  EXPECT_EQ(format_bytes(3ull << 29), "1.5 GiB");
  EXPECT_EQ(format_bytes((128ull << 30) + (48ull << 20)), "128.0 GiB");
  EXPECT_EQ(format_bytes(1ull << 40), "1 TiB");
}

// Found by a hand-written input to fuzz/pci_resource_fuzzer (its invariant: totals equal exact
// sums): two 2^63-byte 64-bit prefetchable lines summed to 0.
TEST(ResourceTest, TotalsSaturateInsteadOfWrapping) {
  const char* text =
      "0x0000000000000000 0x7fffffffffffffff 0x000000000014220c\n"
      "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
      "0x8000000000000000 0xffffffffffffffff 0x000000000014220c\n"
      "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
      "0x0000102000000000 0x0000102001ffffff 0x000000000014220c\n"
      "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
      "0x0000000000000000 0x0000000000000000 0x0000000000000000\n";
  auto r = parse_resource_file(text, "huge");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)[0].size(), uint64_t{1} << 63);
  EXPECT_EQ(bar_totals(*r).mem64_prefetchable, UINT64_MAX);
}

}  // namespace
}  // namespace feos::pci
