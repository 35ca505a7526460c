// The small helpers every layer shares: hex parsing, message text, assign-or-return, code names.
#include <gtest/gtest.h>

#include "common/error.h"
#include "common/parse.h"
#include "common/text.h"

namespace feos {
namespace {

TEST(ParseDecimal, StrictDigitsOnly) {
  EXPECT_EQ(parse_decimal("0"), 0u);
  EXPECT_EQ(parse_decimal("1337"), 1337u);
  EXPECT_EQ(parse_decimal("9999999999999999999"), 9999999999999999999u);
  EXPECT_EQ(parse_decimal("12345", 4), std::nullopt);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "0x1", "1a", "99999999999999999999"})
    EXPECT_EQ(parse_decimal(bad), std::nullopt) << bad;
}

TEST(ParseHex, AcceptsOnlyBoundedHexDigits) {
  EXPECT_EQ(parse_hex("10de"), 0x10deu);
  EXPECT_EQ(parse_hex("FFFFffffFFFFffff"), UINT64_MAX);
  EXPECT_EQ(parse_hex("1f", 2), 0x1fu);
  EXPECT_FALSE(parse_hex("", 4));
  EXPECT_FALSE(parse_hex("123", 2));            // too many digits
  EXPECT_FALSE(parse_hex("10000000000000000"));  // 17 digits: would overflow
  EXPECT_FALSE(parse_hex("0x10"));
  EXPECT_FALSE(parse_hex("1g"));
  EXPECT_FALSE(parse_hex(" 1"));
  EXPECT_FALSE(parse_hex("-1"));
  EXPECT_EQ(strip_hex_prefix("0x10de"), "10de");
  EXPECT_EQ(strip_hex_prefix("0X10DE"), "10DE");
  EXPECT_EQ(strip_hex_prefix("10de"), "10de");
}

TEST(Text, CutAtACharacterBoundary) {
  EXPECT_EQ(cut_utf8("short", 10), "short");
  EXPECT_EQ(cut_utf8("abcdefghij", 8), "abcde...");
  // "€" is 3 bytes; the cut never splits it.
  EXPECT_EQ(cut_utf8("ab\xe2\x82\xac" "cdefgh", 6), "ab...");
  EXPECT_EQ(escape_controls("a\nb\x1b[2J\x7f\xc3\xa9"), "a\\x0ab\\x1b[2J\\x7f\xc3\xa9");
}

TEST(Text, CpuListsAsTheKernelWritesThem) {
  EXPECT_EQ(cpu_list_text({}), "");
  EXPECT_EQ(cpu_list_text({3}), "3");
  EXPECT_EQ(cpu_list_text({8, 0, 1, 2, 3, 3, 10, 9}), "0-3,8-10");
  EXPECT_EQ(cpu_list_text({0, 2, 4}), "0,2,4");
}

Result<int> twice(Result<int> in) {
  FEOS_ASSIGN_OR_RETURN(int value, std::move(in));
  return value * 2;
}

TEST(AssignOrReturn, AssignsOrPropagates) {
  EXPECT_EQ(*twice(21), 42);
  auto failed = twice(fail(Code::kNotFound, "nope"));
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, Code::kNotFound);
  EXPECT_EQ(failed.error().message, "nope");
}

TEST(CodeNames, AreGrpcsForEveryNumber) {
  EXPECT_EQ(code_name(Code::kDataLoss), "DATA_LOSS");
  EXPECT_EQ(code_name(Code::kUnauthenticated), "UNAUTHENTICATED");
  EXPECT_EQ(code_from_number(9), Code::kFailedPrecondition);
  EXPECT_FALSE(code_from_number(17));
  EXPECT_FALSE(code_from_number(-1));
}

}  // namespace
}  // namespace feos
