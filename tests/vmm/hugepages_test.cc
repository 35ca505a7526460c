// The hugetlbfs mounts read from /proc/mounts and the free-hugepage check (hugepages.h); the
// adapter's use of them on fake hosts is in qemu_memory_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "vmm/qemu/hugepages.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t k2M = 2048, k1G = 1024 * 1024;

TEST(HugetlbMounts, PageSizeFromTheMountOptionElseTheDefault) {
  const char* mounts =
      "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
      "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n"
      "none /mnt/huge\\0401g hugetlbfs rw,relatime,pagesize=1024M 0 0\n"
      "none /mnt/huge-ro hugetlbfs ro,relatime,pagesize=2M 0 0\n"
      "none /mnt/old hugetlbfs rw,relatime 0 0\n"
      "none /mnt/bad hugetlbfs rw,pagesize=2X 0 0\n";
  auto found = parse_hugetlb_mounts(mounts, k2M);
  ASSERT_EQ(found.size(), 3u);
  EXPECT_EQ(found[0].path, "/dev/hugepages");
  EXPECT_EQ(found[0].page_kib, k2M);
  EXPECT_EQ(found[1].path, "/mnt/huge 1g");  // \040 is a space
  EXPECT_EQ(found[1].page_kib, k1G);
  EXPECT_EQ(found[2].path, "/mnt/old");  // no pagesize: the host's default
  EXPECT_EQ(found[2].page_kib, k2M);
  // No default size known: a mount without pagesize says nothing about its pages.
  EXPECT_EQ(parse_hugetlb_mounts(mounts, 0).size(), 2u);
  EXPECT_EQ(parse_hugetlb_mounts("none /x hugetlbfs rw,pagesize=1G 0 0\n", 0).at(0).page_kib, k1G);
}

TEST(HugetlbMounts, PicksTheFirstOfTheSizeOrSaysWhatIsThere) {
  std::vector<HugetlbMount> mounts = {{"/dev/hugepages", k2M}, {"/mnt/a", k1G}, {"/mnt/b", k1G}};
  auto one_gig = pick_hugetlb_mount(mounts, k1G);
  ASSERT_TRUE(one_gig);
  EXPECT_EQ(one_gig->path, "/mnt/a");
  auto missing = pick_hugetlb_mount({{"/dev/hugepages", k2M}}, k1G);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(missing.error().message,
            "no hugetlbfs mount with 1 GiB pages in /proc/mounts (there are /dev/hugepages (2 MiB)); mount "
            "one: mount -t hugetlbfs -o pagesize=1048576K none <dir>");
  auto none = pick_hugetlb_mount({}, k2M);
  ASSERT_FALSE(none);
  EXPECT_THAT(none.error().message, HasSubstr("with 2 MiB pages in /proc/mounts (there is none)"));
  auto no_size = pick_hugetlb_mount(mounts, 0);
  ASSERT_FALSE(no_size);
  EXPECT_THAT(no_size.error().message, HasSubstr("no default hugepage size"));
}

TEST(FreeHugepages, NamesTheNodeTheFreeAndTheNeededPages) {
  std::vector<HugepageNeed> needs = {
      {.host_node = 0, .pages = 100, .free_pages = 100, .what = "guest NUMA node 0: 200 MiB", .pool = "node0"},
      {.host_node = 1,
       .pages = 512,
       .free_pages = 100,
       .what = "guest NUMA node 1: 1024 MiB",
       .pool = "/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages"}};
  auto refused = check_free_hugepages(needs, k2M);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(refused.error().message,
            "host node 1 has 100 free 2 MiB hugepages, the VM needs 512 there (guest NUMA node 1: 1024 MiB); "
            "reserve more (/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages) or give the "
            "VM less memory");
  needs[1].free_pages = 512;
  EXPECT_TRUE(check_free_hugepages(needs, k2M));
  needs[1].free_pages = std::nullopt;  // the kernel does not say: not checked
  needs[1].pages = 1u << 30;
  EXPECT_TRUE(check_free_hugepages(needs, k2M));
}

TEST(FreeHugepages, WithoutANodeTheHostsPoolCounts) {
  auto refused = check_free_hugepages(
      {{.host_node = std::nullopt,
        .pages = 4,
        .free_pages = 3,
        .what = "the guest RAM: 4096 MiB",
        .pool = "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"}},
      k1G);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message,
            "the host has 3 free, unreserved 1 GiB hugepages, the VM needs 4 (the guest RAM: 4096 MiB); reserve more "
            "(/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages) or give the VM less memory");
}

}  // namespace
}  // namespace feos::vmm::qemu
