// The adapter's checks of a hugepages VM against fake hosts (qemu_memory.cc): the hugetlbfs mount
// of its page size in /proc/mounts, the free hugepages on the node its RAM is bound to (or on a
// host without NUMA, the host's pool), and the progress a start reports before launch.
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_sys.h"
#include "gpu_fixtures.h"
#include "support/temp_dir.h"
#include "vmm/qemu/qemu_hypervisor.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::FakeFilesystem;
using testing::FakeLauncher;
using testing::FakePermissions;
using ::feos::test::TempDir;

constexpr const char* kMounts =
    "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
    "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n";

class QemuMemory : public ::testing::Test {
 protected:
  QemuMemory() {
    fs_.files["/fake/proc/meminfo"] = "MemTotal:       65536000 kB\nHugepagesize:       2048 kB\n";
    fs_.files["/fake/proc/mounts"] = kMounts;
  }
  std::unique_ptr<QemuHypervisor> make(bool guest_numa = true) {
    QemuConfig config;
    config.accel = "tcg";
    config.guest_numa = guest_numa;
    auto hv = QemuHypervisor::create(launcher_, fs_, permissions_, paths_, config);
    EXPECT_TRUE(hv) << hv.error().to_string();
    return hv ? std::move(*hv) : nullptr;
  }
  // A two-node host: node 1 with CPUs 8-15 and `free` 2 MiB hugepages.
  void two_nodes(uint64_t free) {
    fs_.files["/fake/sys/devices/system/node/online"] = "0-1\n";
    fs_.files["/fake/sys/devices/system/node/node1/cpulist"] = "8-15\n";
    fs_.files["/fake/sys/devices/system/node/node1/hugepages/hugepages-2048kB/free_hugepages"] =
        std::to_string(free) + "\n";
  }
  model::VmSpec spec(uint64_t memory_mib, model::HugepageSize page, bool with_gpu) {
    model::VmSpec spec;
    spec.cpus = {4, 4};
    spec.memory = {.size_mib = memory_mib, .hugepages = true, .hugepage_size = page};
    spec.boot.kernel = guest_ / "vmlinuz";
    std::ofstream(spec.boot.kernel) << "k";
    fs_.files[spec.boot.kernel] = "k";
    if (with_gpu) spec.gpus.push_back(gpus_[0].request);
    return spec;
  }
  TempDir guest_, run_;
  FakeFilesystem fs_;
  FakeLauncher launcher_;
  FakePermissions permissions_;
  sys::HostPaths paths_{"/fake/sys", "/fake/dev", "/fake/proc"};
  // One H100 on host node 1.
  std::vector<model::AssignedGpu> gpus_ = [] {
    auto gpus = testing::hgx_h100s(1);
    gpus[0].numa_node = 1;
    return gpus;
  }();
};

TEST_F(QemuMemory, AMissingMountOfThePageSizeIsNamed) {
  auto hv = make();
  EXPECT_TRUE(hv->validate(spec(4096, model::HugepageSize::k2M, false)));
  EXPECT_TRUE(hv->validate(spec(4096, model::HugepageSize::kHostDefault, false)));
  auto refused = hv->validate(spec(4096, model::HugepageSize::k1G, false));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(refused.error().message,
            "config.memory.hugepages: no hugetlbfs mount with 1 GiB pages in /proc/mounts (there are "
            "/dev/hugepages (2 MiB)); mount one: mount -t hugetlbfs -o pagesize=1048576K none <dir>");
  fs_.files["/fake/proc/mounts"] = std::string(kMounts) + "none /mnt/huge1g hugetlbfs rw,pagesize=1024M 0 0\n";
  EXPECT_TRUE(hv->validate(spec(4096, model::HugepageSize::k1G, false)));
  fs_.files.erase("/fake/proc/mounts");
  refused = hv->validate(spec(4096, model::HugepageSize::k2M, false));
  ASSERT_FALSE(refused);
  EXPECT_THAT(refused.error().message, HasSubstr("no hugetlbfs mount with 2 MiB pages in /proc/mounts (there is none)"));
}

TEST_F(QemuMemory, TheHostsDefaultSizeMustDivideTheRam) {
  fs_.files["/fake/proc/meminfo"] = "MemTotal:       65536000 kB\nHugepagesize:    1048576 kB\n";
  fs_.files["/fake/proc/mounts"] = "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=1024M 0 0\n";
  auto hv = make();
  EXPECT_TRUE(hv->validate(spec(4096, model::HugepageSize::kHostDefault, false)));
  auto refused = hv->validate(spec(1536, model::HugepageSize::kHostDefault, false));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kInvalidArgument);
  EXPECT_EQ(refused.error().message,
            "config.memory.size_mib: 1536 MiB is not a whole number of 1 GiB hugepages (this host's default size)");
}

