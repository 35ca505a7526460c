#include "pci/sysfs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sysfs_tree.h"

namespace feos::pci {
namespace {

Address addr(const char* text) { return *Address::parse(text); }

class H100GuestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto st = test::materialize_sysfs_capture(test::fixtures_dir() + "/sysfs/h100-guest", tmp_.path());
    ASSERT_TRUE(st) << st.error().message;
    paths_.sysfs_root = tmp_.path();
  }
  test::TempDir tmp_;
  std::unique_ptr<sys::Filesystem> fs_ = sys::make_posix_filesystem();
  sys::HostPaths paths_;
};

TEST_F(H100GuestTest, TreeHasRealSymlinks) {
  // The capture's *.link files became symlinks the kernel's way.
  auto target = fs_->read_link(paths_.pci_devices() + "/0000:00:06.0");
  ASSERT_TRUE(target) << target.error().message;
  EXPECT_EQ(*target, "../../../devices/pci0000:00/0000:00:06.0");
  auto driver = fs_->read_link(paths_.pci_device("0000:00:06.0") + "/driver");
  ASSERT_TRUE(driver) << driver.error().message;
  EXPECT_EQ(*driver, "../../../bus/pci/drivers/nvidia");
  EXPECT_TRUE(fs_->exists(paths_.pci_driver("nvidia")));
}

TEST_F(H100GuestTest, ListsAllFunctionsInOrder) {
  PciSysfs pci(*fs_, paths_);
  auto list = pci.list();
  ASSERT_TRUE(list) << list.error().message;
  std::vector<std::string> names;
  for (const auto& a : *list) names.push_back(a.to_string());
  EXPECT_EQ(names, (std::vector<std::string>{"0000:00:00.0", "0000:00:01.0", "0000:00:02.0", "0000:00:03.0",
                                             "0000:00:04.0", "0000:00:05.0", "0000:00:06.0"}));
}

TEST_F(H100GuestTest, ReadsTheH100) {
  PciSysfs pci(*fs_, paths_);
  auto d = pci.read(addr("0000:00:06.0"));
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->vendor_id, 0x10de);
  EXPECT_EQ(d->device_id, 0x2330);
  EXPECT_EQ(d->id(), "10de:2330");
  EXPECT_EQ(d->subsystem_id(), "10de:16c1");
  EXPECT_EQ(d->class_code, 0x030200u);
  EXPECT_EQ(d->class_string(), "0x030200");
  EXPECT_TRUE(d->is_display());  // a 3D controller (0302), not VGA
  EXPECT_FALSE(d->is_pci_bridge());
  EXPECT_EQ(d->revision, uint8_t{0xa1});
  EXPECT_EQ(d->driver, "nvidia");
  EXPECT_EQ(d->driver_override, "");
  EXPECT_FALSE(d->iommu_group);  // the guest has no IOMMU
  EXPECT_EQ(d->numa_node, -1);
  EXPECT_EQ(d->local_cpus, "0-15");  // local_cpulist, kept as the kernel's text
  EXPECT_FALSE(d->boot_vga);     // only VGA-class functions have boot_vga
  EXPECT_EQ(d->reset_methods, std::vector<std::string>{"flr"});
  EXPECT_EQ(d->enable_count, 1);
  ASSERT_TRUE(d->current_link);
  EXPECT_EQ(d->current_link->speed, "32.0 GT/s PCIe");
  EXPECT_DOUBLE_EQ(d->current_link->gts, 32.0);
  EXPECT_EQ(d->current_link->width, 16);
  EXPECT_EQ(d->current_link->to_string(), "32.0 GT/s x16");
  ASSERT_TRUE(d->max_link);
  EXPECT_DOUBLE_EQ(d->max_link->gts, 32.0);
  EXPECT_EQ(d->max_link->width, 16);

  // BARs by register index. NVIDIA calls the 128 GiB aperture "BAR1" and the 32 MiB one "BAR3"
  // (their numbering on bare metal, where BAR0 is 32-bit); in this guest BAR0 is 64-bit too, so
  // they sit at register indexes 2 and 4.
  ASSERT_EQ(d->bars.size(), 6u);
  auto bars = d->present_bars();
  ASSERT_EQ(bars.size(), 3u);
  EXPECT_EQ(bars[0].index, 0);
  EXPECT_EQ(bars[0].size(), 16ull << 20);
  EXPECT_EQ(bars[1].index, 2);
  EXPECT_EQ(bars[1].size(), 128ull << 30);
  EXPECT_EQ(bars[1].start, 0x100000000000u);
  EXPECT_TRUE(bars[1].is_64bit());
  EXPECT_TRUE(bars[1].is_prefetchable());
  EXPECT_TRUE(bars[1].is_mem());
  EXPECT_EQ(bars[2].index, 4);
  EXPECT_EQ(bars[2].size(), 32ull << 20);
  ASSERT_TRUE(d->rom);
  EXPECT_FALSE(d->rom->present());
  EXPECT_EQ(bar_totals(d->bars).mem64_prefetchable, (128ull << 30) + (48ull << 20));
}

