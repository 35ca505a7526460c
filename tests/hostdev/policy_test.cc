#include "hostdev/policy.h"

#include <gtest/gtest.h>

#include "sys/filesystem.h"
#include "sysfs_tree.h"
#include "hostdev_fixture.h"

namespace feos::hostdev {
namespace {

pci::Device device(const std::string& bdf, uint16_t vendor, uint16_t dev, uint32_t class_code) {
  pci::Device d;
  d.address = *pci::Address::parse(bdf);
  d.vendor_id = vendor;
  d.device_id = dev;
  d.class_code = class_code;
  return d;
}

const pci::Device kH100 = device("0000:18:00.0", 0x10de, 0x2330, 0x030200);
const pci::Device kT4 = device("0000:03:00.0", 0x10de, 0x1eb8, 0x030200);
const pci::Device kNic = device("0000:04:00.0", 0x8086, 0x1521, 0x020000);

TEST(PolicyTest, DefaultAllowsEveryGpuAndNoPeers) {
  Policy policy;
  EXPECT_TRUE(policy.allows_gpu(kH100));
  EXPECT_TRUE(policy.allows_gpu(kT4));
  EXPECT_FALSE(policy.allows_group_peer(kNic));
  EXPECT_EQ(policy.describe(),
            "default (display/3D devices and their companion functions; no group peers)");
}

TEST(PolicyTest, ParsesListsAndPeers) {
  auto policy = Policy::parse(R"({
    "allow_addresses": ["0000:03:00.0", "04:00.0"],
    "allow_ids": ["10DE:2330"],
    "allow_group_peers": true
  })", "policy.json");
  ASSERT_TRUE(policy) << policy.error().to_string();
  EXPECT_TRUE(policy->allows_gpu(kH100));  // by id (hex in either case)
  EXPECT_TRUE(policy->allows_gpu(kT4));    // by address
  EXPECT_FALSE(policy->allows_gpu(device("0000:06:00.0", 0x10de, 0x1eb8, 0x030200)));
  EXPECT_TRUE(policy->allows_group_peer(kNic));  // short form 04:00.0 = 0000:04:00.0
  EXPECT_FALSE(policy->allows_group_peer(device("0000:04:00.1", 0x8086, 0x1522, 0x020000)));
  EXPECT_EQ(policy->allow_addresses().size(), 2u);
  EXPECT_EQ(policy->describe(), "2 address(es), 1 id(s); group peers allowed");
}

TEST(PolicyTest, PeersWithoutListsAreAllAllowed) {
  auto policy = Policy::parse(R"({"allow_group_peers": true})", "p");
  ASSERT_TRUE(policy);
  EXPECT_TRUE(policy->allows_group_peer(kNic));
  EXPECT_TRUE(policy->allows_gpu(kT4));
  auto empty = Policy::parse("{}", "p");
  ASSERT_TRUE(empty);
  EXPECT_FALSE(empty->allows_group_peer(kNic));
  EXPECT_TRUE(empty->allows_gpu(kT4));
}

TEST(PolicyTest, ParsesNvSwitchModes) {
  auto unset = Policy::parse("{}", "p");
  ASSERT_TRUE(unset);
  EXPECT_EQ(unset->nvswitch_mode(), NvSwitchMode::kUnset);
  auto full = Policy::parse(R"({"nvswitch_mode": "full-passthrough"})", "p");
  ASSERT_TRUE(full) << full.error().to_string();
  EXPECT_EQ(full->nvswitch_mode(), NvSwitchMode::kFullPassthrough);
  EXPECT_TRUE(full->nvswitch_partitions().empty());
  EXPECT_EQ(full->describe(),
            "default (display/3D devices and their companion functions; no group peers); nvswitch_mode "
            "full-passthrough");
  auto shared = Policy::parse(R"({
    "nvswitch_mode": "shared",
    "nvswitch_partitions": [["18:00.0", "0000:2a:00.0"], ["3a:00.0"], ["9a:00.0", "ab:00.0", "ba:00.0", "db:00.0"]]
  })", "p");
  ASSERT_TRUE(shared) << shared.error().to_string();
  EXPECT_EQ(shared->nvswitch_mode(), NvSwitchMode::kShared);
  ASSERT_EQ(shared->nvswitch_partitions().size(), 3u);
  EXPECT_EQ(shared->nvswitch_partitions()[0][1].to_string(), "0000:2a:00.0");
  EXPECT_EQ(shared->describe(),
            "default (display/3D devices and their companion functions; no group peers); nvswitch_mode shared, "
            "3 partitions");
  EXPECT_EQ(shared->describe_partitions(),
            "[0000:18:00.0, 0000:2a:00.0], [0000:3a:00.0], [0000:9a:00.0, 0000:ab:00.0, 0000:ba:00.0, 0000:db:00.0]");
  EXPECT_EQ(shared->describe_partitions(1), "[0000:3a:00.0]");
  EXPECT_EQ(shared->describe_partitions(8), "none");
  auto none = Policy::parse(R"({"nvswitch_mode": "shared"})", "p");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->nvswitch_partitions().empty());
  EXPECT_EQ(nvswitch_mode_name(NvSwitchMode::kShared), "shared");
}

struct BadPolicy {
  const char* text;
  const char* message;
};

class PolicyErrorTest : public ::testing::TestWithParam<BadPolicy> {};

