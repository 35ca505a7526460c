#include "pci/address.h"
#include "pci/iommu_group.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <unordered_set>
#include <vector>

namespace feos::pci {
namespace {

struct Good {
  const char* text;
  uint16_t domain;
  uint8_t bus, device, function;
  const char* canonical;
};

TEST(AddressTest, ParsesWellFormedAddresses) {
  const Good cases[] = {
      {"0000:00:00.0", 0, 0, 0, 0, "0000:00:00.0"},
      {"0000:17:00.0", 0, 0x17, 0, 0, "0000:17:00.0"},
      {"0000:00:06.0", 0, 0, 6, 0, "0000:00:06.0"},
      {"ffff:ff:1f.7", 0xffff, 0xff, 0x1f, 7, "ffff:ff:1f.7"},
      {"FFFF:FF:1F.7", 0xffff, 0xff, 0x1f, 7, "ffff:ff:1f.7"},
      {"0001:a1:10.3", 1, 0xa1, 0x10, 3, "0001:a1:10.3"},
      {"10De:Ab:0c.1", 0x10de, 0xab, 0x0c, 1, "10de:ab:0c.1"},
      {"17:00.0", 0, 0x17, 0, 0, "0000:17:00.0"},
      {"db:1f.7", 0, 0xdb, 0x1f, 7, "0000:db:1f.7"},
      {"00:00.0", 0, 0, 0, 0, "0000:00:00.0"},
  };
  for (const auto& c : cases) {
    auto a = Address::parse(c.text);
    ASSERT_TRUE(a) << c.text << ": " << a.error().message;
    EXPECT_EQ(a->domain(), c.domain) << c.text;
    EXPECT_EQ(a->bus(), c.bus) << c.text;
    EXPECT_EQ(a->device(), c.device) << c.text;
    EXPECT_EQ(a->function(), c.function) << c.text;
    EXPECT_EQ(a->to_string(), c.canonical) << c.text;
    // The canonical form parses back to the same address.
    auto again = Address::parse(a->to_string());
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, *a);
  }
}

TEST(AddressTest, RejectsEverythingElseNamingTheInput) {
  const std::string cases[] = {
      "",
      " ",
      "0000:17:00.0 ",
      " 0000:17:00.0",
      "0000:17:00.0\n",
      "0000:17:00.8",      // function > 7
      "0000:17:20.0",      // device > 1f
      "0000:17:ff.0",
      "00000:17:00.0",     // 5-digit domain
      "10000:17:00.0",
      "000:17:00.0",
      "0000:170:00.0",
      "0000:1:00.0",
      "0000:17:0.0",
      "0000:17:00.00",
      "0000:17:00",
      "0000-17-00.0",
      "0000:17.00.0",
      "0000:17:00:0",
      "0000:17:00.g",
      "000g:17:00.0",
      "0000:1g:00.0",
      "0x00:17:00.0",
      "+000:17:00.0",
      "-000:17:00.0",
      "../17:00.0",
      "../../../etc",
      "0000:17:00.0/../../..",
      "0000:17:00.0/",
      "/0000:17:00.0",
      "..:..:..._",
      "0000:../00.0",
      "17:00.0/..",
      "17/00.0",
      std::string("0000:17:00.0\0x", 14),
      std::string("00\0" "0:17:00.0", 12),
      "0000:17:00.0 0000:18:00.0",
      "\xff\xfe:17:00.0",
      "0000:17:00.1;rm",
      "17:00.9",
      "17:00",
      "1:00.0",
      "17:000.0",
  };
  for (const auto& text : cases) {
    auto a = Address::parse(text);
    ASSERT_FALSE(a) << "accepted " << quote_for_message(text);
    EXPECT_EQ(a.error().code, Code::kInvalidArgument) << quote_for_message(text);
    EXPECT_NE(a.error().message.find(quote_for_message(text)), std::string::npos)
        << "message does not name the input: " << a.error().message;
  }
}

TEST(AddressTest, MessageEscapesControlCharacters) {
  auto a = Address::parse(std::string("00\n0:17:00.0"));
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("'00\\x0a0:17:00.0'"), std::string::npos) << a.error().message;
  EXPECT_EQ(a.error().message.find('\n'), std::string::npos);
}

TEST(AddressTest, SlotAndFunctions) {
  auto gpu = *Address::parse("0000:17:00.0");
  auto audio = *Address::parse("0000:17:00.1");
  auto other = *Address::parse("0000:18:00.0");
  auto other_domain = *Address::parse("0001:17:00.0");
  EXPECT_EQ(gpu.slot(), "0000:17:00");
  EXPECT_TRUE(gpu.same_slot(audio));
  EXPECT_FALSE(gpu.same_slot(other));
  EXPECT_FALSE(gpu.same_slot(other_domain));
  EXPECT_EQ(audio.with_function(0), gpu);
  EXPECT_EQ(gpu.with_function(3).to_string(), "0000:17:00.3");
}

TEST(AddressTest, OrdersLikeLspciAndHashes) {
  std::vector<Address> list = {*Address::parse("0001:00:00.0"), *Address::parse("0000:18:00.0"),
                               *Address::parse("0000:17:00.1"), *Address::parse("0000:17:00.0"),
                               *Address::parse("0000:17:01.0")};
  std::sort(list.begin(), list.end());
  std::vector<std::string> names;
  for (const auto& a : list) names.push_back(a.to_string());
  EXPECT_EQ(names, (std::vector<std::string>{"0000:17:00.0", "0000:17:00.1", "0000:17:01.0", "0000:18:00.0",
                                             "0001:00:00.0"}));
  EXPECT_LT(*Address::parse("0000:17:00.0"), *Address::parse("0000:17:00.1"));
  EXPECT_NE(*Address::parse("0000:17:00.0"), *Address::parse("0000:17:00.1"));

  std::unordered_set<Address> set(list.begin(), list.end());
  set.insert(*Address::parse("17:00.0"));  // same as 0000:17:00.0
  EXPECT_EQ(set.size(), 5u);
  EXPECT_TRUE(set.count(*Address::parse("0000:18:00.0")));
  EXPECT_FALSE(set.count(*Address::parse("0000:18:00.1")));
  // Distinct addresses never collide: the fields are packed without overlap.
  EXPECT_NE(std::hash<Address>{}(*Address::parse("0000:00:01.0")),
            std::hash<Address>{}(*Address::parse("0000:00:00.1")));
}

// The kernel names IOMMU groups by number; nothing else becomes a group (or a path component).
TEST(IommuGroupTest, ParsesDecimalNumbersOnly) {
  for (const char* good : {"0", "7", "114", "4294967295"}) {
    auto group = IommuGroup::parse(good);
    ASSERT_TRUE(group) << good;
    EXPECT_EQ(group->to_string(), good);
  }
  EXPECT_EQ(IommuGroup::parse("0000000001")->number(), 1u);
  for (const char* bad : {"", "../7", "7/..", "1a", "-1", "+1", " 7", "7 ", "7\n", "12345678901",
                          "4294967296"}) {
    auto group = IommuGroup::parse(bad);
    ASSERT_FALSE(group) << bad;
    EXPECT_EQ(group.error().code, Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(IommuGroup::parse("../7").error().message, "invalid IOMMU group '../7' (expected a number)");
  EXPECT_LT(IommuGroup(9), IommuGroup(10));  // by number, not as text
}

}  // namespace
}  // namespace feos::pci
