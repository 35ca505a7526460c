// The host facts the adapter reads: /proc/cpuinfo address bits, /proc/meminfo MemTotal, /dev/kvm
// and the KVM module behind it.
#include "vmm/qemu/host_caps.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "fake_sys.h"
#include "support/temp_dir.h"

namespace feos::vmm::qemu {
namespace {

using testing::FakeFilesystem;
using ::feos::test::TempDir;

TEST(HostCaps, ParsesCpuinfo) {
  EXPECT_EQ(host_phys_bits_from_cpuinfo("address sizes\t: 46 bits physical, 57 bits virtual\n"), 46);
  EXPECT_EQ(host_phys_bits_from_cpuinfo("flags\t: fpu\naddress sizes : 52 bits physical, 57 bits virtual"), 52);
  EXPECT_EQ(host_phys_bits_from_cpuinfo(""), 0);
  EXPECT_EQ(host_phys_bits_from_cpuinfo("address sizes\t: lots\n"), 0);
  EXPECT_EQ(host_phys_bits_from_cpuinfo("address sizes\t: 46 bits virtual\n"), 0);
  EXPECT_EQ(host_phys_bits_from_cpuinfo("address sizes\t: 4600 bits physical\n"), 0);
}

TEST(HostCaps, ParsesMeminfo) {
  EXPECT_EQ(host_memory_mib_from_meminfo("MemTotal: 2048 kB\n"), 2u);
  EXPECT_EQ(host_memory_mib_from_meminfo("MemFree: 2048 kB\nMemTotal: 4096 kB\n"), 4u);
  EXPECT_EQ(host_memory_mib_from_meminfo("MemTotal: lots\n"), 0u);
  EXPECT_EQ(host_memory_mib_from_meminfo("XMemTotal: 4096 kB\n"), 0u);
  EXPECT_EQ(host_memory_mib_from_meminfo("MemTotal: 4096 MB\n"), 0u);
  EXPECT_EQ(host_memory_mib_from_meminfo(""), 0u);
}

TEST(HostCaps, ReadsTheFactsThroughTheFilesystem) {
  FakeFilesystem fs;
  HostCaps host(fs, sys::HostPaths{"/fake/sys", "/fake/dev", "/fake/proc"});
  EXPECT_EQ(host.phys_bits(), 0);  // no cpuinfo: unknown
  EXPECT_EQ(host.memory_mib(), 0u);
  fs.files["/fake/proc/cpuinfo"] = "processor\t: 0\naddress sizes\t: 39 bits physical, 48 bits virtual\n";
  fs.files["/fake/proc/meminfo"] = "MemTotal:       24575856 kB\nMemFree:        20000000 kB\n";
  EXPECT_EQ(host.phys_bits(), 39);
  EXPECT_EQ(host.memory_mib(), 23999u);
  EXPECT_EQ(host.numa_nodes(), 1);  // no node list: a kernel without NUMA
  fs.files["/fake/sys/devices/system/node/online"] = "0-1\n";
  EXPECT_EQ(host.numa_nodes(), 2);
}

TEST(HostCaps, NodeMemoryCountsFreePageCacheAndReclaimableSlab) {
  FakeFilesystem fs;
  HostCaps host(fs, sys::HostPaths{"/fake/sys", "/fake/dev", "/fake/proc"});
  EXPECT_FALSE(host.node_memory(1).known);  // no per-node meminfo: not checked
  fs.files["/fake/sys/devices/system/node/node1/meminfo"] =
      "Node 1 MemTotal:       263842304 kB\nNode 1 MemFree:          2097152 kB\n"
      "Node 1 FilePages:        1048576 kB\nNode 1 SReclaimable:      524288 kB\n";
  auto memory = host.node_memory(1);
  EXPECT_TRUE(memory.known);
  EXPECT_EQ(memory.available_mib, 3584u);
  EXPECT_EQ(memory.what, "2048 MiB free + 1024 MiB page cache + 512 MiB reclaimable slab");
}

TEST(HostCaps, MeminfoValuesByKey) {
  EXPECT_EQ(meminfo_kib("MemTotal:  100 kB\nMemFree:   42 kB\n", "MemFree"), 42u);
  EXPECT_EQ(meminfo_kib("Node 12 MemFree:   7 kB\n", "MemFree"), 7u);
  EXPECT_EQ(meminfo_kib("MemFreeX:   7 kB\n", "MemFree"), std::nullopt);
  EXPECT_EQ(meminfo_kib("MemFree:   kB\n", "MemFree"), std::nullopt);
  EXPECT_EQ(meminfo_kib("", "MemFree"), std::nullopt);
}

TEST(HostCaps, CpuListsParse) {
  EXPECT_EQ(parse_cpu_list("0-2,8\n"), (std::vector<int>{0, 1, 2, 8}));
  EXPECT_EQ(parse_cpu_list("5"), (std::vector<int>{5}));
  EXPECT_EQ(parse_cpu_list("3-1"), std::nullopt);
}

TEST(HostCaps, NodeListsCountTheirNodes) {
  EXPECT_EQ(count_node_list("0\n"), 1);
  EXPECT_EQ(count_node_list("0-1\n"), 2);
  EXPECT_EQ(count_node_list("0,2-3"), 3);
  EXPECT_EQ(count_node_list("0-7"), 8);
  for (const char* bad : {"", "\n", "x", "1-0", "0-", "-1", "0,,1", "0-1-2", "12345"})
    EXPECT_EQ(count_node_list(bad), 0) << bad;
}

// KVM is usable when the device opens read-write and a hardware virtualization module is loaded;
// kvm_pvm's device (no VT-x or AMD-V) hangs ordinary guests.
TEST(HostCaps, KvmIsUsableWithTheDeviceAndAHardwareModule) {
  TempDir dev, sysfs;
  sys::HostPaths paths;
  paths.dev_root = dev.path();
  paths.sysfs_root = sysfs.path();
  std::filesystem::create_directories(sysfs / "module/kvm/parameters");
  EXPECT_EQ(kvm_unusable_reason(paths), dev / "kvm" + " does not open read-write: No such file or directory");
  std::ofstream(dev / "kvm") << "";
  EXPECT_EQ(kvm_unusable_reason(paths), dev / "kvm" + " opens, but neither kvm_intel nor kvm_amd is loaded");
  std::filesystem::create_directories(sysfs / "module/kvm_pvm/parameters");
  EXPECT_EQ(kvm_unusable_reason(paths),
            dev / "kvm" + " is kvm_pvm (no VT-x or AMD-V), which runs only guest kernels built for PVM");
  for (const char* module : {"kvm_intel", "kvm_amd"}) {
    std::filesystem::create_directories(sysfs / (std::string("module/") + module));
    EXPECT_EQ(kvm_unusable_reason(paths), std::nullopt) << module;
    std::filesystem::remove(sysfs / (std::string("module/") + module));
  }
  if (::geteuid() != 0) {  // root opens a 0400 file read-write all the same
    std::filesystem::create_directories(sysfs / "module/kvm_intel");
    ASSERT_EQ(::chmod((dev / "kvm").c_str(), 0400), 0);
    EXPECT_NE(kvm_unusable_reason(paths), std::nullopt);
  }
}

}  // namespace
}  // namespace feos::vmm::qemu