TEST_F(H100GuestTest, ReadsVirtioAndTheHostBridge) {
  PciSysfs pci(*fs_, paths_);
  auto all = pci.read_all();
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->size(), 7u);
  const Device& bridge = (*all)[0];
  EXPECT_EQ(bridge.id(), "8086:0d57");
  EXPECT_EQ(bridge.base_class(), kClassBridge);
  EXPECT_FALSE(bridge.is_pci_bridge());  // a host bridge (0600): an endpoint for VFIO
  EXPECT_EQ(bridge.driver, "");  // unbound: no driver link
  EXPECT_FALSE(bridge.current_link);
  EXPECT_TRUE(bridge.reset_methods.empty());
  EXPECT_TRUE(bridge.present_bars().empty());
  const Device& net = (*all)[3];
  EXPECT_EQ(net.id(), "1af4:1041");
  EXPECT_EQ(net.class_code, 0x020000u);
  EXPECT_EQ(net.driver, "virtio-pci");
  EXPECT_FALSE(net.is_display());
  int displays = 0;
  for (const auto& d : *all) displays += d.is_display();
  EXPECT_EQ(displays, 1);
}

TEST_F(H100GuestTest, SlotsAndMissingDevices) {
  PciSysfs pci(*fs_, paths_);
  auto fns = pci.slot_functions(addr("0000:00:06.3"));
  ASSERT_TRUE(fns) << fns.error().message;
  EXPECT_EQ(*fns, std::vector<Address>{addr("0000:00:06.0")});

  EXPECT_FALSE(pci.exists(addr("0000:00:07.0")));
  auto missing = pci.read(addr("0000:00:07.0"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_NE(missing.error().message.find("0000:00:07.0"), std::string::npos);
  auto no_slot = pci.slot_functions(addr("0000:00:07.0"));
  ASSERT_FALSE(no_slot);
  EXPECT_EQ(no_slot.error().code, Code::kNotFound);

  auto group = pci.iommu_group(addr("0000:00:06.0"));
  ASSERT_TRUE(group) << group.error().message;
  EXPECT_FALSE(*group);
  EXPECT_EQ(pci.iommu_group(addr("0000:00:07.0")).error().code, Code::kNotFound);
  EXPECT_EQ(pci.iommu_group_members(IommuGroup(15)).error().code, Code::kNotFound);
}

TEST(PciSysfsTest, MissingSysfsIsNotFound) {
  test::TempDir tmp;
  auto fs = sys::make_posix_filesystem();
  sys::HostPaths paths;
  paths.sysfs_root = tmp.path() + "/nothing";
  PciSysfs pci(*fs, paths);
  auto list = pci.list();
  ASSERT_FALSE(list);
  EXPECT_EQ(list.error().code, Code::kNotFound);
}

// An HGX H200 host as publicly reported: each GPU alone in its IOMMU group, the four NVSwitches
// sharing one group; plus a consumer card whose GPU and HDMI audio share a slot and a group.
class HostTopologyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::pair<const char*, const char*> gpus[] = {{"0000:18:00.0", "59"}, {"0000:2a:00.0", "50"},
                                                        {"0000:3a:00.0", "41"}, {"0000:5d:00.0", "15"}};
    for (const auto& [bdf, group] : gpus) {
      test::FakePciFunction fn;
      fn.bdf = bdf;
      fn.driver = "nvidia";
      fn.iommu_group = group;
      fn.resource =
          "0x00000000e2000000 0x00000000e2ffffff 0x0000000000040200\n"
          "0x0000020000000000 0x0000023fffffffff 0x000000000014220c\n"
          "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
          "0x0000024000000000 0x0000024001ffffff 0x000000000014220c\n"
          "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
          "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
          "0x0000000000000000 0x0000000000000000 0x0000000000000000\n";
      fn.extra = {{"current_link_speed", "32.0 GT/s PCIe\n"}, {"current_link_width", "16\n"},
                  {"reset_method", "flr bus\n"}, {"numa_node", "0\n"}, {"local_cpulist", "0-27,56-83\n"}};
      ASSERT_TRUE(test::add_pci_function(tmp_.path(), fn));
    }
    for (const char* bdf : {"0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0"}) {
      test::FakePciFunction sw;
      sw.bdf = bdf;
      sw.device = "0x22a3";
      sw.class_code = "0x068000";
      sw.driver = "nvidia-nvswitch";
      sw.iommu_group = "114";
      ASSERT_TRUE(test::add_pci_function(tmp_.path(), sw));
    }
    test::FakePciFunction vga;
    vga.bdf = "0000:c1:00.0";
    vga.device = "0x2204";
    vga.class_code = "0x030000";
    vga.driver = "vfio-pci";
    vga.iommu_group = "7";
    vga.extra = {{"boot_vga", "0\n"}, {"driver_override", "vfio-pci\n"}, {"current_link_speed", "Unknown\n"},
                 {"current_link_width", "0\n"}};
    ASSERT_TRUE(test::add_pci_function(tmp_.path(), vga));
    test::FakePciFunction audio;
    audio.bdf = "0000:c1:00.1";
    audio.device = "0x1aef";
    audio.class_code = "0x040300";
    audio.iommu_group = "7";
    ASSERT_TRUE(test::add_pci_function(tmp_.path(), audio));
    paths_.sysfs_root = tmp_.path();
  }
  test::TempDir tmp_;
  std::unique_ptr<sys::Filesystem> fs_ = sys::make_posix_filesystem();
  sys::HostPaths paths_;
};

