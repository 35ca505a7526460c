// HostInventory::inventory and check_host, on the in-memory ledger.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include <map>

#include <gtest/gtest.h>

#include "hostdev_fixture.h"
#include "pci/sysfs.h"
#include "pci/topology.h"
#include "support/pci_literals.h"

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

// The addresses of a GPU's switch peers, for comparing whole lists.
std::vector<std::string> peer_addresses(const InventoryDevice& gpu) {
  std::vector<std::string> out;
  for (const auto& peer : gpu.switch_peers) out.push_back(peer.address.to_string());
  return out;
}

TEST_F(InventoryTest, HgxGpusKnowTheirSwitchAndItsNicAndNvme) {
  start(test::hgx_h100_host());
  auto inv = inventory_->inventory();
  ASSERT_TRUE(inv) << inv.error().to_string();

  const auto& gpu = find(*inv, "0000:18:00.0");
  ASSERT_TRUE(gpu.topology);
  EXPECT_EQ(gpu.topology->pcie_root, "pci0000:15");
  EXPECT_EQ(gpu.topology->switch_upstream, test::pci_address("0000:16:00.0"));
  EXPECT_EQ(gpu.device.numa_node, 0);
  EXPECT_EQ(gpu.device.local_cpus, "0-55");
  // The ConnectX-7 and the NVMe of its tray, nothing of the other trays.
  ASSERT_EQ(peer_addresses(gpu), (std::vector<std::string>{"0000:19:00.0", "0000:1a:00.0"}));
  EXPECT_EQ(gpu.switch_peers[0].id.to_string(), "15b3:1021");
  EXPECT_EQ(gpu.switch_peers[0].class_name, "network controller");
  EXPECT_EQ(gpu.switch_peers[1].id.to_string(), "144d:a826");
  EXPECT_EQ(gpu.switch_peers[1].class_name, "mass storage controller");

  const auto& far = find(*inv, "0000:db:00.0");
  ASSERT_TRUE(far.topology);
  EXPECT_EQ(far.topology->pcie_root, "pci0000:d8");
  EXPECT_EQ(far.topology->switch_upstream, test::pci_address("0000:d9:00.0"));
  EXPECT_EQ(far.device.local_cpus, "56-111");
  EXPECT_EQ(peer_addresses(far), (std::vector<std::string>{"0000:dc:00.0", "0000:dd:00.0"}));

  // Only GPUs list peers; the NIC still knows its place.
  const auto& nic = find(*inv, "0000:19:00.0");
  ASSERT_TRUE(nic.topology);
  EXPECT_EQ(nic.topology->switch_upstream, test::pci_address("0000:16:00.0"));
  EXPECT_TRUE(nic.switch_peers.empty());
  // The BMC's VGA hangs under a PCIe-to-PCI bridge on a root port: no switch, no peers.
  const auto& bmc = find(*inv, "0000:02:00.0");
  ASSERT_TRUE(bmc.topology);
  EXPECT_EQ(bmc.topology->pcie_root, "pci0000:00");
  EXPECT_FALSE(bmc.topology->switch_upstream);
  EXPECT_TRUE(bmc.switch_peers.empty());
}

TEST_F(InventoryTest, HgxNvSwitchesAreListedWithTheirGroup) {
  start(test::hgx_h100_host());
  auto check = inventory_->check_host();
  ASSERT_TRUE(check) << check.error().to_string();
  ASSERT_EQ(check->nvswitches.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    const NvSwitch& sw = check->nvswitches[i];
    EXPECT_EQ(sw.address, pci::Address(0, static_cast<uint8_t>(0x05 + i), 0, 0));
    EXPECT_EQ(sw.id.to_string(), "10de:22a3");
    EXPECT_EQ(sw.iommu_group, pci::IommuGroup(114));
  }
  auto inv = inventory_->inventory();
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->nvswitches.size(), 4u);
  // An NVSwitch is an endpoint, not a GPU: no peers of its own, not counted as a GPU.
  EXPECT_FALSE(find(*inv, "0000:05:00.0").is_gpu);
  EXPECT_EQ(check->gpus.size(), 9u);  // 8 H100 + the BMC's VGA
}