TEST_F(QemuMemory, TooFewFreePagesOnTheGpusNodeAreRefusedNamingIt) {
  two_nodes(100);
  auto hv = make();
  auto refused = hv->plan_start("vm-1", spec(1024, model::HugepageSize::k2M, true), gpus_, run_.path());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(refused.error().message,
            "vm vm-1: config.memory.hugepages: host node 1 has 100 free 2 MiB hugepages, the VM needs 512 there "
            "(guest NUMA node 0: 1024 MiB); reserve more "
            "(/fake/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages) or give the VM less "
            "memory");
  // The host's pool is not what counts for RAM bound to node 1.
  fs_.files["/fake/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"] = "100000\n";
  EXPECT_FALSE(hv->plan_start("vm-1", spec(1024, model::HugepageSize::k2M, true), gpus_, run_.path()));
  two_nodes(512);
  auto planned = hv->plan_start("vm-1", spec(1024, model::HugepageSize::k2M, true), gpus_, run_.path());
  ASSERT_TRUE(planned) << planned.error().to_string();
  EXPECT_THAT(planned->argv, ::testing::Contains("memory-backend-file,id=ram-node0,size=1024M,mem-path=/dev/hugepages,"
                                                 "share=on,prealloc=on,prealloc-threads=4,host-nodes=1,policy=bind"));
}

// A node's free count includes pages other mappings reserved (resv_hugepages, kept for the
// whole host): the host's free pages less those must hold the VM as well.
TEST_F(QemuMemory, PagesReservedByOtherMappingsDoNotCount) {
  two_nodes(512);
  fs_.files["/fake/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"] = "600\n";
  fs_.files["/fake/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages"] = "400\n";
  auto hv = make();
  auto refused = hv->plan_start("vm-1", spec(1024, model::HugepageSize::k2M, true), gpus_, run_.path());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(refused.error().message,
            "vm vm-1: config.memory.hugepages: the host has 200 free, unreserved 2 MiB hugepages, the VM needs 512 "
            "(the guest RAM: 1024 MiB); reserve more (/fake/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages) "
            "or give the VM less memory");
  fs_.files["/fake/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages"] = "88\n";
  EXPECT_TRUE(hv->plan_start("vm-1", spec(1024, model::HugepageSize::k2M, true), gpus_, run_.path()));
  // Without NUMA the same count decides.
  fs_.files["/fake/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages"] = "89\n";
  auto no_numa = make(false);
  EXPECT_FALSE(no_numa->plan_start("vm-1", spec(1024, model::HugepageSize::k2M, true), gpus_, run_.path()));
}

TEST_F(QemuMemory, WithoutNumaTheHostsPoolCounts) {
  fs_.files["/fake/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"] = "10\n";
  auto hv = make();
  auto refused = hv->plan_start("vm-1", spec(1024, model::HugepageSize::k2M, true), gpus_, run_.path());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message,
            "vm vm-1: config.memory.hugepages: the host has 10 free, unreserved 2 MiB hugepages, the VM needs 512 (the guest "
            "RAM: 1024 MiB); reserve more (/fake/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages) or give "
            "the VM less memory");
  fs_.files["/fake/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"] = "512\n";
  auto planned = hv->plan_start("vm-1", spec(1024, model::HugepageSize::k2M, true), gpus_, run_.path());
  ASSERT_TRUE(planned) << planned.error().to_string();
  EXPECT_THAT(planned->argv, ::testing::Contains("memory-backend-file,id=ram0,size=1024M,mem-path=/dev/hugepages,"
                                                 "share=on,prealloc=on,prealloc-threads=4"));
  // Bound to no node: qemu starts wherever the daemon may run.
  fs_.files["/fake/dev/vfio/40"] = "";
  ASSERT_FALSE(hv->start("vm-1", spec(1024, model::HugepageSize::k2M, true), gpus_, run_.path()));
  EXPECT_EQ(launcher_.launches, 1);
  EXPECT_THAT(launcher_.last.cpus, IsEmpty());
}

TEST_F(QemuMemory, AStartSaysWhatItPreallocatesBeforeLaunching) {
  two_nodes(1000);
  auto hv = make();
  std::vector<std::string> progress;
  hv->set_progress_callback([&](const std::string& vm, const std::string& component, const std::string& text) {
    progress.push_back(vm + " " + component + ": " + text);
  });
  fs_.files["/fake/dev/vfio/40"] = "";
  auto started = hv->start("vm-1", spec(1024, model::HugepageSize::k2M, true), gpus_, run_.path());
  ASSERT_FALSE(started);  // the fake launcher launches nothing
  EXPECT_EQ(launcher_.launches, 1);
  EXPECT_EQ(launcher_.last.memlock_bytes, uint64_t{2} << 30);  // 1 GiB of RAM + 1 GiB
  EXPECT_THAT(progress, ElementsAre("vm-1 memory: preallocating 1 GiB on host node 1 (2 MiB pages, 4 threads on host "
                                    "CPUs 8-15; VFIO pins it for the GPUs)"));
  // qemu starts on node 1's CPUs: its preallocation threads touch node-local memory.
  EXPECT_THAT(launcher_.last.cpus, ElementsAre(8, 9, 10, 11, 12, 13, 14, 15));
}

}  // namespace
}  // namespace feos::vmm::qemu
