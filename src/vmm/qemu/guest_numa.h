#pragma once
// The guest's NUMA nodes, mirroring the host nodes of its GPUs (issue 15): NCCL and CUDA pick CPUs
// and memory by the node the kernel reports for each GPU, and a GPU's DMA is fastest to memory on
// its own host node. Pure: host facts come in as arguments.
//
// One guest node per host node that holds a GPU of the VM, in host node order. Each guest node:
//   - its share of guest RAM, bound to its host node (a memory backend with host-nodes and
//     policy=bind; from hugetlbfs when the VM asks for hugepages);
//   - its share of the vCPUs (contiguous indices; CPUs hot-pluggable later go to the last node;
//     with fewer vCPUs than nodes, one each to the nodes with the most GPUs, the others have
//     memory and GPUs but no vCPU, as a CPU-less node of a real host);
//   - a pxb-pcie expander bus with numa_node=<guest node>, carrying the root ports of its GPUs
//     (and of their group peers and NVSwitches), so the guest kernel reports each GPU's node.
// Shares follow the GPUs: a node with 6 of 8 GPUs gets 6/8 of the RAM and vCPUs (RAM in steps
// of 2 MiB, or of the hugepage size; each node at least one vCPU when there are enough).
// GPUs whose host node is unknown (-1) stay on pcie.0 and add no node; a VM with none known gets
// no NUMA layout at all.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/gpu.h"
#include "model/vm.h"

namespace feos::vmm::qemu {

struct GuestNumaNode {
  int host_node = 0;
  uint32_t first_cpu = 0, cpus = 0;  // vCPU indices first_cpu .. first_cpu + cpus - 1; 0: none
  uint64_t memory_mib = 0;
  std::vector<size_t> gpus;  // indices into the VM's GPUs
  std::string bus;           // the pxb-pcie's id: feos-numa<guest node>
  int bus_nr = 0;            // its first bus number
};

struct GuestNuma {
  std::vector<GuestNumaNode> nodes;  // by guest node id
  // The bus each GPU's root ports hang off: a node's pxb-pcie, or pcie.0.
  std::vector<std::string> gpu_bus;
};

// The layout for `spec` with `gpus`; nullopt when no GPU has a known host node. Errors:
// INVALID_ARGUMENT naming memory.size_mib when a node's share would be under 2 MiB, or when the
// GPUs span more host nodes than a guest mirrors (8).
// Each node's RAM share is a multiple of `step_mib` (numa_step_mib()).
Result<std::optional<GuestNuma>> plan_guest_numa(const model::VmSpec& spec,
                                                 const std::vector<model::AssignedGpu>& gpus,
                                                 uint64_t step_mib = 2);

// What a host node can give a guest node's RAM: its free memory as the kernel counts it (free,
// page cache and reclaimable slab: what a bound allocation can get), or with hugepages its free
// hugepages; `known` false when the host does not say (then it is not checked).
struct HostNodeMemory {
  bool known = false;
  uint64_t available_mib = 0;
  std::string what;  // how available_mib was counted: "1000 MiB free + 900 MiB page cache + ..."
};

// Refuses up front a layout whose guest node needs more than its host node has, with
// FAILED_PRECONDITION naming the guest node, the host node and the numbers (the first such node).
Status check_host_nodes(const GuestNuma& numa, bool hugepages, const std::map<int, HostNodeMemory>& host);

// "0-3", "4": the node's vCPU indices as -numa cpus= takes them; only for a node with vCPUs.
std::string cpu_range(const GuestNumaNode& node);

// "guest node 0 = host node 1: vCPUs 0-3, 8192 MiB, GPUs 0000:9a:00.0, 0000:ab:00.0".
std::string describe(const GuestNumaNode& node, int guest_node, const std::vector<model::AssignedGpu>& gpus);

}  // namespace feos::vmm::qemu