TEST_F(InventoryTest, PcieServerPairsGpusUnderOneSwitchPerSocket) {
  start(test::pcie_2s4g_host());
  auto inv = inventory_->inventory();
  ASSERT_TRUE(inv) << inv.error().to_string();
  struct Expected {
    const char* gpu;
    const char* root;
    const char* upstream;
    int node;
    const char* cpus;
    std::vector<std::string> peers;  // the other L40S and the NIC
  } expected[] = {
      {"0000:18:00.0", "pci0000:15", "0000:16:00.0", 0, "0-47", {"0000:19:00.0", "0000:1a:00.0"}},
      {"0000:19:00.0", "pci0000:15", "0000:16:00.0", 0, "0-47", {"0000:18:00.0", "0000:1a:00.0"}},
      {"0000:88:00.0", "pci0000:85", "0000:86:00.0", 1, "48-95", {"0000:89:00.0", "0000:8a:00.0"}},
      {"0000:89:00.0", "pci0000:85", "0000:86:00.0", 1, "48-95", {"0000:88:00.0", "0000:8a:00.0"}},
  };
  for (const auto& e : expected) {
    SCOPED_TRACE(e.gpu);
    const auto& gpu = find(*inv, e.gpu);
    EXPECT_TRUE(gpu.is_gpu);
    EXPECT_EQ(gpu.device.id(), "10de:26b9");
    EXPECT_EQ(gpu.status, DeviceStatus::kAvailable) << gpu.reason;
    EXPECT_EQ(gpu.group_members, std::vector<pci::Address>{gpu.device.address});  // ACS: alone
    ASSERT_TRUE(gpu.topology);
    EXPECT_EQ(gpu.topology->pcie_root, e.root);
    EXPECT_EQ(gpu.topology->switch_upstream, test::pci_address(e.upstream));
    EXPECT_EQ(gpu.device.numa_node, e.node);
    EXPECT_EQ(gpu.device.local_cpus, e.cpus);
    EXPECT_EQ(peer_addresses(gpu), e.peers);
  }
  EXPECT_EQ(find(*inv, "0000:18:00.0").switch_peers[0].class_name, "display controller");
  EXPECT_EQ(find(*inv, "0000:18:00.0").switch_peers[1].class_name, "network controller");
  EXPECT_TRUE(inv->nvswitches.empty());
}

TEST_F(InventoryTest, ConsumerCardHasNoSwitchAndTheHostNoNvSwitch) {
  start(test::consumer_gpu_host());
  auto check = inventory_->check_host();
  ASSERT_TRUE(check) << check.error().to_string();
  EXPECT_TRUE(check->nvswitches.empty());
  auto inv = inventory_->inventory();
  ASSERT_TRUE(inv);
  EXPECT_TRUE(inv->nvswitches.empty());
  const auto& gpu = find(*inv, "0000:01:00.0");
  ASSERT_TRUE(gpu.topology);
  EXPECT_EQ(gpu.topology->pcie_root, "pci0000:00");
  EXPECT_EQ(gpu.topology->bridges, std::vector<pci::Address>{test::pci_address("0000:00:01.0")});
  EXPECT_FALSE(gpu.topology->switch_upstream);
  EXPECT_TRUE(gpu.switch_peers.empty());
  EXPECT_EQ(gpu.device.numa_node, -1);
  EXPECT_EQ(gpu.device.local_cpus, "0-31");  // no NUMA affinity: every CPU of the desktop is local
}

// The place in the tree is a static fact: read once, kept with the others between listings.
TEST_F(InventoryTest, TopologyIsReadOnceAndKept) {
  start(test::pcie_2s4g_host());
  auto first = inventory_->inventory();
  ASSERT_TRUE(first) << first.error().to_string();
  // Another spelling of the same place (devices/pci0000:99 -> devices/pci0000:15): a fresh read
  // would see the new root bus; the cached place stays.
  const std::string link = paths().pci_device("0000:18:00.0");
  auto target = kernel_->read_link(link);
  ASSERT_TRUE(target) << target.error().to_string();
  std::filesystem::create_directory_symlink("pci0000:15", paths().sysfs_root + "/devices/pci0000:99");
  std::filesystem::remove(link);
  std::filesystem::create_symlink(std::string(*target).replace(target->find("pci0000:15"), 10, "pci0000:99"), link);
  auto fresh = pci::read_topology(*kernel_, paths(), test::pci_address("0000:18:00.0"));
  ASSERT_TRUE(fresh) << fresh.error().to_string();
  ASSERT_EQ(fresh->pcie_root, "pci0000:99");
  auto second = inventory_->inventory();
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ(find(*second, "0000:18:00.0").topology->pcie_root, "pci0000:15");
  EXPECT_EQ(peer_addresses(find(*second, "0000:18:00.0")), peer_addresses(find(*first, "0000:18:00.0")));
}

// A device whose sysfs path is not a PCIe tree (as behind an Intel VMD domain) is listed with an
// unknown place, not an error.
TEST_F(InventoryTest, AnUnparsablePlaceIsUnknownNotAnError) {
  start(test::consumer_gpu_host());
  const std::string link = paths().pci_device("0000:02:00.0");
  auto target = kernel_->read_link(link);
  ASSERT_TRUE(target) << target.error().to_string();
  // devices/vmd0 -> the real parent directory: the link still resolves, its text has no root bus.
  const std::string real_parent = std::filesystem::path(paths().sysfs_root + "/bus/pci/devices/" + *target)
                                      .lexically_normal().parent_path();
  std::filesystem::create_directory_symlink(real_parent, paths().sysfs_root + "/devices/vmd0");
  std::filesystem::remove(link);
  std::filesystem::create_symlink("../../../devices/vmd0/0000:02:00.0", link);
  auto inv = inventory_->inventory();
  ASSERT_TRUE(inv) << inv.error().to_string();
  const auto& nvme = find(*inv, "0000:02:00.0");
  EXPECT_FALSE(nvme.topology);
  EXPECT_EQ(nvme.device.id(), "144d:a80a");
  EXPECT_TRUE(find(*inv, "0000:01:00.0").topology);
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