TEST_F(HostTopologyTest, IommuGroups) {
  PciSysfs pci(*fs_, paths_);
  auto group = pci.iommu_group(addr("0000:18:00.0"));
  ASSERT_TRUE(group) << group.error().message;
  EXPECT_EQ(*group, IommuGroup(59));
  auto alone = pci.iommu_group_members(IommuGroup(59));
  ASSERT_TRUE(alone) << alone.error().message;
  EXPECT_EQ(*alone, std::vector<Address>{addr("0000:18:00.0")});

  auto switches = pci.iommu_group_members(IommuGroup(114));
  ASSERT_TRUE(switches) << switches.error().message;
  EXPECT_EQ(*switches, (std::vector<Address>{addr("0000:05:00.0"), addr("0000:06:00.0"), addr("0000:07:00.0"),
                                             addr("0000:08:00.0")}));
  auto card = pci.iommu_group_members(IommuGroup(7));
  ASSERT_TRUE(card);
  EXPECT_EQ(*card, (std::vector<Address>{addr("0000:c1:00.0"), addr("0000:c1:00.1")}));

  EXPECT_EQ(pci.iommu_group_members(IommuGroup(999)).error().code, Code::kNotFound);
}

TEST_F(HostTopologyTest, SlotFunctionsAndVgaFacts) {
  PciSysfs pci(*fs_, paths_);
  auto fns = pci.slot_functions(addr("0000:c1:00.1"));
  ASSERT_TRUE(fns) << fns.error().message;
  EXPECT_EQ(*fns, (std::vector<Address>{addr("0000:c1:00.0"), addr("0000:c1:00.1")}));

  auto vga = pci.read(addr("0000:c1:00.0"));
  ASSERT_TRUE(vga) << vga.error().message;
  EXPECT_EQ(vga->class_code, kClassVga);
  EXPECT_TRUE(vga->is_display());
  EXPECT_EQ(vga->boot_vga, false);
  EXPECT_EQ(vga->driver, "vfio-pci");
  EXPECT_EQ(vga->driver_override, "vfio-pci");
  ASSERT_TRUE(vga->current_link);
  EXPECT_EQ(vga->current_link->speed, "Unknown");
  EXPECT_EQ(vga->current_link->gts, 0.0);
  EXPECT_EQ(vga->current_link->width, 0);

  auto audio = pci.read(addr("0000:c1:00.1"));
  ASSERT_TRUE(audio);
  EXPECT_FALSE(audio->is_display());
  EXPECT_EQ(audio->driver, "");
  EXPECT_EQ(audio->enable_count, 0);

  auto gpu = pci.read(addr("0000:18:00.0"));
  ASSERT_TRUE(gpu);
  EXPECT_EQ(gpu->numa_node, 0);
  EXPECT_EQ(gpu->reset_methods, (std::vector<std::string>{"flr", "bus"}));
  EXPECT_FALSE(gpu->bars[0].is_64bit());
  EXPECT_EQ(gpu->bars[1].size(), 256ull << 30);
  auto sw = pci.read(addr("0000:05:00.0"));
  ASSERT_TRUE(sw);
  EXPECT_FALSE(sw->is_display());
  EXPECT_EQ(sw->driver, "nvidia-nvswitch");
}

