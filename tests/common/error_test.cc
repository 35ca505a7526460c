#include "common/error.h"

#include <gtest/gtest.h>

namespace feos {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return fail(Code::kInvalidArgument, "value " + std::to_string(v) + " is not positive");
  return v;
}

Status twice(int v) {
  FEOS_TRY(parse_positive(v));
  return ok();
}

TEST(ErrorTest, PropagatesCodeAndMessage) {
  auto s = twice(-1);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Code::kInvalidArgument);
  EXPECT_EQ(s.error().to_string(), "INVALID_ARGUMENT: value -1 is not positive");
  EXPECT_TRUE(twice(3));
}

TEST(ErrorTest, ContextKeepsCode) {
  Error e{Code::kNotFound, "no such device"};
  auto c = e.context("vm a1");
  EXPECT_EQ(c.code, Code::kNotFound);
  EXPECT_EQ(c.message, "vm a1: no such device");
}

TEST(ErrorTest, ErrnoText) {
  auto e = fail_errno("write /x", EBUSY, Code::kFailedPrecondition).value();
  EXPECT_EQ(e.code, Code::kFailedPrecondition);
  EXPECT_EQ(e.message, "write /x: Device or resource busy");
}

}  // namespace
}  // namespace feos
