// HostInventory::inventory and check_host, on the in-memory ledger.
#include <chrono>
#include <cstdio>

#include <map>

#include <gtest/gtest.h>

#include "hostdev_fixture.h"
#include "pci/sysfs.h"

namespace feos::hostdev {
namespace {

using testing::gpus_at;
using testing::put_file;

class InventoryTest : public testing::HostdevTest {
 protected:
  InventoryTest() { use_in_memory_ledger(); }

  const InventoryDevice& find(const Inventory& inv, const std::string& bdf) {
    for (const auto& d : inv.devices) {
      if (d.device.address.to_string() == bdf) return d;
    }
    ADD_FAILURE() << bdf << " not in inventory";
    static InventoryDevice none;
    return none;
  }
};

TEST_F(InventoryTest, ConsumerHost) {
  start(test::consumer_gpu_host());
  auto inv = inventory_->inventory();
  ASSERT_TRUE(inv) << inv.error().to_string();
  EXPECT_TRUE(inv->iommu_enabled);
  ASSERT_EQ(inv->devices.size(), test::consumer_gpu_host().functions().size());
  EXPECT_TRUE(std::is_sorted(inv->devices.begin(), inv->devices.end(),
                             [](const InventoryDevice& a, const InventoryDevice& b) {
                               return a.device.address < b.device.address;
                             }));

  const auto& gpu = find(*inv, "0000:01:00.0");
  EXPECT_TRUE(gpu.is_gpu);
  EXPECT_EQ(gpu.status, DeviceStatus::kAvailable);
  EXPECT_EQ(gpu.gpu, "0000:01:00.0");
  EXPECT_EQ(gpu.device.driver, "nvidia");
  EXPECT_EQ(gpu.device.iommu_group, pci::IommuGroup(2));
  EXPECT_EQ(gpu.group_members.size(), 5u);  // root port + 4 functions
  EXPECT_EQ(gpu.device.present_bars().size(), 4u);
  EXPECT_EQ(gpu.device.reset_methods, std::vector<std::string>{"bus"});
  EXPECT_EQ(gpu.class_name, "display controller");

  const auto& audio = find(*inv, "0000:01:00.1");
  EXPECT_FALSE(audio.is_gpu);
  EXPECT_EQ(audio.status, DeviceStatus::kAvailable);
  EXPECT_EQ(audio.gpu, "0000:01:00.0");
  EXPECT_EQ(audio.reason, "function of GPU 0000:01:00.0");

  const auto& igpu = find(*inv, "0000:00:02.0");
  EXPECT_EQ(igpu.status, DeviceStatus::kNotAssignable);
  EXPECT_EQ(igpu.reason, "boot VGA");
  EXPECT_EQ(igpu.device.boot_vga, true);

  const auto& port = find(*inv, "0000:00:01.0");
  EXPECT_TRUE(port.is_bridge);
  EXPECT_EQ(port.status, DeviceStatus::kNotAssignable);
  EXPECT_EQ(port.reason, "PCI bridge (stays with the host)");

  const auto& nvme = find(*inv, "0000:02:00.0");
  EXPECT_EQ(nvme.status, DeviceStatus::kNotAssignable);
  EXPECT_EQ(nvme.reason, "not a GPU (mass storage controller)");

  // Assigned after prepare, with its companions.
  ASSERT_TRUE(host_->prepare("vm-7", gpus_at({"0000:01:00.0"})));
  inv = inventory_->inventory();
  ASSERT_TRUE(inv);
  EXPECT_EQ(find(*inv, "0000:01:00.0").status, DeviceStatus::kAssigned);
  EXPECT_EQ(find(*inv, "0000:01:00.0").assigned_vm, "vm-7");
  EXPECT_EQ(find(*inv, "0000:01:00.2").status, DeviceStatus::kAssigned);
  EXPECT_EQ(find(*inv, "0000:01:00.0").device.driver, "vfio-pci");
  EXPECT_EQ(kernel_->write_count(), 12u) << "inventory wrote to sysfs";
}

TEST_F(InventoryTest, RepeatedListingsSeeDriverChanges) {
  // inventory() keeps static facts between calls; what changes at run time must still show.
  start(test::consumer_gpu_host());
  auto before = inventory_->inventory();
  ASSERT_TRUE(before) << before.error().to_string();
  EXPECT_EQ(find(*before, "0000:01:00.1").device.driver, "snd_hda_intel");
  ASSERT_TRUE(host_->prepare("vm-1", gpus_at({"0000:01:00.0"})));
  auto during = inventory_->inventory();
  ASSERT_TRUE(during);
  EXPECT_EQ(find(*during, "0000:01:00.1").device.driver, "vfio-pci");
  EXPECT_EQ(find(*during, "0000:01:00.1").device.driver_override, "vfio-pci");
  EXPECT_EQ(find(*during, "0000:01:00.0").status, DeviceStatus::kAssigned);
  ASSERT_TRUE(host_->release("vm-1"));
  auto after = inventory_->inventory();
  ASSERT_TRUE(after);
  EXPECT_EQ(find(*after, "0000:01:00.1").device.driver, "snd_hda_intel");
  EXPECT_EQ(find(*after, "0000:01:00.1").device.driver_override, "");
  EXPECT_EQ(find(*after, "0000:01:00.0").status, DeviceStatus::kAvailable);
}

TEST_F(InventoryTest, NamesFromPciIds) {
  Options options = test_options();
  options.pci_ids = std::make_shared<pci::PciIds>(pci::PciIds::parse(
      "10de  NVIDIA Corporation\n\t2684  AD102 [GeForce RTX 4090]\n"
      "C 03  Display controller\n\t00  VGA compatible controller\n"));
  start(test::consumer_gpu_host(), {}, options);
  auto inv = inventory_->inventory();
  ASSERT_TRUE(inv);
  const auto& gpu = find(*inv, "0000:01:00.0");
  EXPECT_EQ(gpu.vendor_name, "NVIDIA Corporation");
  EXPECT_EQ(gpu.device_name, "AD102 [GeForce RTX 4090]");
  EXPECT_EQ(gpu.class_name, "VGA compatible controller");
}

TEST_F(InventoryTest, SharedGroupReason) {
  start(test::shared_group_host());
  auto inv = inventory_->inventory();
  ASSERT_TRUE(inv);
  const auto& t4 = find(*inv, "0000:03:00.0");
  EXPECT_EQ(t4.status, DeviceStatus::kNotAssignable);
  EXPECT_EQ(t4.reason, "IOMMU group 20 also holds 0000:04:00.0 (8086:1521, not a GPU companion)");
  EXPECT_EQ(find(*inv, "0000:06:00.0").status, DeviceStatus::kAvailable);
}

TEST_F(InventoryTest, InUseAndNoGroupReasons) {
  test::HostBuilder b = test::consumer_gpu_host();
  b.process(4242, "Xorg").open_dev(7, "dri/card1");
  start(b);
  auto inv = inventory_->inventory();
  ASSERT_TRUE(inv);
  EXPECT_EQ(find(*inv, "0000:01:00.0").reason,
            "in use on the host: pid 4242 (Xorg) has " + paths().dev_root + "/dri/card1 open");
  EXPECT_EQ(find(*inv, "0000:01:00.1").status, DeviceStatus::kNotAssignable);
}

// A 1,000-function host: inventory costs about what reading the PCI facts costs (the sysfs
// reads dominate; everything else is linear and small). Best of 3 against a shared machine.
TEST_F(InventoryTest, LargeHostIsFast) {
  start(test::large_host(1000));
  pci::PciSysfs sysfs(*kernel_, paths());
  double read_ms = 1e9, inventory_ms = 1e9;
  Result<Inventory> inv = fail(Code::kUnknown, "not run");
  for (int round = 0; round < 3; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    auto all = sysfs.read_all();
    read_ms = std::min(read_ms, std::chrono::duration<double, std::milli>(
                                    std::chrono::steady_clock::now() - t0).count());
    ASSERT_TRUE(all) << all.error().to_string();
    t0 = std::chrono::steady_clock::now();
    inv = inventory_->inventory();
    inventory_ms = std::min(inventory_ms, std::chrono::duration<double, std::milli>(
                                              std::chrono::steady_clock::now() - t0).count());
    ASSERT_TRUE(inv) << inv.error().to_string();
  }
  EXPECT_GE(inv->devices.size(), 990u);
  size_t gpus = 0, available = 0;
  for (const auto& d : inv->devices) {
    if (!d.is_gpu) continue;
    ++gpus;
    if (d.status == DeviceStatus::kAvailable) ++available;
  }
  EXPECT_GT(gpus, 10u);
  std::printf("inventory of %zu functions (%zu GPUs, %zu available): %.1f ms; reading them "
              "serially: %.1f ms (best of 3)\n",
              inv->devices.size(), gpus, available, inventory_ms, read_ms);
  EXPECT_LT(inventory_ms, 1.5 * read_ms + 100);
}

TEST_F(InventoryTest, CheckHost) {
  test::HostBuilder b = test::shared_group_host();
  start(b);
  auto check = inventory_->check_host();
  ASSERT_TRUE(check) << check.error().to_string();
  EXPECT_TRUE(check->iommu_enabled);
  EXPECT_NE(check->iommu_detail.find("IOMMU groups under"), std::string::npos);
  EXPECT_TRUE(check->vfio_pci_available);
  EXPECT_EQ(check->interrupt_remapping, Readiness::kUnknown);
  ASSERT_EQ(check->gpus.size(), 2u);
  EXPECT_EQ(check->gpus[0].address, "0000:03:00.0");
  EXPECT_FALSE(check->gpus[0].ready);
  EXPECT_NE(check->gpus[0].reason.find("0000:04:00.0"), std::string::npos);
  EXPECT_TRUE(check->gpus[1].ready);
  EXPECT_EQ(check->gpus[1].reason, "");
  EXPECT_EQ(check->gpus[1].id, "10de:1eb8");
  EXPECT_TRUE(check->ready);  // interrupt remapping unknown is reported, not failed

  // Intel DMAR units: ecap bit 3 is interrupt remapping.
  put_file(paths().sysfs_root + "/class/iommu/dmar0/intel-iommu/ecap", "19e2ff0505e\n");
  put_file(paths().sysfs_root + "/class/iommu/dmar1/intel-iommu/ecap", "19e2ff0505e\n");
  check = inventory_->check_host();
  ASSERT_TRUE(check);
  EXPECT_EQ(check->interrupt_remapping, Readiness::kYes) << check->interrupt_remapping_detail;
  EXPECT_TRUE(check->ready);
  put_file(paths().proc_root + "/cmdline", "BOOT_IMAGE=/vmlinuz intel_iommu=on intremap=off quiet\n");
  check = inventory_->check_host();
  ASSERT_TRUE(check);
  EXPECT_EQ(check->interrupt_remapping, Readiness::kNo);
  EXPECT_NE(check->interrupt_remapping_detail.find("intremap=off"), std::string::npos);
  EXPECT_FALSE(check->ready);
  put_file(paths().proc_root + "/cmdline", "BOOT_IMAGE=/vmlinuz intel_iommu=on\n");
  put_file(paths().sysfs_root + "/class/iommu/dmar1/intel-iommu/ecap", "f0050\n");
  check = inventory_->check_host();
  ASSERT_TRUE(check);
  EXPECT_EQ(check->interrupt_remapping, Readiness::kNo);
  EXPECT_NE(check->interrupt_remapping_detail.find("dmar1 lacks interrupt remapping"),
            std::string::npos)
      << check->interrupt_remapping_detail;
}

// Host check's models: every GPU as the whole card a VM would get, grouped by vendor:device,
// whatever its status (the capacity is about the address space, not who holds the card now).
TEST_F(InventoryTest, CheckHostGroupsWholeCardsByModel) {
  start(test::shared_group_host());
  auto check = inventory_->check_host();
  ASSERT_TRUE(check) << check.error().to_string();
  ASSERT_EQ(check->models.size(), 1u);
  const GpuModel& t4 = check->models[0];
  EXPECT_EQ(t4.id, "10de:1eb8");
  ASSERT_EQ(t4.cards.size(), 2u);
  EXPECT_EQ(t4.cards[0].request.address.to_string(), "0000:03:00.0");
  ASSERT_EQ(t4.cards[0].functions.size(), 1u);
  EXPECT_FALSE(t4.cards[0].functions[0].bars.empty());
  // The I350's two ports share the T4's group; the switch ports (bridges) do not travel.
  ASSERT_EQ(t4.cards[0].group_peers.size(), 2u);
  EXPECT_EQ(t4.cards[0].group_peers[0].address.to_string(), "0000:04:00.0");
  EXPECT_EQ(t4.cards[0].group_peers[1].address.to_string(), "0000:04:00.1");
  EXPECT_EQ(t4.cards[1].request.address.to_string(), "0000:06:00.0");
  EXPECT_TRUE(t4.cards[1].group_peers.empty());
}

TEST_F(InventoryTest, CheckHostModelsCountHeldCardsWithEveryFunction) {
  start(test::consumer_gpu_host());
  ASSERT_TRUE(host_->prepare("vm-1", gpus_at({"0000:01:00.0"})));
  auto check = inventory_->check_host();
  ASSERT_TRUE(check) << check.error().to_string();
  ASSERT_EQ(check->models.size(), 2u);
  EXPECT_EQ(check->models[0].id, "10de:2684");  // held by vm-1, still counted
  ASSERT_EQ(check->models[0].cards.size(), 1u);
  EXPECT_EQ(check->models[0].cards[0].functions.size(), 4u);  // VGA, audio, USB, UCSI
  EXPECT_TRUE(check->models[0].cards[0].group_peers.empty());  // its root port is a bridge
  EXPECT_EQ(check->models[1].id, "8086:a780");  // the boot VGA iGPU
  ASSERT_TRUE(host_->release("vm-1"));
}

// Ready needs at least one GPU that prepare() would take now: held ones do not count.
TEST_F(InventoryTest, CheckHostIsNotReadyWithoutAFreeGpu) {
  start(test::consumer_gpu_host());  // the card 01:00.0, and the boot VGA iGPU
  auto check = inventory_->check_host();
  ASSERT_TRUE(check) << check.error().to_string();
  EXPECT_TRUE(check->ready);
  ASSERT_TRUE(host_->prepare("vm-1", gpus_at({"0000:01:00.0"})));
  check = inventory_->check_host();
  ASSERT_TRUE(check);
  EXPECT_TRUE(check->iommu_enabled);
  EXPECT_TRUE(check->vfio_pci_available);
  for (const auto& gpu : check->gpus) EXPECT_FALSE(gpu.ready) << gpu.address;
  EXPECT_FALSE(check->ready);
  ASSERT_TRUE(host_->release("vm-1"));
  check = inventory_->check_host();
  ASSERT_TRUE(check);
  EXPECT_TRUE(check->ready);
}

// How each GPU can be reset between VMs; without the kernel's reset_method (before 5.15), FLR is
// read from the PCI Express capability in config space.
TEST_F(InventoryTest, CheckHostReportsResetMethods) {
  start(test::consumer_gpu_host());  // iGPU 00:02.0: flr; card 01:00.0: bus; 01:00.1: none
  const std::string devices = paths().sysfs_root + "/bus/pci/devices/";
  auto check = inventory_->check_host();
  ASSERT_TRUE(check) << check.error().to_string();
  std::map<std::string, std::vector<std::string>> methods;
  for (const auto& gpu : check->gpus) methods[gpu.address] = gpu.reset_methods;
  EXPECT_EQ(methods.at("0000:00:02.0"), std::vector<std::string>{"flr"});
  EXPECT_EQ(methods.at("0000:01:00.0"), std::vector<std::string>{"bus"});

  // An older kernel: no reset_method. The iGPU's config space shows FLR; the card's does not.
  for (const char* bdf : {"0000:00:02.0", "0000:01:00.0"}) {
    pci::PciSysfs sysfs(*kernel_, paths());
    std::filesystem::remove(devices + bdf + "/reset_method");
    auto device = sysfs.read(*pci::Address::parse(bdf));
    ASSERT_TRUE(device) << device.error().to_string();
    EXPECT_EQ(device->reset_methods, std::string_view(bdf) == "0000:00:02.0"
                                         ? std::vector<std::string>{"flr"}
                                         : std::vector<std::string>{})
        << bdf;
  }
}

TEST_F(InventoryTest, CheckHostWithoutIommuOrVfio) {
  test::HostBuilder b = test::consumer_gpu_host();
  for (const auto& f : std::vector<test::FunctionSpec>(b.functions())) b.function(f.bdf).no_group();
  b.module("vfio_pci", false);
  start(b);
  auto check = inventory_->check_host();
  ASSERT_TRUE(check);
  EXPECT_FALSE(check->iommu_enabled);
  EXPECT_NE(check->iommu_detail.find("intel_iommu=on"), std::string::npos);
  EXPECT_EQ(check->interrupt_remapping, Readiness::kNo);
  EXPECT_FALSE(check->vfio_pci_available);
  EXPECT_NE(check->vfio_pci_detail.find("modprobe vfio-pci"), std::string::npos);
  EXPECT_FALSE(check->ready);
  for (const auto& gpu : check->gpus) {
    EXPECT_FALSE(gpu.ready);
    EXPECT_EQ(gpu.reason, "IOMMU is not enabled") << gpu.address;
  }
  EXPECT_EQ(check->gpus.size(), 2u);
}

}  // namespace
}  // namespace feos::hostdev