// The one reader of a device's binding: hostdev's VfioBinder reads driver and driver_override
// through these.
TEST_F(HostTopologyTest, DriverAndDriverOverride) {
  PciSysfs pci(*fs_, paths_);
  auto vga = addr("0000:c1:00.0"), audio = addr("0000:c1:00.1"), absent = addr("0000:c1:00.2");
  EXPECT_EQ(pci.driver(vga).value(), "vfio-pci");
  EXPECT_EQ(pci.driver_override(vga).value(), "vfio-pci");
  EXPECT_EQ(pci.driver(audio).value(), "");  // no driver link: unbound
  EXPECT_EQ(pci.driver_override(audio).value(), "");  // "(null)": none
  { std::ofstream(paths_.pci_device_attr("0000:c1:00.1", "driver_override"), std::ios::trunc) << " nvidia \n"; }
  EXPECT_EQ(pci.driver_override(audio).value(), "nvidia");

  auto gone = pci.driver(absent);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Code::kNotFound);
  EXPECT_EQ(gone.error().message,
            "PCI device 0000:c1:00.2 is gone (no " + paths_.pci_device("0000:c1:00.2") + ")");
  auto no_override = pci.driver_override(absent);
  ASSERT_FALSE(no_override);
  EXPECT_EQ(no_override.error().code, Code::kNotFound);
  EXPECT_NE(no_override.error().message.find(paths_.pci_device_attr("0000:c1:00.2", "driver_override")),
            std::string::npos)
      << no_override.error().message;
}

TEST_F(HostTopologyTest, DevicesBoundToADriver) {
  // The kernel lists each bound device in its driver's directory, beside bind, unbind, new_id.
  const std::string dir = paths_.pci_driver("nvidia");
  for (const char* name : {"0000:3a:00.0", "0000:18:00.0", "bind", "unbind", "new_id", "module"}) {
    std::filesystem::create_directories(dir + "/" + name);
  }
  PciSysfs pci(*fs_, paths_);
  auto bound = pci.bound_to("nvidia");
  ASSERT_TRUE(bound) << bound.error().message;
  EXPECT_EQ(*bound, (std::vector<Address>{addr("0000:18:00.0"), addr("0000:3a:00.0")}));
  auto none = pci.bound_to("nouveau");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Code::kNotFound);
}

TEST_F(HostTopologyTest, CountsIommuGroups) {
  PciSysfs pci(*fs_, paths_);
  EXPECT_EQ(pci.iommu_group_count().value(), 6u);  // 59, 50, 41, 15, 114, 7
  sys::HostPaths none = paths_;
  none.sysfs_root = tmp_.path() + "/nothing";
  EXPECT_EQ(PciSysfs(*fs_, none).iommu_group_count().value(), 0u);
}

