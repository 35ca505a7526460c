// An HGX board's NVSwitch fabric (policy nvswitch_mode) on hgx_h100_host(): four NVSwitches
// 10de:22a3 at 0000:05:00.0-08:00.0, all in IOMMU group 114. Full passthrough (and no mode) passes
// them with all eight GPUs and refuses fewer, by address and by count; shared mode passes exactly
// one partition and never the NVSwitches.
#include "hostdev_fixture.h"

namespace feos::hostdev::testing {
namespace {

using store::DeviceRole;

const std::vector<std::string> kNvSwitches = {"0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0"};

model::GpuCount count(uint32_t n) { return model::GpuCount{.count = n, .model = "", .p2p = false}; }

std::vector<std::string> requested(const std::vector<model::AssignedGpu>& gpus) {
  std::vector<std::string> out;
  for (const auto& gpu : gpus) out.push_back(gpu.request.address.to_string());
  return out;
}

Policy full_passthrough() {
  return Policy({}, {}, false, NvSwitchPolicy{.mode = NvSwitchMode::kFullPassthrough, .partitions = {}});
}

// Pairs and singles, as an operator might activate them in the fabric manager.
Policy shared() {
  auto a = [](const char* text) { return *pci::Address::parse(text); };
  return Policy({}, {}, false,
                NvSwitchPolicy{.mode = NvSwitchMode::kShared,
                               .partitions = {{a("18:00.0"), a("2a:00.0")},
                                              {a("3a:00.0"), a("5d:00.0")},
                                              {a("9a:00.0")},
                                              {a("ab:00.0")},
                                              {a("ba:00.0"), a("db:00.0")}}});
}

class NvSwitchTest : public HostdevTest {
 protected:
  void expect_nvswitches_untouched(const std::string& where) {
    auto now = kernel_->snapshot();
    for (const auto& sw : kNvSwitches) EXPECT_EQ(now.at(sw), before_.at(sw)) << where << " " << sw;
    for (const auto& row : ledger()) EXPECT_NE(row.role, DeviceRole::kFabric) << where;
  }
};

// All eight GPUs: the NVSwitches' group comes along (ledger role fabric, vfio-pci, in the plan on
// the first GPU only) and goes back with them.
void expect_whole_board(const std::vector<model::AssignedGpu>& gpus) {
  ASSERT_EQ(gpus.size(), 8u);
  ASSERT_EQ(gpus[0].fabric.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(gpus[0].fabric[i].address.to_string(), kNvSwitches[i]);
    EXPECT_EQ(gpus[0].fabric[i].id, "10de:22a3");
    EXPECT_EQ(gpus[0].fabric[i].iommu_group, pci::IommuGroup(114));
    EXPECT_EQ(gpus[0].fabric[i].original_driver, "nvidia-nvswitch");
  }
  for (size_t i = 1; i < gpus.size(); ++i) EXPECT_TRUE(gpus[i].fabric.empty()) << i;
}

TEST_F(NvSwitchTest, FullPassthroughPassesTheSwitchesWithAllEightGpusAndReturnsThem) {
  start(test::hgx_h100_host(), full_passthrough());
  std::vector<std::string> decisions;
  auto planned = host_->plan("vm-1", gpus_at(hgx_gpus()), &decisions);
  ASSERT_TRUE(planned) << planned.error().to_string();
  expect_whole_board(*planned);
  bool told = false;
  for (const auto& d : decisions)
    told |= d.find("all 8 GPUs of the board, so its 4 NVSwitches (10de:22a3, IOMMU group 114) go along") !=
            std::string::npos;
  EXPECT_TRUE(told);

  auto prepared = host_->prepare("vm-1", gpus_at(hgx_gpus()));
  ASSERT_TRUE(prepared) << prepared.error().to_string();
  expect_whole_board(*prepared);
  auto now = kernel_->snapshot();
  for (const auto& sw : kNvSwitches) EXPECT_EQ(now.at(sw), (test::Binding{"vfio-pci", "vfio-pci"})) << sw;
  auto groups = kernel_->vfio_groups();
  EXPECT_NE(std::find(groups.begin(), groups.end(), "114"), groups.end());
  size_t fabric_rows = 0;
  for (const auto& row : ledger()) {
    if (row.role != DeviceRole::kFabric) continue;
    ++fabric_rows;
    EXPECT_EQ(row.vm_id, "vm-1");
    EXPECT_EQ(row.iommu_group, pci::IommuGroup(114));
    EXPECT_EQ(row.original_driver, "nvidia-nvswitch");
  }
  EXPECT_EQ(fabric_rows, 4u);

  // Another VM cannot take the board (its GPUs and switches are held).
  auto second = host_->plan("vm-2", gpus_at(hgx_gpus()));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Code::kFailedPrecondition);
  auto by_count = host_->plan("vm-2", {}, nullptr, count(8));
  ASSERT_FALSE(by_count);
  EXPECT_EQ(by_count.error().code, Code::kResourceExhausted);
  EXPECT_NE(by_count.error().message.find("8 GPU(s) asked: the whole NVSwitch board, which is not free: 0000:18:00.0 "
                                          "held by vm vm-1, 0000:2a:00.0 held by vm vm-1"),
            std::string::npos)
      << by_count.error().message;

