#include "vmm/qemu/guest_numa.h"

#include <algorithm>
#include <map>

#include "model/field_path.h"

namespace feos::vmm::qemu {
namespace {

// Bus numbers: pcie.0 and its root ports below 0x80; each expander bus gets 16, enough for a
// node's root ports (8 GPUs and 4 NVSwitches take 12).
constexpr int kFirstBusNr = 0x80, kBusesPerNode = 0x10, kMaxNodes = 8;

// Splits `total` by `weights`: shares proportional to the weights, rounded down to `step`, then
// what rounding left a step at a time to the heaviest shares first (ties: the lower index), and
// the last part smaller than a step to the heaviest.
std::vector<uint64_t> split(uint64_t total, const std::vector<size_t>& weights, uint64_t step) {
  size_t sum = 0;
  for (size_t w : weights) sum += w;
  std::vector<uint64_t> shares;
  uint64_t given = 0;
  for (size_t w : weights) {
    uint64_t share = total * w / sum / step * step;
    shares.push_back(share);
    given += share;
  }
  std::vector<size_t> order(weights.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return weights[a] > weights[b]; });
  for (size_t k = 0; given + step <= total; k = (k + 1) % order.size()) {
    shares[order[k]] += step;
    given += step;
  }
  shares[order[0]] += total - given;  // less than a step
  return shares;
}

}  // namespace

Result<std::optional<GuestNuma>> plan_guest_numa(const model::VmSpec& spec,
                                                 const std::vector<model::AssignedGpu>& gpus,
                                                 uint64_t step_mib) {
  // A hugetlbfs backend must be whole pages (qemu refuses it otherwise).
  const uint64_t step = std::max<uint64_t>(step_mib, 1);
  std::map<int, std::vector<size_t>> by_host_node;
  for (size_t i = 0; i < gpus.size(); ++i)
    if (gpus[i].numa_node >= 0) by_host_node[gpus[i].numa_node].push_back(i);
  if (by_host_node.empty()) return std::optional<GuestNuma>();
  const size_t count = by_host_node.size();
  if (count > static_cast<size_t>(kMaxNodes))
    return fail(Code::kInvalidArgument, "the GPUs sit on " + std::to_string(count) +
                                            " host NUMA nodes; a guest mirrors at most " +
                                            std::to_string(kMaxNodes));
  if (spec.memory.size_mib < count * step)
    return fail(Code::kInvalidArgument, std::string(model::field::kMemorySizeMib) + ": " +
                                            std::to_string(spec.memory.size_mib) + " MiB cannot be split over " +
                                            std::to_string(count) + " NUMA nodes");

  std::vector<size_t> weights;
  for (const auto& [node, list] : by_host_node) weights.push_back(list.size());
  // One vCPU each first, the rest by weight; with fewer vCPUs than nodes, one each to the nodes
  // with the most GPUs.
  std::vector<uint64_t> cpus(count, 0);
  if (spec.cpus.boot_vcpus >= count) {
    cpus = split(spec.cpus.boot_vcpus - count, weights, 1);
    for (auto& share : cpus) ++share;
  } else {
    std::vector<size_t> order(count);
    for (size_t k = 0; k < count; ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return weights[a] > weights[b]; });
    for (size_t k = 0; k < spec.cpus.boot_vcpus; ++k) cpus[order[k]] = 1;
  }
  cpus.back() += spec.cpus.max_vcpus - spec.cpus.boot_vcpus;  // CPUs plugged later join the last node
  std::vector<uint64_t> memory = split(spec.memory.size_mib, weights, step);

  for (size_t k = 0; k < count; ++k)
    if (memory[k] == 0)
      return fail(Code::kInvalidArgument, std::string(model::field::kMemorySizeMib) + ": " +
                                              std::to_string(spec.memory.size_mib) +
                                              " MiB leaves a NUMA node of the guest without memory");
  GuestNuma numa;
  numa.gpu_bus.assign(gpus.size(), "pcie.0");
  uint32_t next_cpu = 0;
  size_t i = 0;
  for (const auto& [host_node, list] : by_host_node) {
    GuestNumaNode node;
    node.host_node = host_node;
    node.first_cpu = next_cpu;
    node.cpus = static_cast<uint32_t>(cpus[i]);
    next_cpu += node.cpus;
    node.memory_mib = memory[i];
    node.gpus = list;
    node.bus = "feos-numa" + std::to_string(i);
    node.bus_nr = kFirstBusNr + kBusesPerNode * static_cast<int>(i);
    for (size_t gpu : list) numa.gpu_bus[gpu] = node.bus;
    numa.nodes.push_back(std::move(node));
    ++i;
  }
  return std::optional<GuestNuma>(std::move(numa));
}

std::string cpu_range(const GuestNumaNode& node) {
  const uint32_t last = node.first_cpu + node.cpus - 1;
  return std::to_string(node.first_cpu) + (last != node.first_cpu ? "-" + std::to_string(last) : std::string());
}

Status check_host_nodes(const GuestNuma& numa, bool hugepages, const std::map<int, HostNodeMemory>& host) {
  for (size_t i = 0; i < numa.nodes.size(); ++i) {
    const GuestNumaNode& node = numa.nodes[i];
    auto it = host.find(node.host_node);
    if (it == host.end() || !it->second.known || node.memory_mib <= it->second.available_mib) continue;
    return fail(Code::kFailedPrecondition,
                "guest NUMA node " + std::to_string(i) + " needs " + std::to_string(node.memory_mib) + " MiB " +
                    (hugepages ? "of hugepages " : "") + "bound to host node " + std::to_string(node.host_node) +
                    " (the node of its GPUs), which has " + std::to_string(it->second.available_mib) +
                    " MiB (" + it->second.what + "); give the VM less memory, free memory on that node, or "
                    "start feosd with --guest-numa=off");
  }
  return ok();
}

std::string describe(const GuestNumaNode& node, int guest_node, const std::vector<model::AssignedGpu>& gpus) {
  std::string out = "guest node " + std::to_string(guest_node) + " = host node " + std::to_string(node.host_node) +
                    ": " + (node.cpus == 0 ? std::string("no vCPUs") : "vCPUs " + cpu_range(node)) + ", " +
                    std::to_string(node.memory_mib) + " MiB bound there, GPU(s) ";
  for (size_t k = 0; k < node.gpus.size(); ++k)
    out += (k ? ", " : "") + gpus[node.gpus[k]].request.address.to_string();
  return out;
}

}  // namespace feos::vmm::qemu