TEST_F(HostTopologyTest, LocalCpusAreTheKernelsListAndOptional) {
  PciSysfs pci(*fs_, paths_);
  auto gpu = pci.read(addr("0000:18:00.0"));
  ASSERT_TRUE(gpu) << gpu.error().message;
  EXPECT_EQ(gpu->local_cpus, "0-27,56-83");
  // A capture without the attribute: unknown, not an error.
  auto sw = pci.read(addr("0000:05:00.0"));
  ASSERT_TRUE(sw) << sw.error().message;
  EXPECT_EQ(sw->local_cpus, "");
  // A static fact: refresh() leaves it as read.
  { std::ofstream(paths_.pci_device_attr("0000:18:00.0", "local_cpulist"), std::ios::trunc) << "0-3\n"; }
  ASSERT_TRUE(pci.refresh(*gpu));
  EXPECT_EQ(gpu->local_cpus, "0-27,56-83");
  EXPECT_EQ(pci.read(addr("0000:18:00.0"))->local_cpus, "0-3");
}

TEST_F(HostTopologyTest, MalformedAttributesAreInternalErrorsNamingThePath) {
  const std::string dir = paths_.pci_device("0000:18:00.0");
  PciSysfs pci(*fs_, paths_);
  struct Case {
    const char* file;
    const char* content;
  } cases[] = {{"vendor", "10de\n"}, {"vendor", "0x10000\n"}, {"class", "0x1000000\n"},
               {"numa_node", "zero\n"}, {"current_link_width", "x\n"}, {"resource", "garbage\n"},
               {"local_cpulist", "0-27 56-83\n"}, {"local_cpulist", "ff\n"},
               // The kernel writes "0x" and at most 8 digits: nothing else is an id.
               {"vendor", "0X10de\n"}, {"vendor", "0x\n"}, {"device", "0x000002330\n"},
               {"device", "0x+233\n"}, {"class", "0x03 0200\n"}};
  for (const auto& c : cases) {
    std::string path = dir + "/" + c.file;
    std::string saved = *fs_->read_file(path);
    { std::ofstream(path, std::ios::trunc) << c.content; }
    auto d = pci.read(addr("0000:18:00.0"));
    ASSERT_FALSE(d) << c.file << " = " << c.content;
    EXPECT_EQ(d.error().code, Code::kInternal) << d.error().message;
    EXPECT_NE(d.error().message.find(path), std::string::npos) << d.error().message;
    { std::ofstream(path, std::ios::trunc) << saved; }
  }
  ASSERT_TRUE(pci.read(addr("0000:18:00.0")));
  // A required attribute that is missing.
  std::filesystem::remove(dir + "/device");
  auto d = pci.read(addr("0000:18:00.0"));
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, Code::kInternal);
  EXPECT_NE(d.error().message.find(dir + "/device"), std::string::npos) << d.error().message;
}

// Found by a hand-written input to fuzz/sysfs_attributes_fuzzer, whose invariant wants finite,
// non-negative speeds: std::from_chars reads "inf" and "nan" as numbers, and they came out as link speeds.
TEST_F(HostTopologyTest, LinkSpeedsThatAreNotNumbersAreUnknown) {
  const std::string path = paths_.pci_device("0000:18:00.0") + "/current_link_speed";
  PciSysfs pci(*fs_, paths_);
  for (const char* speed : {"inf GT/s PCIe", "nan GT/s PCIe", "-inf GT/s PCIe", "-2.5 GT/s PCIe",
                            "1e999 GT/s PCIe", "32.0 GB/s"}) {
    { std::ofstream(path, std::ios::trunc) << speed << "\n"; }
    auto d = pci.read(addr("0000:18:00.0"));
    ASSERT_TRUE(d) << d.error().message;
    ASSERT_TRUE(d->current_link);
    EXPECT_EQ(d->current_link->speed, speed);
    EXPECT_EQ(d->current_link->gts, 0.0) << speed;
  }
}

TEST_F(HostTopologyTest, SkipsNonAddressEntries) {
  std::filesystem::create_directories(paths_.pci_devices() + "/not-a-device");
  PciSysfs pci(*fs_, paths_);
  auto list = pci.list();
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_EQ(list->size(), 10u);
}

}  // namespace
}  // namespace feos::pci
