// The ready-made hosts, read back through src/pci (PciSysfs over the real PosixFilesystem).
#include "support/host_builder.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "pci/sysfs.h"
#include "support/fake_host.h"
#include "sysfs_tree.h"

namespace feos::test {
namespace {

namespace fs = std::filesystem;
using pci::Address;

Address addr(const char* text) { return *Address::parse(text); }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class BuiltHost {
 public:
  explicit BuiltHost(const HostBuilder& b) {
    auto t = b.build(dir_.path());
    if (!t) throw std::runtime_error(t.error().to_string());
    tree_ = *t;
  }
  const sys::HostPaths& paths() const { return tree_.paths; }
  const HostTree& tree() const { return tree_; }
  pci::PciSysfs pci() const { return pci::PciSysfs(*fs_, tree_.paths); }
  pci::Device read(const char* bdf) const {
    auto d = pci().read(addr(bdf));
    if (!d) throw std::runtime_error(d.error().to_string());
    return *d;
  }
  std::vector<std::string> group(const std::string& g) const {
    auto members = pci().iommu_group_members(*pci::IommuGroup::parse(g));
    std::vector<std::string> out;
    if (members)
      for (const auto& a : *members) out.push_back(a.to_string());
    return out;
  }
  bool exists(const std::string& path) const { return fs::exists(path); }

 private:
  TempDir dir_ = TempDir::for_trees();
  HostTree tree_;
  std::unique_ptr<sys::Filesystem> fs_ = sys::make_posix_filesystem();
};

TEST(ConsumerHost, ReadsBackThroughPciSysfs) {
  BuiltHost h(consumer_gpu_host());
  auto all = h.pci().read_all();
  ASSERT_TRUE(all) << all.error().to_string();
  EXPECT_EQ(all->size(), 12u);

  auto gpu = h.read("0000:01:00.0");
  EXPECT_EQ(gpu.id(), "10de:2684");
  EXPECT_EQ(gpu.subsystem_id(), "1043:889c");
  EXPECT_EQ(gpu.class_code, 0x030000u);
  EXPECT_EQ(gpu.revision, uint8_t{0xa1});
  EXPECT_EQ(gpu.driver, "nvidia");
  EXPECT_EQ(gpu.driver_override, "");
  EXPECT_EQ(gpu.iommu_group, pci::IommuGroup(2));
  EXPECT_EQ(gpu.boot_vga, false);
  EXPECT_EQ(gpu.numa_node, -1);
  EXPECT_EQ(gpu.reset_methods, std::vector<std::string>{"bus"});
  EXPECT_EQ(gpu.enable_count, 1);
  ASSERT_TRUE(gpu.current_link && gpu.max_link);
  EXPECT_EQ(gpu.current_link->to_string(), "2.5 GT/s x16");
  EXPECT_EQ(gpu.max_link->to_string(), "16.0 GT/s x16");
  auto bars = gpu.present_bars();
  ASSERT_EQ(bars.size(), 4u);
  EXPECT_EQ(bars[0].index, 0);
  EXPECT_EQ(bars[0].size(), 16 * kMiB);
  EXPECT_FALSE(bars[0].is_64bit());
  EXPECT_EQ(bars[0].flags, 0x40200u);
  EXPECT_EQ(bars[1].index, 1);
  EXPECT_EQ(bars[1].size(), 256 * kMiB);
  EXPECT_EQ(bars[1].flags, 0x14220cu);
  EXPECT_TRUE(bars[1].is_64bit() && bars[1].is_prefetchable());
  EXPECT_EQ(bars[2].index, 3);
  EXPECT_EQ(bars[2].size(), 32 * kMiB);
  EXPECT_EQ(bars[3].index, 5);
  EXPECT_TRUE(bars[3].is_io());
  ASSERT_TRUE(gpu.rom);
  EXPECT_EQ(gpu.rom->size(), 512 * kKiB);
  EXPECT_EQ(pci::bar_totals(gpu.bars).mem64_prefetchable, 288 * kMiB);

  auto igpu = h.read("0000:00:02.0");
  EXPECT_EQ(igpu.id(), "8086:a780");
  EXPECT_EQ(igpu.boot_vga, true);
  EXPECT_EQ(igpu.driver, "i915");
  EXPECT_EQ(igpu.iommu_group, pci::IommuGroup(1));

  EXPECT_EQ(h.read("0000:01:00.1").driver, "snd_hda_intel");
  EXPECT_EQ(h.read("0000:01:00.1").class_code, 0x040300u);
  EXPECT_FALSE(h.read("0000:01:00.1").boot_vga);  // only VGA functions have boot_vga
  EXPECT_EQ(h.read("0000:01:00.2").driver, "xhci_hcd");
  EXPECT_EQ(h.read("0000:01:00.3").driver, "nvidia-gpu");
  EXPECT_EQ(h.read("0000:01:00.3").class_code, 0x0c8000u);

  // The card's four functions share group 2 with the PEG root port (a bridge, as on real hosts).
  EXPECT_EQ(h.group("2"), (std::vector<std::string>{"0000:00:01.0", "0000:01:00.0", "0000:01:00.1", "0000:01:00.2",
                                                    "0000:01:00.3"}));
  EXPECT_TRUE(h.read("0000:00:01.0").is_pci_bridge());
  EXPECT_EQ(h.read("0000:00:01.0").driver, "pcieport");
  EXPECT_EQ(h.group("12"), std::vector<std::string>{"0000:02:00.0"});
  EXPECT_EQ(h.group("13"), std::vector<std::string>{"0000:03:00.0"});
  auto slot = h.pci().slot_functions(addr("0000:01:00.0"));
  ASSERT_TRUE(slot);
  EXPECT_EQ(slot->size(), 4u);
}

TEST(ConsumerHost, RealKernelLayout) {
  BuiltHost h(consumer_gpu_host());
  const auto& p = h.paths();
  EXPECT_EQ(p.sysfs_root, h.tree().root + "/sys");
  EXPECT_EQ(p.dev_root, h.tree().root + "/dev");
  EXPECT_EQ(p.proc_root, h.tree().root + "/proc");
  auto fs = sys::make_posix_filesystem();
  // Devices nest below their bridges; bus/pci/devices holds relative links to them.
  EXPECT_EQ(*fs->read_link(p.pci_device("0000:01:00.0")), "../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0");
  EXPECT_EQ(fs::canonical(p.pci_device("0000:01:00.0")).string(),
            p.sysfs_root + "/devices/pci0000:00/0000:00:01.0/0000:01:00.0");
  EXPECT_EQ(*fs->read_link(p.pci_device("0000:01:00.0") + "/driver"), "../../../../bus/pci/drivers/nvidia");
  EXPECT_EQ(*fs->read_link(p.pci_device("0000:01:00.0") + "/iommu_group"), "../../../../kernel/iommu_groups/2");
  EXPECT_EQ(*fs->read_link(p.pci_driver("nvidia") + "/0000:01:00.0"),
            "../../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0");
  EXPECT_EQ(*fs->read_link(p.iommu_groups() + "/2/devices/0000:01:00.1"),
            "../../../../devices/pci0000:00/0000:00:01.0/0000:01:00.1");
  EXPECT_EQ(*fs->read_link(p.pci_driver("nvidia") + "/module"), "../../../../module/nvidia");
  for (const char* f : {"bind", "unbind", "new_id", "remove_id"}) {
    EXPECT_TRUE(h.exists(p.pci_driver("vfio-pci") + "/" + f)) << f;
    EXPECT_TRUE(h.exists(p.pci_driver("snd_hda_intel") + "/" + f)) << f;
  }
  EXPECT_TRUE(h.exists(p.pci_drivers_probe()));
  EXPECT_TRUE(h.exists(p.kernel_module("vfio_pci")));
  EXPECT_TRUE(h.exists(p.kernel_module("nvidia")));
  EXPECT_EQ(slurp(p.pci_device("0000:01:00.0") + "/driver_override"), "(null)\n");
  EXPECT_EQ(slurp(p.pci_device("0000:01:00.0") + "/vendor"), "0x10de\n");
  EXPECT_EQ(slurp(p.pci_device("0000:01:00.0") + "/class"), "0x030000\n");
  EXPECT_EQ(slurp(p.pci_device("0000:01:00.0") + "/current_link_speed"), "2.5 GT/s PCIe\n");
  EXPECT_EQ(slurp(p.pci_device("0000:01:00.0") + "/modalias"), "pci:v000010DEd00002684sv00001043sd0000889Cbc03sc00i00\n");
  EXPECT_NE(slurp(p.pci_device("0000:01:00.0") + "/uevent").find("DRIVER=nvidia\n"), std::string::npos);
  // 7 resource lines for an endpoint (6 BARs + ROM), 11 for a bridge (+ 4 windows).
  std::string res = slurp(p.pci_device("0000:01:00.0") + "/resource");
  EXPECT_EQ(std::count(res.begin(), res.end(), '\n'), 7);
  std::string bres = slurp(p.pci_device("0000:00:01.0") + "/resource");
  EXPECT_EQ(std::count(bres.begin(), bres.end(), '\n'), 11);
  // DRM: the dGPU's drm/card1 and the iGPU's card0, and the /dev nodes.
  EXPECT_TRUE(h.exists(p.pci_device("0000:01:00.0") + "/drm/card1"));
  EXPECT_TRUE(h.exists(p.pci_device("0000:01:00.0") + "/drm/renderD129"));
  EXPECT_TRUE(h.exists(p.pci_device("0000:00:02.0") + "/drm/card0"));
  for (const char* node : {"nvidia0", "nvidiactl", "nvidia-uvm", "dri/card0", "dri/card1", "dri/renderD128",
                           "dri/renderD129", "vfio/vfio"})
    EXPECT_TRUE(fs::is_regular_file(p.dev_root + "/" + node)) << node;
  EXPECT_FALSE(h.exists(p.dev_root + "/nvidia1"));
}

// Config space header agrees with the attributes, so lspci (which reads `config`) sees the same.
TEST(ConsumerHost, ConfigSpaceHeaders) {
  BuiltHost h(consumer_gpu_host());
  auto u16 = [](const std::string& c, size_t off) {
    return static_cast<unsigned>(static_cast<uint8_t>(c[off])) | (static_cast<unsigned>(static_cast<uint8_t>(c[off + 1])) << 8);
  };
  std::string gpu = slurp(h.paths().pci_device("0000:01:00.0") + "/config");
  ASSERT_EQ(gpu.size(), 4096u);
  EXPECT_EQ(u16(gpu, 0), 0x10deu);
  EXPECT_EQ(u16(gpu, 2), 0x2684u);
  EXPECT_EQ(static_cast<uint8_t>(gpu[0x08]), 0xa1);
  EXPECT_EQ(static_cast<uint8_t>(gpu[0x0b]), 0x03);
  EXPECT_EQ(static_cast<uint8_t>(gpu[0x0a]), 0x00);
  EXPECT_EQ(static_cast<uint8_t>(gpu[0x0e]), 0x80);  // endpoint, multi-function
  EXPECT_EQ(u16(gpu, 0x2c), 0x1043u);
  // BAR1 register: 64-bit prefetchable type bits, the address from `resource`.
  auto d = h.read("0000:01:00.0");
  uint32_t bar1 = u16(gpu, 0x14) | (u16(gpu, 0x16) << 16);
  uint32_t bar2 = u16(gpu, 0x18) | (u16(gpu, 0x1a) << 16);
  EXPECT_EQ(bar1 & 0xf, 0xcu);
  EXPECT_EQ((uint64_t{bar2} << 32) | (bar1 & ~0xfu), d.bars[1].start);
  // PCIe capability: link status matches current_link_speed/width.
  EXPECT_EQ(static_cast<uint8_t>(gpu[0x34]), 0x40);
  EXPECT_EQ(static_cast<uint8_t>(gpu[0x40]), 0x10);
  EXPECT_EQ(u16(gpu, 0x52) & 0xf, 1u);  // 2.5 GT/s
  EXPECT_EQ((u16(gpu, 0x52) >> 4) & 0x3f, 16u);

  std::string port = slurp(h.paths().pci_device("0000:00:01.0") + "/config");
  EXPECT_EQ(static_cast<uint8_t>(port[0x0e]), 0x01);  // type 1 header
  EXPECT_EQ(static_cast<uint8_t>(port[0x19]), 0x01);  // secondary bus
  EXPECT_EQ(static_cast<uint8_t>(port[0x1a]), 0x01);  // subordinate bus
  EXPECT_EQ((u16(port, 0x42) >> 4) & 0xf, 4u);  // root port
}

TEST(HgxH100Host, EightGpusNvSwitchGroupNuma) {
  BuiltHost h(hgx_h100_host());
  auto all = h.pci().read_all();
  ASSERT_TRUE(all) << all.error().to_string();
  const char* gpus[] = {"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
                        "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0"};
  const char* groups[] = {"59", "50", "41", "15", "107", "98", "89", "79"};
  std::vector<std::string> found;
  int bridges = 0;
  for (const auto& d : *all) {
    if (d.id() == "10de:2330") found.push_back(d.address.to_string());
    bridges += (d.class_code >> 8) == 0x0604;
  }
  EXPECT_EQ(found, std::vector<std::string>(std::begin(gpus), std::end(gpus)));
  EXPECT_EQ(bridges, 6 + 8 * 5 + 2);  // PCI-to-PCI bridges: NVSwitch tree, GPU trays, BMC VGA
  // NVSwitches are class 0x0680 ("other bridge"): base class 06, but endpoints, not PCI bridges.
  EXPECT_EQ(h.read("0000:05:00.0").base_class(), pci::kClassBridge);
  EXPECT_FALSE(h.read("0000:05:00.0").is_pci_bridge());
  std::set<uint64_t> starts;
  for (int i = 0; i < 8; ++i) {
    auto d = h.read(gpus[i]);
    EXPECT_EQ(d.class_code, 0x030200u);
    EXPECT_EQ(d.driver, "nvidia");
    EXPECT_EQ(d.iommu_group, pci::IommuGroup::parse(groups[i]).value());
    EXPECT_EQ(h.group(groups[i]), std::vector<std::string>{gpus[i]}) << "GPU alone in its group";
    EXPECT_EQ(d.numa_node, i < 4 ? 0 : 1);
    ASSERT_EQ(d.present_bars().size(), 3u);
    EXPECT_EQ(d.bars[0].size(), 16 * kMiB);
    EXPECT_EQ(d.bars[1].size(), 128 * kGiB);
    EXPECT_TRUE(d.bars[1].is_64bit() && d.bars[1].is_prefetchable());
    EXPECT_EQ(d.bars[1].start % (128 * kGiB), 0u) << "BARs are aligned to their size";
    EXPECT_EQ(d.bars[3].size(), 32 * kMiB);
    EXPECT_EQ(pci::bar_totals(d.bars).mem64_prefetchable, 128 * kGiB + 32 * kMiB);
    starts.insert(d.bars[1].start);
    ASSERT_TRUE(d.current_link);
    EXPECT_EQ(d.current_link->to_string(), "32.0 GT/s x16");
    EXPECT_TRUE(h.exists(h.paths().dev_root + "/nvidia" + std::to_string(i)));
  }
  EXPECT_EQ(starts.size(), 8u);
  EXPECT_FALSE(h.exists(h.paths().dev_root + "/nvidia8"));
  EXPECT_TRUE(h.exists(h.paths().dev_root + "/nvidiactl"));

  EXPECT_EQ(h.group("114"),
            (std::vector<std::string>{"0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0"}));
  EXPECT_EQ(h.read("0000:05:00.0").driver, "nvidia-nvswitch");
  EXPECT_EQ(h.read("0000:05:00.0").class_code, 0x068000u);
  EXPECT_EQ(h.read("0000:19:00.0").id(), "15b3:1021");
  EXPECT_EQ(h.read("0000:19:00.0").driver, "mlx5_core");
  EXPECT_EQ(h.read("0000:1a:00.0").driver, "nvme");
  EXPECT_EQ(h.read("0000:db:00.0").numa_node, 1);
  EXPECT_EQ(h.read("0000:02:00.0").boot_vga, true);  // the BMC's VGA
  // The GPU sits behind root port, switch upstream port and downstream port.
  EXPECT_EQ(fs::canonical(h.paths().pci_device("0000:18:00.0")).string(),
            h.paths().sysfs_root + "/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:00.0/0000:18:00.0");
  // Bridge windows hold the BARs below them.
  auto port = h.read("0000:17:00.0");
  auto res = slurp(h.paths().pci_device("0000:17:00.0") + "/resource");
  auto lines = pci::parse_resource_file(res, "resource");
  ASSERT_TRUE(lines);
  ASSERT_EQ(lines->size(), 11u);
  const auto& pref = (*lines)[9];
  auto gpu = h.read("0000:18:00.0");
  EXPECT_LE(pref.start, gpu.bars[1].start);
  EXPECT_GE(pref.end, gpu.bars[3].end);
  EXPECT_TRUE(pref.is_prefetchable() && pref.is_64bit());
}

// The datacenter GPUs of `h` with id `id`, in address order, each checked against the board's
// shape: alone in its group, NUMA node by half, BAR1 of `bar1` bytes aligned to its size, BAR0
// 16 MiB, BAR3 32 MiB, and a CX-7 and an NVMe on the two buses after it.
std::vector<std::string> check_datacenter_gpus(const BuiltHost& h, const std::string& id, uint64_t bar1) {
  auto all = h.pci().read_all();
  if (!all) throw std::runtime_error(all.error().to_string());
  std::vector<pci::Device> gpus;
  for (const auto& d : *all)
    if (d.id() == id) gpus.push_back(d);
  std::vector<std::string> found;
  std::set<uint64_t> starts;
  for (size_t i = 0; i < gpus.size(); ++i) {
    const auto& d = gpus[i];
    found.push_back(d.address.to_string());
    EXPECT_EQ(d.class_code, 0x030200u);
    EXPECT_EQ(h.group(d.iommu_group->to_string()), std::vector<std::string>{d.address.to_string()});
    EXPECT_EQ(d.numa_node, i < gpus.size() / 2 ? 0 : 1) << d.address.to_string();
    EXPECT_EQ(d.bars[0].size(), 16 * kMiB);
    EXPECT_EQ(d.bars[1].size(), bar1);
    EXPECT_TRUE(d.bars[1].is_64bit() && d.bars[1].is_prefetchable());
    EXPECT_EQ(d.bars[1].start % bar1, 0u) << "BARs are aligned to their size";
    EXPECT_EQ(d.bars[3].size(), 32 * kMiB);
    starts.insert(d.bars[1].start);
    char nic[16], nvme[16];
    std::snprintf(nic, sizeof nic, "0000:%02x:00.0", d.address.bus() + 1);
    std::snprintf(nvme, sizeof nvme, "0000:%02x:00.0", d.address.bus() + 2);
    EXPECT_EQ(h.read(nic).id(), "15b3:1021");
    EXPECT_EQ(h.read(nvme).driver, "nvme");
  }
  EXPECT_EQ(starts.size(), gpus.size());
  return found;
}

TEST(HgxH200Host, EightH200sWith256GiBBar1) {
  BuiltHost h(hgx_h200_host());
  EXPECT_EQ(check_datacenter_gpus(h, "10de:2335", 256 * kGiB),
            (std::vector<std::string>{"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
                                      "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0"}));
  EXPECT_EQ(h.read("0000:18:00.0").iommu_group, pci::IommuGroup::parse("59").value());
  EXPECT_EQ(h.read("0000:db:00.0").iommu_group, pci::IommuGroup::parse("79").value());
  EXPECT_EQ(h.group("114"),
            (std::vector<std::string>{"0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0"}));
  EXPECT_EQ(h.read("0000:06:00.0").id(), "10de:22a3");
  EXPECT_EQ(h.read("0000:02:00.0").boot_vga, true);
  EXPECT_TRUE(h.exists(h.paths().dev_root + "/nvidia7"));
}

TEST(Bar512Host, FourCardsWith512GiBBar1NoNvSwitch) {
  BuiltHost h(bar512_host());
  EXPECT_EQ(check_datacenter_gpus(h, "10de:2901", 512 * kGiB),
            (std::vector<std::string>{"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0"}));
  EXPECT_EQ(h.read("0000:5d:00.0").iommu_group, pci::IommuGroup::parse("15").value());
  EXPECT_TRUE(h.group("114").empty());
  EXPECT_EQ(h.read("0000:02:00.0").boot_vga, true);
  EXPECT_TRUE(h.exists(h.paths().dev_root + "/nvidia3"));
  EXPECT_FALSE(h.exists(h.paths().dev_root + "/nvidia4"));
}

TEST(SharedGroupHost, GpuSharesItsGroupWithAForeignNic) {
  BuiltHost h(shared_group_host());
  auto members = h.group("20");
  std::vector<std::string> endpoints;
  for (const auto& m : members)
    if (!h.read(m.c_str()).is_pci_bridge()) endpoints.push_back(m);
  EXPECT_EQ(endpoints, (std::vector<std::string>{"0000:03:00.0", "0000:04:00.0", "0000:04:00.1"}));
  EXPECT_EQ(members.size(), 6u);  // plus the switch's three ports
  EXPECT_EQ(h.read("0000:03:00.0").id(), "10de:1eb8");
  EXPECT_EQ(h.read("0000:04:00.0").id(), "8086:1521");
  EXPECT_EQ(h.read("0000:04:00.0").driver, "igb");
  EXPECT_EQ(h.group("21"), std::vector<std::string>{"0000:06:00.0"});
  EXPECT_TRUE(h.exists(h.paths().dev_root + "/nvidia1"));
}

TEST(LargeHost, ThousandDevicesReadable) {
  const auto t0 = std::chrono::steady_clock::now();
  HostBuilder b = large_host(1000);
  TempDir dir = TempDir::for_trees();
  auto tree = b.build(dir.path());
  const auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(tree) << tree.error().to_string();
  std::cout << "large_host(1000) built in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(t1 - t0).count() << " ms\n";
  auto fs = sys::make_posix_filesystem();
  pci::PciSysfs pci(*fs, tree->paths);
  auto all = pci.read_all();
  ASSERT_TRUE(all) << all.error().to_string();
  EXPECT_EQ(all->size(), 1000u);
  std::set<std::string> group_names;
  int gpus = 0, vfs = 0;
  for (const auto& d : *all) {
    ASSERT_TRUE(d.iommu_group) << d.address.to_string();
    group_names.insert(d.iommu_group->to_string());
    gpus += d.is_display() && d.vendor_id == 0x10de;
    if (d.id() == "15b3:101e") {
      ++vfs;
      EXPECT_TRUE(fs->exists(tree->paths.pci_device(d.address.to_string()) + "/physfn"));
    }
  }
  EXPECT_GT(gpus, 10);
  EXPECT_GT(vfs, 300);
  EXPECT_GT(group_names.size(), 900u);
}

TEST(LargeHost, SizesAreExact) {
  for (int n : {20, 57, 300, 2000}) EXPECT_EQ(large_host(n).functions().size(), static_cast<size_t>(n)) << n;
}

TEST(HostBuilder, FluentDescriptionAndProcesses) {
  HostBuilder b;
  b.device("0000:00:00.0", 0x8086, 0x1237, 0x060000).conventional().reset_methods({});
  b.device("0000:00:05.0", 0x10de, 0x2330, 0x030200)
      .bound_to("vfio-pci")
      .native_driver("nvidia")
      .override_driver("vfio-pci")
      .group(7)
      .numa(1)
      .bar(0, 16 * kMiB, BarType::kMem32)
      .bar(1, 128 * kGiB, BarType::kMem64Prefetch);
  b.process(4242, "nvidia-smi").open_dev(3, "nvidia0").fd(4, "socket:[99]");
  b.module("vfio_pci");
  TempDir dir;
  auto tree = b.build(dir.path());
  ASSERT_TRUE(tree) << tree.error().to_string();
  auto fs = sys::make_posix_filesystem();
  pci::PciSysfs pci(*fs, tree->paths);
  auto d = pci.read(addr("0000:00:05.0"));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->driver, "vfio-pci");
  EXPECT_EQ(d->driver_override, "vfio-pci");
  EXPECT_EQ(d->numa_node, 1);
  EXPECT_EQ(d->enable_count, 0);
  EXPECT_EQ(tree->model.native_drivers.at("0000:00:05.0"), "nvidia");
  EXPECT_TRUE(fs::exists(tree->paths.vfio_group("7")));  // bound to vfio-pci: the group node exists
  EXPECT_TRUE(fs::exists(tree->paths.pci_driver("nvidia")));  // its native driver is loaded
  EXPECT_EQ(*fs->read_link(tree->paths.process(4242) + "/fd/3"), tree->paths.dev_root + "/nvidia0");
  EXPECT_EQ(*fs->read_link(tree->paths.process(4242) + "/fd/4"), "socket:[99]");
  EXPECT_EQ(*fs->read_file(tree->paths.process(4242) + "/comm"), "nvidia-smi\n");
}

TEST(HostBuilder, RejectsBadDescriptions) {
  auto build = [](HostBuilder b) {
    TempDir dir;
    return b.build(dir.path());
  };
  {
    HostBuilder b;
    b.device("0000:00:01.0", 1, 2, 0x020000);
    b.device("0000:00:01.0", 1, 2, 0x020000);
    auto r = build(b);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::kInvalidArgument);
    EXPECT_NE(r.error().message.find("duplicate function 0000:00:01.0"), std::string::npos);
  }
  for (const char* bad : {"00:01.0", "0000:00:01.0 ", "0000:00:20.0", "0000:00:01.A", "../../etc"}) {
    HostBuilder b;
    b.device(bad, 1, 2, 0x020000);
    auto r = build(b);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Code::kInvalidArgument) << bad;
  }
  {
    HostBuilder b;
    b.device("0000:00:01.0", 1, 2, 0x020000).bar(5, kMiB, BarType::kMem64);
    EXPECT_EQ(build(b).error().code, Code::kInvalidArgument);
  }
  {
    HostBuilder b;
    b.device("0000:00:01.0", 1, 2, 0x020000).bar(0, 3 * kMiB, BarType::kMem32);
    EXPECT_EQ(build(b).error().code, Code::kInvalidArgument);
  }
  {
    HostBuilder b;
    b.bridge("0000:00:01.0", 1, 2, 0x05);
    b.bridge("0000:00:02.0", 1, 2, 0x05);
    auto r = build(b);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("two bridges"), std::string::npos);
  }
  {
    HostBuilder b;
    b.device("0000:00:01.0", 1, 2, 0x020000).driver("igb");
    b.module("igb", false);
    EXPECT_EQ(build(b).error().code, Code::kInvalidArgument);
  }
  {
    HostBuilder b;
    for (int i = 0; i < 3; ++i)
      b.device("0000:00:0" + std::to_string(i) + ".0", 1, 2, 0x020000).bar(0, kGiB, BarType::kMem32);
    auto r = build(b);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("exhausted"), std::string::npos);
  }
}

TEST(HostBuilder, HostByName) {
  EXPECT_TRUE(host_by_name("consumer"));
  EXPECT_TRUE(host_by_name("hgx-h100"));
  EXPECT_EQ(host_by_name("hgx-h200")->functions().size(), hgx_h100_host().functions().size());
  EXPECT_EQ(host_by_name("bar512")->functions().size(), bar512_host().functions().size());
  EXPECT_EQ(host_by_name("pcie-2s4g")->functions().size(), pcie_2s4g_host().functions().size());
  EXPECT_TRUE(host_by_name("shared-group"));
  auto large = host_by_name("large:50");
  ASSERT_TRUE(large);
  EXPECT_EQ(large->functions().size(), 50u);
  for (const char* bad : {"", "large:", "large:x", "large:0", "large:-3", "Consumer", "large:1000000"})
    EXPECT_EQ(host_by_name(bad).error().code, Code::kInvalidArgument) << bad;
}

}  // namespace
}  // namespace feos::test
