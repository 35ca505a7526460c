// HostDevices::plan: expansion to whole cards and groups, and every validation failure with its
// code and the offending device named. plan has no side effects. The ledger is the in-memory fake
// (tests/support/fake_device_ledger.h): planning reads it only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "hostdev_fixture.h"

namespace feos::hostdev {
namespace {

using testing::gpus_at;
using testing::put_file;

class PlanTest : public testing::HostdevTest {
 protected:
  PlanTest() { use_in_memory_ledger(); }

  // Expects `plan` to fail with `code` and a message containing each of `parts`; and that it
  // wrote nothing.
  void expect_plan_error(const std::vector<model::GpuSpec>& gpus, Code code,
                         const std::vector<std::string>& parts, const std::string& vm = "vm-1") {
    auto planned = host_->plan(vm, gpus);
    ASSERT_FALSE(planned) << "plan passed";
    EXPECT_EQ(planned.error().code, code) << planned.error().to_string();
    for (const auto& part : parts) {
      EXPECT_NE(planned.error().message.find(part), std::string::npos)
          << "missing \"" << part << "\" in: " << planned.error().message;
    }
    // prepare reports the same and touches nothing either.
    auto prepared = host_->prepare(vm, gpus);
    ASSERT_FALSE(prepared);
    EXPECT_EQ(prepared.error().code, code);
    EXPECT_EQ(prepared.error().message, planned.error().message);
    EXPECT_EQ(kernel_->write_count(), 0u);
    EXPECT_EQ(kernel_->snapshot(), before_);
  }
};

TEST_F(PlanTest, ConsumerCardExpandsToAllFourFunctions) {
  start(test::consumer_gpu_host());
  auto planned = host_->plan("vm-1", gpus_at({"01:00.0"}));  // short form = domain 0
  ASSERT_TRUE(planned) << planned.error().to_string();
  ASSERT_EQ(planned->size(), 1u);
  const model::AssignedGpu& gpu = (*planned)[0];
  EXPECT_EQ(gpu.request.address.to_string(), "0000:01:00.0");
  ASSERT_EQ(gpu.functions.size(), 4u);
  const char* addresses[] = {"0000:01:00.0", "0000:01:00.1", "0000:01:00.2", "0000:01:00.3"};
  const char* drivers[] = {"nvidia", "snd_hda_intel", "xhci_hcd", "nvidia-gpu"};
  const char* ids[] = {"10de:2684", "10de:22ba", "10de:1ad8", "10de:1ad9"};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(gpu.functions[i].address.to_string(), addresses[i]);
    EXPECT_EQ(gpu.functions[i].original_driver, drivers[i]);
    EXPECT_EQ(gpu.functions[i].id, ids[i]);
    EXPECT_EQ(gpu.functions[i].iommu_group, pci::IommuGroup(2));
  }
  // The root port 00:01.0 shares group 2 but is a bridge: it stays with the host.
  EXPECT_TRUE(gpu.group_peers.empty());
  EXPECT_EQ(gpu.functions[0].class_code, 0x030000u);
  ASSERT_EQ(gpu.functions[0].bars.size(), 4u);
  EXPECT_EQ(gpu.functions[0].bars[1].index, 1);
  EXPECT_EQ(gpu.functions[0].bars[1].size, 256 * test::kMiB);
  EXPECT_TRUE(gpu.functions[0].bars[1].is_64bit);
  EXPECT_TRUE(gpu.functions[0].bars[1].prefetchable);
  EXPECT_TRUE(gpu.functions[0].bars[3].is_io);
  EXPECT_EQ(kernel_->write_count(), 0u);
  EXPECT_TRUE(ledger().empty());
}

TEST_F(PlanTest, HgxGpusAreAloneInTheirGroups) {
  start(test::hgx_h100_host());
  auto planned = host_->plan("vm-1", gpus_at(testing::hgx_gpus()));
  ASSERT_TRUE(planned) << planned.error().to_string();
  ASSERT_EQ(planned->size(), 8u);
  const char* groups[] = {"59", "50", "41", "15", "107", "98", "89", "79"};
  for (size_t i = 0; i < 8; ++i) {
    const auto& gpu = (*planned)[i];
    ASSERT_EQ(gpu.functions.size(), 1u);
    EXPECT_EQ(gpu.functions[0].iommu_group->to_string(), groups[i]);
    EXPECT_EQ(gpu.numa_node, i < 4 ? 0 : 1);
    ASSERT_EQ(gpu.functions[0].bars.size(), 3u);
    EXPECT_EQ(gpu.functions[0].bars[1].size, 128 * test::kGiB);
    // The whole board: its four NVSwitches come along, on the first GPU (nvswitch_test.cc).
    EXPECT_EQ(gpu.fabric.size(), i == 0 ? 4u : 0u);
  }
}

TEST_F(PlanTest, DuplicatesAreRejected) {
  start(test::consumer_gpu_host());
  expect_plan_error(gpus_at({"0000:01:00.0", "01:00.0"}), Code::kInvalidArgument,
                    {"config.gpus[0] and config.gpus[1] both name 0000:01:00.0"});
  expect_plan_error(gpus_at({"0000:01:00.0", "0000:01:00.1"}), Code::kInvalidArgument,
                    {"config.gpus[1] (0000:01:00.1) is on the same card as "
                     "config.gpus[0] (0000:01:00.0)"});
}

TEST_F(PlanTest, UnknownDeviceIsNotFound) {
  start(test::consumer_gpu_host());
  expect_plan_error(gpus_at({"0000:01:00.0", "0000:99:00.0"}), Code::kNotFound,
                    {"0000:99:00.0 not found"});
}

TEST_F(PlanTest, NonGpuFunctionIsRefused) {
  start(test::consumer_gpu_host());
  expect_plan_error(gpus_at({"0000:02:00.0"}), Code::kFailedPrecondition,
                    {"0000:02:00.0 is a mass storage controller (0x010802) device, not a GPU"});
  expect_plan_error(gpus_at({"0000:01:00.1"}), Code::kFailedPrecondition,
                    {"0000:01:00.1 is a multimedia controller (0x040300) device, not a GPU"});
}

TEST_F(PlanTest, NamesFromPciIdsWhenGiven) {
  Options options = test_options();
  options.pci_ids = std::make_shared<pci::PciIds>(
      pci::PciIds::parse("8086  Intel Corporation\n\t125c  Ethernet Controller I226-V\n"
                         "C 02  Network controller\n\t00  Ethernet controller\n"));
  start(test::consumer_gpu_host(), {}, options);
  expect_plan_error(gpus_at({"0000:03:00.0"}), Code::kFailedPrecondition,
                    {"0000:03:00.0 is a Ethernet controller (0x020000) device, not a GPU"});
}

TEST_F(PlanTest, IommuOffIsRefused) {
  test::HostBuilder b = test::consumer_gpu_host();
  for (const auto& f : std::vector<test::FunctionSpec>(b.functions())) b.function(f.bdf).no_group();
  start(b);
  expect_plan_error(gpus_at({"0000:01:00.0"}), Code::kFailedPrecondition,
                    {"IOMMU is not enabled (no " + paths().iommu_groups() + " entries)",
                     "intel_iommu=on / amd_iommu=on"});
}

TEST_F(PlanTest, FunctionWithoutGroupIsRefused) {
  test::HostBuilder b = test::consumer_gpu_host();
  b.function("0000:01:00.3").no_group();
  start(b);
  expect_plan_error(gpus_at({"0000:01:00.0"}), Code::kFailedPrecondition,
                    {"0000:01:00.3 has no IOMMU group"});
}

TEST_F(PlanTest, SharedGroupIsRefusedNamingTheNic) {
  start(test::shared_group_host());
  expect_plan_error(gpus_at({"0000:03:00.0"}), Code::kFailedPrecondition,
                    {"IOMMU group 20 of 0000:03:00.0 also holds 0000:04:00.0 (8086:1521",
                     "driver igb", "allow_group_peers"});
  // The T4 alone in its group is fine.
  EXPECT_TRUE(host_->plan("vm-1", gpus_at({"0000:06:00.0"})));
}

TEST_F(PlanTest, SharedGroupPassesWhenPolicyAllowsPeers) {
  start(test::shared_group_host(), Policy({}, {}, /*allow_group_peers=*/true));
  auto planned = host_->plan("vm-1", gpus_at({"0000:03:00.0"}));
  ASSERT_TRUE(planned) << planned.error().to_string();
  const auto& gpu = (*planned)[0];
  ASSERT_EQ(gpu.functions.size(), 1u);
  ASSERT_EQ(gpu.group_peers.size(), 2u);  // the switch ports (bridges) stay
  EXPECT_EQ(gpu.group_peers[0].address.to_string(), "0000:04:00.0");
  EXPECT_EQ(gpu.group_peers[1].address.to_string(), "0000:04:00.1");
  EXPECT_EQ(gpu.group_peers[0].original_driver, "igb");
  EXPECT_EQ(gpu.group_peers[0].iommu_group, pci::IommuGroup(20));
}

// What a dry run shows: why each device goes, what stays, and which driver it leaves.
TEST_F(PlanTest, DecisionsSayWhatGoesAlongWhatStaysAndWhichDriverEachLeaves) {
  using ::testing::Contains;
  using ::testing::HasSubstr;
  start(test::shared_group_host(), Policy({}, {}, /*allow_group_peers=*/true));
  std::vector<std::string> decisions;
  auto planned = host_->plan("vm-1", gpus_at({"0000:03:00.0"}), &decisions);
  ASSERT_TRUE(planned) << planned.error().to_string();
  EXPECT_THAT(decisions, Contains(HasSubstr(") is allowed by the GPU policy: ")));
  EXPECT_THAT(decisions,
              Contains("0000:03:00.0: the whole card is passed, 1 function (0000:03:00.0)"));
  EXPECT_THAT(decisions, Contains("IOMMU group 20 of 0000:03:00.0: 0000:04:00.0 (8086:1521) goes "
                                  "along as a group peer (allowed by the policy)"));
  EXPECT_THAT(decisions, Contains(HasSubstr(" stays with the host (VFIO does not take bridges)")));
  EXPECT_THAT(decisions, Contains("0000:04:00.0 (IOMMU group 20): igb -> vfio-pci, given back to "
                                  "igb when the VM ends"));
  EXPECT_EQ(kernel_->write_count(), 0u);
  EXPECT_EQ(kernel_->snapshot(), before_);
}

TEST_F(PlanTest, PeerPolicyWithListsNeedsThePeerListed) {
  auto nic = *pci::Address::parse("0000:04:00.0");
  start(test::shared_group_host(),
        Policy({*pci::Address::parse("0000:03:00.0"), nic}, {}, /*allow_group_peers=*/true));
  // 04:00.1 is not listed.
  expect_plan_error(gpus_at({"0000:03:00.0"}), Code::kFailedPrecondition,
                    {"also holds 0000:04:00.1", "the GPU policy does not list it"});
}

TEST_F(PlanTest, BootVgaNeedsExplicitRequest) {
  start(test::consumer_gpu_host());
  expect_plan_error(gpus_at({"0000:00:02.0"}), Code::kFailedPrecondition,
                    {"0000:00:02.0 is the host's boot VGA device"});
  auto planned = host_->plan("vm-1", {model::GpuSpec{.address = test::pci_address("0000:00:02.0"), .boot_vga = true}});
  ASSERT_TRUE(planned) << planned.error().to_string();
  EXPECT_TRUE((*planned)[0].request.boot_vga);
  EXPECT_EQ((*planned)[0].functions[0].original_driver, "i915");
}

TEST_F(PlanTest, PolicyRefusalIsPermissionDenied) {
  start(test::consumer_gpu_host(), Policy({}, {*pci::DeviceId::parse("10de:2330")}, false));
  expect_plan_error(gpus_at({"0000:01:00.0"}), Code::kPermissionDenied,
                    {"0000:01:00.0 (10de:2684) is not allowed by the GPU policy"});
}

TEST_F(PlanTest, VfioPciMissingIsRefusedWithHint) {
  test::HostBuilder b = test::consumer_gpu_host();
  b.module("vfio_pci", false);
  start(b);
  expect_plan_error(gpus_at({"0000:01:00.0"}), Code::kFailedPrecondition,
                    {"vfio-pci is not available", "modprobe vfio-pci"});
}

TEST_F(PlanTest, HeldByAnotherVmIsRefused) {
  start(test::without_nvswitches(test::hgx_h100_host()));
  ASSERT_TRUE(host_->prepare("vm-a", gpus_at({"0000:3a:00.0"})));
  kernel_->clear_writes();
  before_ = kernel_->snapshot();
  expect_plan_error(gpus_at({"0000:18:00.0", "0000:3a:00.0"}), Code::kFailedPrecondition,
                    {"0000:3a:00.0 is assigned to vm vm-a"}, "vm-b");
}

TEST_F(PlanTest, CardOpenByHostProcessIsRefused) {
  test::HostBuilder b = test::consumer_gpu_host();
  b.process(4242, "Xorg").open_dev(3, "dri/card0").open_dev(7, "dri/card1").fd(8, "socket:[99]");
  start(b);
  expect_plan_error(gpus_at({"0000:01:00.0"}), Code::kFailedPrecondition,
                    {"0000:01:00.0 is in use on the host: pid 4242 (Xorg) has " + paths().dev_root +
                     "/dri/card1 open"});
}

TEST_F(PlanTest, RenderNodeOpenIsRefused) {
  test::HostBuilder b = test::consumer_gpu_host();
  b.process(77, "ollama").open_dev(12, "dri/renderD129");
  start(b);
  expect_plan_error(gpus_at({"0000:01:00.0"}), Code::kFailedPrecondition,
                    {"pid 77 (ollama) has " + paths().dev_root + "/dri/renderD129 open"});
}

TEST_F(PlanTest, IgpuNodesDoNotBlockTheDiscreteCard) {
  test::HostBuilder b = test::consumer_gpu_host();
  b.process(4242, "Xorg").open_dev(3, "dri/card0").open_dev(4, "dri/renderD128")
      .open_dev(5, "nvidiactl");
  start(b);
  EXPECT_TRUE(host_->plan("vm-1", gpus_at({"0000:01:00.0"})));
}

// Without the NVIDIA driver's information file the minor is unknown: with one GPU on the nvidia
// driver every /dev/nvidiaN is its.
TEST_F(PlanTest, NvidiaNodeOfTheOnlyNvidiaGpuIsRefused) {
  test::HostBuilder b = test::consumer_gpu_host();
  b.process(900, "nvidia-smi").open_dev(3, "nvidia0");
  start(b);
  expect_plan_error(gpus_at({"0000:01:00.0"}), Code::kFailedPrecondition,
                    {"0000:01:00.0 is in use on the host: pid 900 (nvidia-smi) has " +
                     paths().dev_root + "/nvidia0 open"});
}

TEST_F(PlanTest, NvidiaMinorFromDriverInformation) {
  test::HostBuilder b = test::without_nvswitches(test::hgx_h100_host());
  b.process(1234, "python3").open_dev(5, "nvidia3").open_dev(6, "nvidiactl");
  start(b);
  for (size_t i = 0; i < testing::hgx_gpus().size(); ++i) {
    put_file(paths().proc_root + "/driver/nvidia/gpus/" + testing::hgx_gpus()[i] + "/information",
             "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 312\nGPU UUID: \t GPU-x\n"
             "Device Minor: \t " + std::to_string(i) + "\nBus Location: \t " +
             testing::hgx_gpus()[i] + "\n");
  }
  // Minor 3 is 5d:00.0; the other seven are free.
  expect_plan_error(gpus_at({"0000:5d:00.0"}), Code::kFailedPrecondition,
                    {"0000:5d:00.0 is in use on the host: pid 1234 (python3) has " +
                     paths().dev_root + "/nvidia3 open"});
  EXPECT_TRUE(host_->plan("vm-1", gpus_at({"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0",
                                           "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0",
                                           "0000:db:00.0"})));
}

TEST_F(PlanTest, UnknownNvidiaMinorWithManyGpusIsRefusedSafely) {
  test::HostBuilder b = test::without_nvswitches(test::hgx_h100_host());
  b.process(1234, "python3").open_dev(5, "nvidia3");
  start(b);
  expect_plan_error(gpus_at({"0000:18:00.0"}), Code::kFailedPrecondition,
                    {"pid 1234 (python3) has " + paths().dev_root + "/nvidia3 open",
                     "cannot tell which of the 8 GPUs"});
}

TEST_F(PlanTest, VfioGroupOpenElsewhereIsRefused) {
  test::HostBuilder b = test::without_nvswitches(test::hgx_h100_host());
  b.function("0000:2a:00.0").bound_to("vfio-pci");
  b.process(5150, "qemu-system-x86").open_dev(20, "vfio/50");
  start(b);
  expect_plan_error(gpus_at({"0000:2a:00.0"}), Code::kFailedPrecondition,
                    {"IOMMU group 50 (0000:2a:00.0) is in use: pid 5150 (qemu-system-x86) has " +
                     paths().dev_root + "/vfio/50 open"});
}

TEST_F(PlanTest, EmptyVmIdIsInvalid) {
  start(test::consumer_gpu_host());
  auto planned = host_->plan("", gpus_at({"0000:01:00.0"}));
  ASSERT_FALSE(planned);
  EXPECT_EQ(planned.error().code, Code::kInvalidArgument);
  auto prepared = host_->prepare("", gpus_at({"0000:01:00.0"}));
  ASSERT_FALSE(prepared);
  EXPECT_EQ(prepared.error().code, Code::kInvalidArgument);
}

// The real capture of a guest with one H100: no IOMMU there.
TEST(PlanOnCapture, H100GuestHasNoIommu) {
  test::TempDir dir;
  ASSERT_TRUE(test::materialize_sysfs_capture(test::fixtures_dir() + "/sysfs/h100-guest", dir.path()));
  sys::HostPaths paths;
  paths.sysfs_root = dir.path();
  paths.dev_root = dir.path() + "/dev";
  paths.proc_root = dir.path() + "/proc";
  test::FakeKernel kernel(paths);
  test::FakeDeviceLedger ledger;
  HostDevices host(kernel, paths, ledger, Policy());
  HostInventory inventory_of_host(kernel, paths, ledger, Policy());
  auto planned = host.plan("vm-1", gpus_at({"0000:00:06.0"}));
  ASSERT_FALSE(planned);
  EXPECT_EQ(planned.error().code, Code::kFailedPrecondition);
  EXPECT_NE(planned.error().message.find("IOMMU is not enabled"), std::string::npos)
      << planned.error().message;
  auto nic = host.plan("vm-1", gpus_at({"0000:00:03.0"}));
  ASSERT_FALSE(nic);
  EXPECT_NE(nic.error().message.find("not a GPU"), std::string::npos) << nic.error().message;
  auto inventory = inventory_of_host.inventory();
  ASSERT_TRUE(inventory) << inventory.error().to_string();
  EXPECT_FALSE(inventory->iommu_enabled);
  bool saw_gpu = false;
  for (const auto& d : inventory->devices) {
    if (d.device.address.to_string() != "0000:00:06.0") continue;
    saw_gpu = true;
    EXPECT_TRUE(d.is_gpu);
    EXPECT_EQ(d.status, DeviceStatus::kNotAssignable);
    EXPECT_EQ(d.reason, "IOMMU is not enabled");
    EXPECT_EQ(d.device.id(), "10de:2330");
  }
  EXPECT_TRUE(saw_gpu);
  EXPECT_EQ(kernel.write_count(), 0u);
}

}  // namespace
}  // namespace feos::hostdev