TEST_P(PolicyErrorTest, NamesTheProblem) {
  auto policy = Policy::parse(GetParam().text, "/etc/feos/gpu-policy.json");
  ASSERT_FALSE(policy) << GetParam().text;
  EXPECT_EQ(policy.error().code, Code::kInvalidArgument);
  EXPECT_NE(policy.error().message.find(GetParam().message), std::string::npos)
      << policy.error().message;
  EXPECT_EQ(policy.error().message.rfind("/etc/feos/gpu-policy.json: ", 0), 0u)
      << policy.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, PolicyErrorTest,
    ::testing::Values(
        BadPolicy{"{\n  \"allow_ids\": [\"10de:2330\"],\n  oops\n}", "line 3, column 3"},
        BadPolicy{"", "not valid JSON"},
        BadPolicy{"[]", "expected a JSON object, got array"},
        BadPolicy{R"({"allow": []})", "unknown field 'allow'"},
        BadPolicy{R"({"allow_ids": "10de:2330"})", "allow_ids: expected an array of strings, got string"},
        BadPolicy{R"({"allow_ids": ["10de:2330", "10de-2330"]})",
                  "allow_ids[1]: invalid PCI id '10de-2330'"},
        BadPolicy{R"({"allow_addresses": ["0000:18:00.0", 5]})",
                  "allow_addresses[1]: expected a string, got number"},
        BadPolicy{R"({"allow_addresses": ["../../etc"]})",
                  "allow_addresses[0]: invalid PCI address '../../etc'"},
        BadPolicy{R"({"allow_group_peers": "yes"})",
                  "allow_group_peers: expected a boolean, got string"},
        BadPolicy{R"({"nvswitch_mode": "passthrough"})",
                  "nvswitch_mode: 'passthrough' is not a mode (expected \"full-passthrough\" or \"shared\")"},
        BadPolicy{R"({"nvswitch_mode": 1})", "nvswitch_mode: expected a string, got number"},
        BadPolicy{R"({"nvswitch_partitions": [["18:00.0"]]})",
                  "nvswitch_partitions: only with \"nvswitch_mode\": \"shared\" (no nvswitch_mode is set)"},
        BadPolicy{R"({"nvswitch_mode": "full-passthrough", "nvswitch_partitions": []})",
                  "nvswitch_partitions: only with \"nvswitch_mode\": \"shared\" (nvswitch_mode is "
                  "full-passthrough, which passes the whole board to one VM)"},
        BadPolicy{R"({"nvswitch_mode": "shared", "nvswitch_partitions": ["18:00.0"]})",
                  "nvswitch_partitions[0]: expected an array of GPU addresses, got string"},
        BadPolicy{R"({"nvswitch_mode": "shared", "nvswitch_partitions": {}})",
                  "nvswitch_partitions: expected an array"},
        BadPolicy{R"({"nvswitch_mode": "shared", "nvswitch_partitions": [["18:00.0", 2]]})",
                  "nvswitch_partitions[0][1]: expected a string, got number"},
        BadPolicy{R"({"nvswitch_mode": "shared", "nvswitch_partitions": [["18:00.0/x"]]})",
                  "nvswitch_partitions[0][0]: invalid PCI address '18:00.0/x'"},
        BadPolicy{R"({"nvswitch_mode": "shared", "nvswitch_partitions": [["18:00.0", "2a:00.0", "3a:00.0"]]})",
                  "nvswitch_partitions[0]: 3 GPUs (a partition holds 1, 2, 4 or 8, as the fabric manager's "
                  "partitions do)"},
        BadPolicy{R"({"nvswitch_mode": "shared", "nvswitch_partitions": [[]]})",
                  "nvswitch_partitions[0]: 0 GPUs (a partition holds 1, 2, 4 or 8"},
        BadPolicy{R"({"nvswitch_mode": "shared", "nvswitch_partitions": [["18:00.0"], ["3a:00.0", "0000:18:00.0"]]})",
                  "nvswitch_partitions[1][1]: 0000:18:00.0 is already in an earlier partition (a GPU belongs to "
                  "one partition)"},
        // Found by fuzz/device_policy_fuzzer: escaped parse() as an uncaught out_of_range.
        BadPolicy{R"({"allow_ids": [-1e999]})", "not valid JSON: [json.exception.out_of_range.406] number overflow"}));

TEST(PolicyTest, LoadReadsFileOrReportsNotFound) {
  test::TempDir dir;
  auto fs = sys::make_posix_filesystem();
  auto missing = Policy::load(*fs, dir.path() + "/none.json");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_NE(missing.error().message.find(dir.path() + "/none.json"), std::string::npos);
  testing::put_file(dir.path() + "/p.json", R"({"allow_ids": ["10de:1eb8"]})");
  auto loaded = Policy::load(*fs, dir.path() + "/p.json");
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  EXPECT_TRUE(loaded->allows_gpu(kT4));
  EXPECT_FALSE(loaded->allows_gpu(kH100));
  testing::put_file(dir.path() + "/bad.json", R"({"allow_ids": [1]})");
  auto bad = Policy::load(*fs, dir.path() + "/bad.json");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, dir.path() + "/bad.json: allow_ids[0]: expected a string, got number");
}

}  // namespace
}  // namespace feos::hostdev
