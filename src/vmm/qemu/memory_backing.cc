#include "vmm/qemu/memory_backing.h"

#include <algorithm>

#include "common/text.h"
#include "vmm/qemu/mmio_layout.h"

namespace feos::vmm::qemu {
namespace {

// How long a start may wait per GiB of preallocated or pinned RAM beyond its start timeout.
constexpr std::chrono::milliseconds kAllowancePerGib{2000};

uint32_t threads_for(uint64_t vcpus, std::optional<uint32_t> host_cpus) {
  uint64_t threads = std::max<uint64_t>(vcpus, 1);
  if (host_cpus && *host_cpus > 0) threads = std::min<uint64_t>(threads, *host_cpus);
  return static_cast<uint32_t>(threads);
}

}  // namespace

std::string size_text(uint64_t kib) {
  constexpr uint64_t kMib = 1024, kGib = 1024 * 1024;
  if (kib >= kGib && kib % kGib == 0) return std::to_string(kib / kGib) + " GiB";
  if (kib >= kMib && kib % kMib == 0) return std::to_string(kib / kMib) + " MiB";
  return std::to_string(kib) + " KiB";
}

MemoryPlan plan_memory(const ArgvConfig& config, const model::VmSpec& spec, const std::optional<GuestNuma>& numa,
                       bool with_gpus) {
  MemoryPlan plan;
  const bool hugepages = spec.memory.hugepages;
  if (hugepages) {
    plan.mem_path = config.hugepages_dir;
    plan.page_kib = config.hugepage_kib;
  }
  plan.pinned = with_gpus;
  const bool prealloc = hugepages || with_gpus;
  if (numa) {
    bool all_nodes_known = true;
    for (size_t i = 0; i < numa->nodes.size(); ++i) {
      const GuestNumaNode& node = numa->nodes[i];
      auto cpus = config.host_node_cpus.find(node.host_node);
      const bool known = cpus != config.host_node_cpus.end() && !cpus->second.empty();
      plan.backends.push_back(
          {.id = "ram-node" + std::to_string(i),
           .size_mib = node.memory_mib,
           .host_node = node.host_node,
           .prealloc_threads =
               prealloc ? threads_for(node.cpus, known ? std::optional<uint32_t>(cpus->second.size()) : std::nullopt)
                        : 0});
      if (!known) all_nodes_known = false;
      else plan.launch_cpus.insert(plan.launch_cpus.end(), cpus->second.begin(), cpus->second.end());
    }
    if (!all_nodes_known) plan.launch_cpus.clear();
    std::sort(plan.launch_cpus.begin(), plan.launch_cpus.end());
    plan.launch_cpus.erase(std::unique(plan.launch_cpus.begin(), plan.launch_cpus.end()), plan.launch_cpus.end());
  } else if (prealloc) {
    plan.backends.push_back({.id = "ram0",
                             .size_mib = spec.memory.size_mib,
                             .host_node = std::nullopt,
                             .prealloc_threads = threads_for(spec.cpus.boot_vcpus, std::nullopt)});
  }
  return plan;
}

uint64_t numa_step_mib(const ArgvConfig& config, const model::VmSpec& spec) {
  return spec.memory.hugepages ? std::max<uint64_t>(config.hugepage_kib / 1024, 2) : 2;
}

QemuOpts render_backend(const MemoryPlan& plan, const RamBackend& backend) {
  const bool file = !plan.mem_path.empty();
  QemuOpts out(file ? "memory-backend-file" : "memory-backend-ram");
  out.set("id", backend.id).set("size", std::to_string(backend.size_mib) + "M");
  // Shared, so later vfio-user and vhost-user processes can map the same pages.
  if (file) out.set("mem-path", plan.mem_path).set("share", "on");
  if (backend.prealloc_threads > 0)
    out.set("prealloc", "on").set("prealloc-threads", std::to_string(backend.prealloc_threads));
  if (backend.host_node) out.set("host-nodes", std::to_string(*backend.host_node)).set("policy", "bind");
  return out;
}

std::vector<std::string> describe_memory(const MemoryPlan& plan) {
  std::vector<std::string> lines;
  for (const RamBackend& backend : plan.backends) {
    if (backend.prealloc_threads == 0) continue;
    lines.push_back("preallocating " + size_text(backend.size_mib * 1024) +
                    (backend.host_node ? " on host node " + std::to_string(*backend.host_node) : std::string()) +
                    " (" + size_text(plan.page_kib) + " pages, " + std::to_string(backend.prealloc_threads) +
                    (backend.prealloc_threads == 1 ? " thread" : " threads") +
                    (plan.launch_cpus.empty() ? "" : " on host CPUs " + cpu_list_text(plan.launch_cpus)) +
                    (plan.pinned ? "; VFIO pins it for the GPUs)" : ")"));
  }
  return lines;
}

std::chrono::milliseconds memory_start_allowance(const MemoryPlan& plan) {
  uint64_t mib = 0;
  for (const RamBackend& backend : plan.backends)
    if (backend.prealloc_threads > 0 || plan.pinned) mib += backend.size_mib;
  // Whole GiB, rounded up: a 512 MiB VM gets 2 s.
  return kAllowancePerGib * static_cast<int64_t>((mib + 1023) / 1024);
}

uint64_t memlock_bytes(const model::VmSpec& spec, const std::vector<model::AssignedGpu>& gpus) {
  return gpus.empty() ? 0 : spec.memory.size_mib * kMiB + kGiB;
}

}  // namespace feos::vmm::qemu
