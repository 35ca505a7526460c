#include "model/vm_id.h"

#include <gtest/gtest.h>

#include <set>

namespace feos::model {
namespace {

TEST(VmIdTest, ParsesUuidsOnlyAndKeepsTheSpelling) {
  auto lower = VmId::parse("123e4567-e89b-12d3-a456-426614174000");
  ASSERT_TRUE(lower);
  auto upper = VmId::parse("123E4567-E89B-12D3-A456-426614174000");
  ASSERT_TRUE(upper);
  EXPECT_EQ(upper->text(), "123E4567-E89B-12D3-A456-426614174000");
  EXPECT_NE(*upper, *lower);
  EXPECT_EQ(upper->canonical(), *lower);
  EXPECT_EQ(lower->canonical(), *lower);
  for (const char* bad : {"", "abc", "../../etc/passwd", "123e4567-e89b-12d3-a456-42661417400",
                          "123e4567-e89b-12d3-a456-4266141740000", "123e4567xe89b-12d3-a456-426614174000",
                          "123e4567-e89b-12d3-a456-42661417400/", "g23e4567-e89b-12d3-a456-426614174000",
                          "123e4567-e89b-12d3-a456-42661417400\n"}) {
    auto result = VmId::parse(bad);
    ASSERT_FALSE(result) << bad;
    EXPECT_EQ(result.error().code, Code::kInvalidArgument);
    EXPECT_NE(result.error().message.find("expected a UUID"), std::string::npos);
  }
}

TEST(VmIdTest, RandomIdsAreVersion4AndDistinct) {
  std::set<VmId> ids;
  for (int i = 0; i < 100; ++i) {
    VmId id = VmId::random();
    EXPECT_TRUE(VmId::parse(id.text())) << id.text();
    EXPECT_EQ(id.canonical(), id) << "random ids are lower case";
    EXPECT_EQ(id.text()[14], '4');
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 100u);
}

}  // namespace
}  // namespace feos::model
