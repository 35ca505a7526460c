#pragma once
// The host facts the QEMU adapter reads: the CPU's physical address bits, the host's RAM, its
// NUMA nodes, and whether kvm can be used.
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "sys/filesystem.h"
#include "sys/host_paths.h"
#include "vmm/qemu/guest_numa.h"
#include "vmm/qemu/hugepages.h"

namespace feos::vmm::qemu {

// The "MemTotal:" of /proc/meminfo text in MiB; 0 when there is no such line or it does not parse.
uint64_t host_memory_mib_from_meminfo(std::string_view meminfo);

// The physical address bits in /proc/cpuinfo text (the first "address sizes : 46 bits physical,
// 57 bits virtual" line); 0 when there is no such line or it does not parse.
int host_phys_bits_from_cpuinfo(std::string_view cpuinfo);

// The numbers a kernel CPU or node list names ("0-3,8": 0 1 2 3 8); nullopt when it does not
// parse.
std::optional<std::vector<int>> parse_cpu_list(std::string_view list);
// How many nodes a kernel node list names ("0-1", "0,2-3": 2 and 3); 0 when it does not parse.
int count_node_list(std::string_view list);

// The value in kB of `key` ("MemFree") in a /proc/meminfo or per-node meminfo text ("Node 0
// MemFree:   123 kB"); nullopt when absent or malformed.
std::optional<uint64_t> meminfo_kib(std::string_view meminfo, std::string_view key);

// Why accel "auto" cannot pick kvm here; nullopt when it can: <dev>/kvm opens read-write and a
// hardware virtualization module (<sysfs>/module/kvm_intel or kvm_amd) is loaded. kvm_pvm (KVM on
// CPUs without VT-x or AMD-V, as in some nested clouds) makes <dev>/kvm too, but runs only guest
// kernels built for it: an ordinary guest hangs there without a word.
std::optional<std::string> kvm_unusable_reason(const sys::HostPaths& paths);

// Reads the facts through the Filesystem seam, anew on each call (they are cheap and a test may
// change them).
class HostCaps {
 public:
  // `fs` must outlive this object.
  HostCaps(const sys::Filesystem& fs, sys::HostPaths paths) : fs_(fs), paths_(std::move(paths)) {}

  // The CPU's physical address bits from <proc>/cpuinfo; 0 when unknown (logged as a warning).
  int phys_bits() const;
  // The host's RAM from <proc>/meminfo in MiB; 0 when unknown.
  uint64_t memory_mib() const;
  // The online NUMA nodes (<sysfs>/devices/system/node/online); 1 when the file is missing (a
  // kernel without NUMA) or does not parse.
  int numa_nodes() const;
  // What host NUMA node `node` can give a guest's RAM of normal pages (guest_numa.h): from
  // <sysfs>/devices/system/node/node<N>/meminfo; unknown when it says nothing. (Hugepages:
  // free_hugepages().)
  HostNodeMemory node_memory(int node) const;
  // The default hugepage size in KiB (<proc>/meminfo "Hugepagesize:"); 0 when unknown.
  uint64_t default_hugepage_kib() const;
  // The writable hugetlbfs mounts (<proc>/mounts; parse_hugetlb_mounts()); empty when unreadable.
  std::vector<HugetlbMount> hugetlb_mounts() const;
  // The free hugepages of `page_kib` on host node `node`
  // (<sysfs>/devices/system/node/node<N>/hugepages/...), or on the whole host without a node
  // (<sysfs>/kernel/mm/hugepages/...) less those already reserved for mappings not yet touched
  // (resv_hugepages: still counted free, but promised; the kernel keeps that count for the whole
  // host only); nullopt when the kernel does not say.
  std::optional<uint64_t> free_hugepages(std::optional<int> node, uint64_t page_kib) const;
  // The CPUs of host NUMA node `node` (<sysfs>/devices/system/node/node<N>/cpulist); empty when
  // unknown.
  std::vector<int> node_cpus(int node) const;

 private:
  const sys::Filesystem& fs_;
  const sys::HostPaths paths_;
};

}  // namespace feos::vmm::qemu
