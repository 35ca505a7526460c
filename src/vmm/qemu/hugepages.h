#pragma once
// The host's hugepages as a VM's RAM sees them (issue 15): which hugetlbfs mount serves a page
// size, and whether the free pages of that size on the right host node hold the VM. Pure: the
// adapter reads /proc/mounts and sysfs through the filesystem seam (HostCaps) and passes the text
// and numbers in.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace feos::vmm::qemu {

struct HugetlbMount {
  std::string path;
  uint64_t page_kib = 0;
};

// The writable hugetlbfs mounts in /proc/mounts text, in its order, each with its page size: its
// pagesize= option ("2M", "1024M", "1G", "64K": the kernel prints the largest unit that divides
// it), else `default_page_kib` (kernels before 4.x printed none for the default size; 0: such a
// mount is left out). Mount points come unescaped (the kernel writes a space as \040).
std::vector<HugetlbMount> parse_hugetlb_mounts(std::string_view mounts, uint64_t default_page_kib);

// The first mount of `page_kib` pages. FAILED_PRECONDITION naming the size, the mounts there are
// and how to add one, when none serves it (or no size is known: `page_kib` 0).
Result<HugetlbMount> pick_hugetlb_mount(const std::vector<HugetlbMount>& mounts, uint64_t page_kib);

// What a VM needs of one host node's hugepages (or of the host's, `host_node` unset: RAM not
// bound to a node), and what is free there (unset: the kernel does not say; not checked).
struct HugepageNeed {
  std::optional<int> host_node;
  uint64_t pages = 0;
  std::optional<uint64_t> free_pages;
  std::string what;  // whose RAM: "guest NUMA node 0: 4096 MiB", "the guest RAM: 4096 MiB"
  std::string pool;  // the sysfs file that reserves more: .../hugepages-2048kB/nr_hugepages
};

// FAILED_PRECONDITION for the first need the free pages do not hold, e.g. "host node 1 has 100
// free 2 MiB hugepages, the VM needs 512 there (guest NUMA node 0: 1024 MiB)" and what to do
// ("the host has 100 free, unreserved ..." for a need of the whole host).
Status check_free_hugepages(const std::vector<HugepageNeed>& needs, uint64_t page_kib);

}  // namespace feos::vmm::qemu