  ASSERT_TRUE(host_->release("vm-1"));
  expect_host_as_before("after release");
}

TEST_F(NvSwitchTest, WithoutAModeTheBoardIsAlsoPassedWhole) {
  start(test::hgx_h100_host());
  auto prepared = host_->prepare("vm-1", {}, count(8));
  ASSERT_TRUE(prepared) << prepared.error().to_string();
  expect_whole_board(*prepared);
  EXPECT_EQ(requested(*prepared), hgx_gpus());
  ASSERT_TRUE(host_->release("vm-1"));
  expect_host_as_before("after release");
}

struct PartialCase {
  bool mode_set;
  const char* mode_text;
};

class PartialBoardTest : public NvSwitchTest, public ::testing::WithParamInterface<PartialCase> {};

TEST_P(PartialBoardTest, FewerGpusAreRefusedSayingWhyAndWhatWorks) {
  start(test::hgx_h100_host(), GetParam().mode_set ? full_passthrough() : Policy());
  const std::string why =
      "this host's 8 GPUs are joined by 4 NVSwitches (10de:22a3, IOMMU group 114) and the fabric is passed whole (" +
      std::string(GetParam().mode_text) +
      "): a VM with fewer than all 8 GPUs would fail CUDA with error 802 (system not ready). Ask for all 8 "
      "(gpu_count 8), or run the fabric manager on the host in shared-NVSwitch mode and list its partitions in the "
      "policy (nvswitch_mode shared, nvswitch_partitions)";
  auto by_address = host_->prepare("vm-1", gpus_at({"0000:18:00.0", "0000:2a:00.0"}));
  ASSERT_FALSE(by_address);
  EXPECT_EQ(by_address.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(by_address.error().message, "vm vm-1: 0000:18:00.0: " + why);
  auto seven = std::vector<std::string>(hgx_gpus().begin() + 1, hgx_gpus().end());
  auto by_seven = host_->plan("vm-1", gpus_at(seven));
  ASSERT_FALSE(by_seven);
  EXPECT_EQ(by_seven.error().message, "vm vm-1: 0000:2a:00.0: " + why);
  for (uint32_t n : {1u, 4u, 7u}) {
    auto by_count = host_->prepare("vm-1", {}, count(n));
    ASSERT_FALSE(by_count) << n;
    EXPECT_EQ(by_count.error().code, Code::kFailedPrecondition);
    EXPECT_EQ(by_count.error().message, "vm vm-1: config.gpu_count.count: " + why) << n;
  }
  expect_host_as_before("after the refusals");
}

INSTANTIATE_TEST_SUITE_P(Modes, PartialBoardTest,
                         ::testing::Values(PartialCase{false, "no nvswitch_mode set: full-board VMs only"},
                                           PartialCase{true, "nvswitch_mode full-passthrough"}));

// The inventory still shows each GPU as ready: a GPU alone is assignable, as part of the board.
TEST_F(NvSwitchTest, InventoryJudgesEachGpuAloneAndHostCheckNamesTheMode) {
  start(test::hgx_h100_host());
  auto check = inventory_->check_host();
  ASSERT_TRUE(check) << check.error().to_string();
  for (const auto& gpu : check->gpus) {
    if (gpu.id == "10de:2330") {
      EXPECT_TRUE(gpu.ready) << gpu.address << ": " << gpu.reason;
    }
  }
  EXPECT_FALSE(check->nvswitch_mode_set);
  EXPECT_NE(check->nvswitch_mode_detail.find("no nvswitch_mode in the GPU policy: only a VM with all 8 GPUs"),
            std::string::npos)
      << check->nvswitch_mode_detail;

  policy_ = full_passthrough();
  open_host();
  check = inventory_->check_host();
  ASSERT_TRUE(check);
  EXPECT_TRUE(check->nvswitch_mode_set);
  EXPECT_NE(check->nvswitch_mode_detail.find("fabric mode full-passthrough: a VM with all 8 GPUs also gets the "
                                             "NVSwitches"),
            std::string::npos)
      << check->nvswitch_mode_detail;

  policy_ = shared();
  open_host();
  check = inventory_->check_host();
  ASSERT_TRUE(check);
  EXPECT_TRUE(check->nvswitch_mode_set);
  EXPECT_NE(check->nvswitch_mode_detail.find("fabric mode shared: partitions [0000:18:00.0, 0000:2a:00.0], "),
            std::string::npos)
      << check->nvswitch_mode_detail;
}

TEST_F(NvSwitchTest, SharedModeTakesExactlyOnePartitionByAddress) {
  start(test::hgx_h100_host(), shared());
  auto pair = host_->prepare("vm-1", gpus_at({"0000:3a:00.0", "0000:5d:00.0"}));
  ASSERT_TRUE(pair) << pair.error().to_string();
  for (const auto& gpu : *pair) EXPECT_TRUE(gpu.fabric.empty());
  expect_nvswitches_untouched("pair");
  auto single = host_->prepare("vm-2", gpus_at({"0000:9a:00.0"}));
  ASSERT_TRUE(single) << single.error().to_string();
  expect_nvswitches_untouched("single");

  const std::string partitions =
      "partitions: [0000:18:00.0, 0000:2a:00.0], [0000:3a:00.0, 0000:5d:00.0], [0000:9a:00.0], [0000:ab:00.0], "
      "[0000:ba:00.0, 0000:db:00.0])";
  auto mixed = host_->plan("vm-3", gpus_at({"0000:18:00.0", "0000:9a:00.0"}));
  ASSERT_FALSE(mixed);
  EXPECT_EQ(mixed.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(mixed.error().message,
            "vm vm-3: 0000:18:00.0, 0000:9a:00.0 are not one NVSwitch partition (nvswitch_mode shared: a VM's GPUs "
            "of the board must be exactly one partition activated in the host's fabric manager; " + partitions);
  auto half = host_->plan("vm-3", gpus_at({"0000:18:00.0"}));
  ASSERT_FALSE(half);
  EXPECT_NE(half.error().message.find("0000:18:00.0 is not one NVSwitch partition"), std::string::npos)
      << half.error().message;
  // Not even the whole board: the NVSwitches belong to the host's fabric manager.
  auto all = host_->plan("vm-3", gpus_at(hgx_gpus()));
  ASSERT_FALSE(all);
  EXPECT_EQ(all.error().code, Code::kFailedPrecondition);

  ASSERT_TRUE(host_->release("vm-1"));
  ASSERT_TRUE(host_->release("vm-2"));
  expect_host_as_before("after release");
}

TEST_F(NvSwitchTest, SharedModeByCountTakesTheFirstFreePartitionOfThatSize) {
  start(test::hgx_h100_host(), shared());
  auto first = host_->prepare("vm-1", {}, count(2));
  ASSERT_TRUE(first) << first.error().to_string();
  EXPECT_EQ(requested(*first), (std::vector<std::string>{"0000:18:00.0", "0000:2a:00.0"}));
  auto second = host_->prepare("vm-2", {}, count(2));
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ(requested(*second), (std::vector<std::string>{"0000:3a:00.0", "0000:5d:00.0"}));
  expect_nvswitches_untouched("two pairs");

  std::vector<std::string> decisions;
  auto third = host_->prepare("vm-3", {}, count(2));
  ASSERT_TRUE(third) << third.error().to_string();
  EXPECT_EQ(requested(*third), (std::vector<std::string>{"0000:ba:00.0", "0000:db:00.0"}));
  auto fourth = host_->plan("vm-4", {}, nullptr, count(2));
  ASSERT_FALSE(fourth);
  EXPECT_EQ(fourth.error().code, Code::kResourceExhausted);
  EXPECT_EQ(fourth.error().message,
            "vm vm-4: config.gpu_count.count: 2 GPU(s) asked, no NVSwitch partition of that size is free (nvswitch_mode "
            "shared): [0000:18:00.0, 0000:2a:00.0] (0000:18:00.0 held by vm vm-1, 0000:2a:00.0 held by vm vm-1); "
            "[0000:3a:00.0, 0000:5d:00.0] (0000:3a:00.0 held by vm vm-2, 0000:5d:00.0 held by vm vm-2); "
            "[0000:ba:00.0, 0000:db:00.0] (0000:ba:00.0 held by vm vm-3, 0000:db:00.0 held by vm vm-3)");
  auto four = host_->plan("vm-4", {}, nullptr, count(4));
  ASSERT_FALSE(four);
  EXPECT_EQ(four.error().code, Code::kFailedPrecondition);
  EXPECT_NE(four.error().message.find("config.gpu_count.count: no NVSwitch partition holds 4 GPU(s)"), std::string::npos)
      << four.error().message;
  auto single = host_->plan("vm-4", {}, &decisions, count(1));
  ASSERT_TRUE(single) << single.error().to_string();
  EXPECT_EQ(requested(*single), (std::vector<std::string>{"0000:9a:00.0"}));
  ASSERT_FALSE(decisions.empty());
  EXPECT_EQ(decisions[0],
            "gpu_count: NVSwitch partition [0000:9a:00.0], the first free one of 1 GPU(s) (nvswitch_mode shared)");

  ASSERT_TRUE(host_->release("vm-3"));
  ASSERT_TRUE(host_->release("vm-1"));
  ASSERT_TRUE(host_->release("vm-2"));
  expect_host_as_before("after release");
}

// An NVSwitch is not a GPU: a VM cannot ask for one.
TEST_F(NvSwitchTest, AnNvSwitchIsNotAGpu) {
  start(test::hgx_h100_host(), full_passthrough());
  auto planned = host_->plan("vm-1", gpus_at({"0000:05:00.0"}));
  ASSERT_FALSE(planned);
  EXPECT_EQ(planned.error().code, Code::kFailedPrecondition);
  EXPECT_NE(planned.error().message.find("not a GPU"), std::string::npos) << planned.error().message;
}

// A host without NVSwitches ignores the mode: any GPUs, as before.
TEST_F(NvSwitchTest, HostsWithoutNvSwitchesIgnoreTheMode) {
  start(test::pcie_2s4g_host(), full_passthrough());
  auto one = host_->plan("vm-1", {}, nullptr, count(1));
  ASSERT_TRUE(one) << one.error().to_string();
  EXPECT_TRUE((*one)[0].fabric.empty());
}

}  // namespace
}  // namespace feos::hostdev::testing
