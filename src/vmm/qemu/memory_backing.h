#pragma once
// Guest RAM (issue 15, fast start for big guests): where it comes from (anonymous memory, or a
// hugetlbfs mount of the page size the VM asks for), whether qemu touches all of it before the
// guest runs (prealloc) and with how many threads, what a start reports while that runs, and the
// locked-memory limit VFIO needs. Pure: host facts come in through ArgvConfig.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/gpu.h"
#include "model/vm.h"
#include "vmm/qemu/argv_builder.h"
#include "vmm/qemu/guest_numa.h"
#include "vmm/qemu/qemu_options.h"

namespace feos::vmm::qemu {

struct RamBackend {
  std::string id;                 // ram0, or ram-node<i> for guest NUMA node i
  uint64_t size_mib = 0;
  std::optional<int> host_node;   // bound there (host-nodes, policy=bind)
  uint32_t prealloc_threads = 0;  // 0: not preallocated (pages come as the guest touches them)
};

struct MemoryPlan {
  // Empty: plain `-m` (no GPUs, no hugepages, no guest NUMA: pages come as the guest uses them).
  std::vector<RamBackend> backends;
  std::string mem_path;  // the hugetlbfs mount; empty: anonymous memory
  uint64_t page_kib = 4;
  bool pinned = false;  // the VM has GPUs: VFIO pins all of its RAM before the guest runs
  // The host CPUs qemu starts on: those of the nodes its RAM is bound to, so the preallocation
  // threads (and qemu's other threads, until the vCPUs get their own node) touch node-local
  // memory. Empty: anywhere (no binding, or a node whose CPUs are unknown).
  std::vector<int> launch_cpus;
};

// The backends for `spec`: one per guest NUMA node when `numa` is set, else one (ram0) when the
// VM has hugepages or GPUs. Preallocated (prealloc=on) with hugepages (a VM must fail at start,
// not at runtime, when the host runs out of them) and with GPUs: VFIO pins every page at start
// anyway, one thread in the kernel faulting and zeroing them; touched first by qemu's threads,
// the pinning only finds pages that are there. Threads: the vCPUs the backend's node gets (all of
// them without NUMA), at least 1, at most the host node's CPUs when known (qemu itself caps them
// at the host's online CPUs): what the guest will use of the host, no more. They run on the
// nodes' CPUs (launch_cpus): qemu 7.2's thread-context, which would place each backend's threads
// on its own node, needs sched_setaffinity, which the sandbox (resourcecontrol=deny) refuses.
MemoryPlan plan_memory(const ArgvConfig& config, const model::VmSpec& spec, const std::optional<GuestNuma>& numa,
                       bool with_gpus);

// The step a guest NUMA node's RAM share is a multiple of (plan_guest_numa()): the hugepage size
// with hugepages, at least 2 MiB.
uint64_t numa_step_mib(const ArgvConfig& config, const model::VmSpec& spec);

// The -object of one backend: memory-backend-file (mem-path, share=on) or memory-backend-ram.
QemuOpts render_backend(const MemoryPlan& plan, const RamBackend& backend);

// What a start says before it launches qemu, one line per preallocated backend, e.g.
// "preallocating 64 GiB on host node 1 (2 MiB pages, 8 threads; VFIO pins it for the GPUs)";
// empty when nothing is preallocated.
std::vector<std::string> describe_memory(const MemoryPlan& plan);

// How much longer than its start timeout a start may wait for qemu's QMP: qemu answers only
// once every backend is preallocated and VFIO pinned it (2 s per GiB of such RAM; a qemu that
// exits ends the wait anyway).
std::chrono::milliseconds memory_start_allowance(const MemoryPlan& plan);

// RLIMIT_MEMLOCK for the VM's qemu; 0: inherit (nothing is pinned without GPUs; hugetlbfs pages
// are not locked memory). With GPUs: guest RAM + 1 GiB, as libvirt allows
// (qemuDomainGetMemLockLimitBytes without a vIOMMU): VFIO pins all guest RAM for device DMA once,
// since qemu puts every group into one container (one IOMMU address space), plus what qemu maps
// beside it (firmware, option ROMs, the BARs' DMA mappings are MMIO and not pinned RAM).
uint64_t memlock_bytes(const model::VmSpec& spec, const std::vector<model::AssignedGpu>& gpus);

// "4 KiB", "2 MiB", "1 GiB", "64 GiB": a size in KiB as people write it.
std::string size_text(uint64_t kib);

}  // namespace feos::vmm::qemu
