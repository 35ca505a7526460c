// GPUs by count (HostDevices::plan/prepare with a GpuCount) on fake-kernel hosts: one NUMA node
// when one holds the request (the tightest), else the fewest nodes; switch pairs for p2p; the
// model filter; refusals that name what is free; the pick and the claim as one step against
// concurrent requests.
#include <atomic>
#include <map>
#include <thread>

#include "hostdev_fixture.h"

namespace feos::hostdev::testing {
namespace {

constexpr uint16_t kNvidia = 0x10de, kIntel = 0x8086, kBroadcom = 0x1000;

std::vector<std::string> addresses(const std::vector<model::AssignedGpu>& gpus) {
  std::vector<std::string> out;
  for (const auto& gpu : gpus) out.push_back(gpu.request.address.to_string());
  return out;
}

model::GpuCount count(uint32_t n, std::string model = "", bool p2p = false) {
  return model::GpuCount{.count = n, .model = std::move(model), .p2p = p2p};
}

// A PCIe server: on node 0 a switch with three L40S (buses 13-15) and one with two (23-24), and a
// fourth GPU right under a root port (31); on node 1 a switch with two (83-84). Each GPU alone in
// its group (the switches have ACS).
test::HostBuilder switch_host() {
  test::HostBuilder b;
  int group = 1;
  b.device("0000:00:00.0", kIntel, 0x09a2, 0x060000).group(group++).conventional().reset_methods({});
  auto gpu = [&](int bus, int node) {
    char bdf[32];
    std::snprintf(bdf, sizeof bdf, "0000:%02x:00.0", bus);
    b.device(bdf, kNvidia, 0x26b9, 0x030200).driver("nvidia").group(group++).numa(node).link(16, 16)
        .bar(0, 16 * test::kMiB, test::BarType::kMem32)
        .bar(1, 64 * test::kGiB, test::BarType::kMem64Prefetch)
        .bar(3, 32 * test::kMiB, test::BarType::kMem64Prefetch);
  };
  auto bridge = [&](int bus, int dev, int secondary, int node) {
    char bdf[32];
    std::snprintf(bdf, sizeof bdf, "0000:%02x:%02x.0", bus, dev);
    b.bridge(bdf, kBroadcom, 0xc030, static_cast<uint8_t>(secondary)).group(group++).numa(node).link(16, 16);
  };
  // root port rb:01.0 -> upstream rb+1:00.0 -> downstream rb+2:0k.0 -> GPU at rb+3+k.
  auto switch_with = [&](int rb, int gpus, int node) {
    bridge(rb, 1, rb + 1, node);
    bridge(rb + 1, 0, rb + 2, node);
    for (int k = 0; k < gpus; ++k) {
      bridge(rb + 2, k, rb + 3 + k, node);
      gpu(rb + 3 + k, node);
    }
  };
  switch_with(0x10, 3, 0);
  switch_with(0x20, 2, 0);
  bridge(0x30, 1, 0x31, 0);
  gpu(0x31, 0);
  switch_with(0x80, 2, 1);
  b.module("vfio_pci");
  return b;
}

class PlacementTest : public HostdevTest {
 protected:
  Result<std::vector<model::AssignedGpu>> plan(const model::GpuCount& by_count,
                                               std::vector<std::string> gpus = {},
                                               std::vector<std::string>* decisions = nullptr) {
    return host_->plan("vm-new", gpus_at(gpus), decisions, by_count);
  }
  // Holds `gpus` for `vm` (claimed and bound, as a created VM has them).
  void hold(const std::string& vm, std::vector<std::string> gpus) {
    auto held = host_->prepare(vm, gpus_at(gpus));
    ASSERT_TRUE(held) << held.error().to_string();
  }
};

TEST_F(PlacementTest, FourOnAnHgxBoardComeFromOneNumaNode) {
  start(test::without_nvswitches(test::hgx_h100_host()));
  std::vector<std::string> decisions;
  auto picked = plan(count(4), {}, &decisions);
  ASSERT_TRUE(picked) << picked.error().to_string();
  EXPECT_EQ(addresses(*picked),
            (std::vector<std::string>{"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0"}));
  ASSERT_FALSE(decisions.empty());
  EXPECT_EQ(decisions[0], "gpu_count: 4 GPU(s) on node 0 (4 free there, the tightest node that holds all): "
                          "0000:18:00.0, 0000:2a:00.0, 0000:3a:00.0, 0000:5d:00.0");
  // Whole cards, as by address: the same resolution.
  auto by_address = host_->plan("vm-new", gpus_at({"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0"}));
  ASSERT_TRUE(by_address);
  ASSERT_EQ(by_address->size(), picked->size());
  for (size_t i = 0; i < picked->size(); ++i)
    EXPECT_EQ((*picked)[i].functions.size(), (*by_address)[i].functions.size());
  expect_host_as_before("a plan changes nothing");
}

TEST_F(PlacementTest, TheTightestNodeThatHoldsTheRequestWins) {
  start(test::without_nvswitches(test::hgx_h100_host()));
  hold("vm-a", {"0000:18:00.0"});  // node 0: 3 free; node 1: 4 free
  auto three = plan(count(3));
  ASSERT_TRUE(three) << three.error().to_string();
  EXPECT_EQ(addresses(*three), (std::vector<std::string>{"0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0"}));
  auto four = plan(count(4));
  ASSERT_TRUE(four) << four.error().to_string();
  EXPECT_EQ(addresses(*four), (std::vector<std::string>{"0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0"}));
  // The same host state, the same answer.
  auto again = plan(count(4));
  ASSERT_TRUE(again);
  EXPECT_EQ(addresses(*again), addresses(*four));
}

TEST_F(PlacementTest, WithoutANodeThatHoldsAllTheFewestNodesLargestFirst) {
  start(test::without_nvswitches(test::hgx_h100_host()));
  hold("vm-a", {"0000:18:00.0"});                  // node 0: 3 free
  hold("vm-b", {"0000:9a:00.0", "0000:ab:00.0"});  // node 1: 2 free
  std::vector<std::string> decisions;
  auto five = plan(count(5), {}, &decisions);
  ASSERT_TRUE(five) << five.error().to_string();
  EXPECT_EQ(addresses(*five), (std::vector<std::string>{"0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
                                                        "0000:ba:00.0", "0000:db:00.0"}));
  ASSERT_GE(decisions.size(), 2u);
  EXPECT_NE(decisions[0].find("3 GPU(s) on node 0 (3 free there)"), std::string::npos) << decisions[0];
  EXPECT_NE(decisions[1].find("2 GPU(s) on node 1 (2 free there)"), std::string::npos) << decisions[1];
}

TEST_F(PlacementTest, TooFewFreeIsRefusedNamingTheFreeOnesByNode) {
  start(test::without_nvswitches(test::hgx_h100_host()));
  hold("vm-a", {"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0", "0000:9a:00.0"});
  auto refused = plan(count(4, "10de:2330"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kResourceExhausted);
  EXPECT_EQ(refused.error().message,
            "vm vm-new: config.gpu_count.count: 4 GPU(s) of model \"10de:2330\" asked, 3 free: 0000:ab:00.0, "
            "0000:ba:00.0, 0000:db:00.0 on node 1 (5 held by VMs, 0 not assignable)");
}

TEST_F(PlacementTest, TheModelIsAnIdOrAPartOfTheProductName) {
  Options options = test_options();
  options.pci_ids = std::make_shared<const pci::PciIds>(
      pci::PciIds::parse("10de  NVIDIA Corporation\n\t2330  GH100 [H100 SXM5 80GB]\n"));
  start(test::without_nvswitches(test::hgx_h100_host()), {}, options);
  auto by_name = plan(count(2, "h100 sxm"));
  ASSERT_TRUE(by_name) << by_name.error().to_string();
  EXPECT_EQ(addresses(*by_name), (std::vector<std::string>{"0000:18:00.0", "0000:2a:00.0"}));
  auto unknown = plan(count(1, "H200"));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Code::kNotFound);
  EXPECT_NE(unknown.error().message.find("no GPU on this host matches \"H200\" (GPUs here: 10de:2330 x8, 1a03:2000 x1)"),
            std::string::npos)
      << unknown.error().message;
  // The BMC's VGA matches any model but is never free (it is the boot VGA).
  auto everything = plan(count(9));
  ASSERT_FALSE(everything);
  EXPECT_NE(everything.error().message.find("8 free"), std::string::npos) << everything.error().message;
  EXPECT_NE(everything.error().message.find("1 not assignable"), std::string::npos) << everything.error().message;
}

TEST_F(PlacementTest, AddressesAndCountTogetherNeverPickTheVmsOwn) {
  start(test::without_nvswitches(test::hgx_h100_host()));
  auto picked = plan(count(2), {"0000:18:00.0"});
  ASSERT_TRUE(picked) << picked.error().to_string();
  EXPECT_EQ(addresses(*picked), (std::vector<std::string>{"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0"}));
}

TEST_F(PlacementTest, P2pTakesGpusUnderOneSwitchTheTightestSwitchFirst) {
  start(switch_host());
  // Two fit node 1 exactly (node 0 has six free): the tightest node keeps node 0's block whole.
  auto tight = plan(count(2, "", true));
  ASSERT_TRUE(tight) << tight.error().to_string();
  EXPECT_EQ(addresses(*tight), (std::vector<std::string>{"0000:83:00.0", "0000:84:00.0"}));
  hold("vm-n1", {"0000:83:00.0", "0000:84:00.0"});
  // Node 0 now. Without p2p: address order.
  auto plain = plan(count(2));
  ASSERT_TRUE(plain) << plain.error().to_string();
  EXPECT_EQ(addresses(*plain), (std::vector<std::string>{"0000:13:00.0", "0000:14:00.0"}));
  // With p2p: the two-GPU switch holds the pair and keeps the three-GPU switch whole.
  std::vector<std::string> decisions;
  auto pair = plan(count(2, "", true), {}, &decisions);
  ASSERT_TRUE(pair) << pair.error().to_string();
  EXPECT_EQ(addresses(*pair), (std::vector<std::string>{"0000:23:00.0", "0000:24:00.0"}));
  ASSERT_GE(decisions.size(), 2u);
  EXPECT_NE(decisions[1].find("2 under the switch at 0000:21:00.0"), std::string::npos) << decisions[1];
  // Three: the three-GPU switch.
  auto three = plan(count(3, "", true));
  ASSERT_TRUE(three) << three.error().to_string();
  EXPECT_EQ(addresses(*three), (std::vector<std::string>{"0000:13:00.0", "0000:14:00.0", "0000:15:00.0"}));
  // Four: the three-GPU switch, then the lone GPU (a group of one is the tightest for the last
  // one), leaving the pair whole.
  auto four = plan(count(4, "", true));
  ASSERT_TRUE(four) << four.error().to_string();
  EXPECT_EQ(addresses(*four),
            (std::vector<std::string>{"0000:13:00.0", "0000:14:00.0", "0000:15:00.0", "0000:31:00.0"}));
  // With only a split pair left, p2p still places (the decision says no pair shares a switch).
  hold("vm-a", {"0000:13:00.0", "0000:14:00.0", "0000:15:00.0", "0000:23:00.0"});
  decisions.clear();
  auto split = plan(count(2, "", true), {}, &decisions);
  ASSERT_TRUE(split) << split.error().to_string();
  EXPECT_EQ(addresses(*split), (std::vector<std::string>{"0000:24:00.0", "0000:31:00.0"}));
  EXPECT_NE(decisions[1].find("no two free GPUs share a PCIe switch"), std::string::npos) << decisions[1];
}

TEST_F(PlacementTest, P2pPrefersANodeWhoseSwitchHoldsThePairOverATighterSplitOne) {
  start(switch_host());
  // Node 0 keeps two free GPUs under different switches, node 1 its switch pair: both hold two.
  hold("vm-a", {"0000:13:00.0", "0000:14:00.0", "0000:15:00.0", "0000:23:00.0"});
  auto plain = plan(count(2));
  ASSERT_TRUE(plain) << plain.error().to_string();
  EXPECT_EQ(addresses(*plain), (std::vector<std::string>{"0000:24:00.0", "0000:31:00.0"}));
  std::vector<std::string> decisions;
  auto pair = plan(count(2, "", true), {}, &decisions);
  ASSERT_TRUE(pair) << pair.error().to_string();
  EXPECT_EQ(addresses(*pair), (std::vector<std::string>{"0000:83:00.0", "0000:84:00.0"}));
  ASSERT_GE(decisions.size(), 1u);
  EXPECT_NE(decisions[0].find("on node 1 (2 free there, the node with the tightest PCIe switch that holds all)"),
            std::string::npos)
      << decisions[0];
  // One GPU asks no switch: the tightest node, as without p2p.
  auto one = plan(count(1, "", true));
  ASSERT_TRUE(one) << one.error().to_string();
  EXPECT_EQ(addresses(*one), (std::vector<std::string>{"0000:24:00.0"}));
}

TEST_F(PlacementTest, PrepareClaimsAndBindsThePickedGpus) {
  start(test::without_nvswitches(test::hgx_h100_host()));
  auto prepared = host_->prepare("vm-1", {}, count(2));
  ASSERT_TRUE(prepared) << prepared.error().to_string();
  EXPECT_EQ(addresses(*prepared), (std::vector<std::string>{"0000:18:00.0", "0000:2a:00.0"}));
  std::set<std::string> held;
  for (const auto& row : ledger()) held.insert(row.bdf.to_string() + " " + row.vm_id);
  EXPECT_EQ(held, (std::set<std::string>{"0000:18:00.0 vm-1", "0000:2a:00.0 vm-1"}));
  EXPECT_EQ(kernel_->snapshot().at("0000:18:00.0").driver, "vfio-pci");
  ASSERT_TRUE(host_->release("vm-1"));
  expect_host_as_before("after release");
}

// 50 concurrent requests on an 8-GPU board: each GPU goes to exactly one VM, none is left free
// while a request for one failed, and every loser is told how many are free.
TEST_F(PlacementTest, FiftyConcurrentRequestsShareEightGpusWithoutDoublesOrLosses) {
  start(test::without_nvswitches(test::hgx_h100_host()));
  constexpr int kRequests = 50;
  std::vector<Result<std::vector<model::AssignedGpu>>> results(kRequests, std::vector<model::AssignedGpu>{});
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      while (!go) std::this_thread::yield();
      results[i] = host_->prepare("vm-" + std::to_string(i), {}, count(i % 3 == 0 ? 2 : 1));
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  std::map<std::string, std::string> owner;  // GPU -> VM
  int winners = 0;
  for (int i = 0; i < kRequests; ++i) {
    const std::string vm = "vm-" + std::to_string(i);
    if (!results[i]) {
      EXPECT_EQ(results[i].error().code, Code::kResourceExhausted) << results[i].error().to_string();
      EXPECT_NE(results[i].error().message.find(" free"), std::string::npos) << results[i].error().message;
      continue;
    }
    ++winners;
    EXPECT_EQ(results[i]->size(), i % 3 == 0 ? 2u : 1u) << vm;
    for (const auto& gpu : *results[i]) {
      auto [it, added] = owner.emplace(gpu.request.address.to_string(), vm);
      EXPECT_TRUE(added) << gpu.request.address.to_string() << " given to " << it->second << " and " << vm;
    }
  }
  // Every GPU is taken: a request for one can only fail when none is free.
  EXPECT_EQ(owner.size(), 8u);
  // The ledger says exactly what the winners were told.
  std::map<std::string, std::string> rows;
  for (const auto& row : ledger()) rows[row.bdf.to_string()] = row.vm_id;
  EXPECT_EQ(rows, owner);
  EXPECT_GE(winners, 4);
  for (int i = 0; i < kRequests; ++i) {
    if (results[i]) {
      ASSERT_TRUE(host_->release("vm-" + std::to_string(i)));
    }
  }
  expect_host_as_before("after every release");
}

}  // namespace
}  // namespace feos::hostdev::testing
