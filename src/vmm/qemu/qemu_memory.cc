// The adapter's side of guest RAM (memory_backing.h, hugepages.h): the hugetlbfs mount of the
// VM's page size, the free hugepages on the nodes its RAM is bound to, the host facts the
// preallocation threads are sized by, and what a start reports while qemu preallocates.
#include <map>
#include <set>

#include "common/log.h"
#include "model/field_path.h"
#include "vmm/qemu/hugepages.h"
#include "vmm/qemu/memory_backing.h"
#include "vmm/qemu/qemu_hypervisor.h"

namespace feos::vmm::qemu {

uint64_t QemuHypervisor::hugepage_kib(const model::VmSpec& spec) const {
  const uint64_t asked = model::hugepage_size_kib(spec.memory.hugepage_size);
  return asked != 0 ? asked : host_.default_hugepage_kib();
}

Result<HugetlbMount> QemuHypervisor::hugepage_mount(const model::VmSpec& spec) const {
  auto in_field = [](const Error& e) { return e.context(model::field::kMemoryHugepages); };
  const uint64_t page_kib = hugepage_kib(spec);
  FEOS_ASSIGN_OR_RETURN(HugetlbMount mount, pick_hugetlb_mount(host_.hugetlb_mounts(), page_kib).map_error(in_field));
  // A named size was checked by model::validate(); the host's default is known only here.
  if (const uint64_t page_mib = page_kib / 1024; page_mib > 1 && spec.memory.size_mib % page_mib != 0)
    return fail(Code::kInvalidArgument, std::string(model::field::kMemorySizeMib) + ": " +
                                            std::to_string(spec.memory.size_mib) + " MiB is not a whole number of " +
                                            size_text(page_kib) + " hugepages (this host's default size)");
  return mount;
}

Status QemuHypervisor::add_memory_facts(ArgvConfig& config, const model::VmSpec& spec,
                                        const std::vector<model::AssignedGpu>& gpus) const {
  if (spec.memory.hugepages) {
    FEOS_ASSIGN_OR_RETURN(HugetlbMount mount, hugepage_mount(spec));
    config.hugepages_dir = mount.path;
    config.hugepage_kib = mount.page_kib;
  }
  std::set<int> nodes;
  for (const auto& gpu : gpus)
    if (gpu.numa_node >= 0) nodes.insert(gpu.numa_node);
  for (int node : nodes)
    if (auto cpus = host_.node_cpus(node); !cpus.empty()) config.host_node_cpus[node] = std::move(cpus);
  return ok();
}

Result<MemoryPlan> QemuHypervisor::plan_guest_memory(const model::VmSpec& spec,
                                                     const std::vector<model::AssignedGpu>& gpus,
                                                     const ArgvConfig& config) const {
  std::optional<GuestNuma> numa;
  if (config.guest_numa) {
    FEOS_ASSIGN_OR_RETURN(numa, plan_guest_numa(spec, gpus, numa_step_mib(config, spec)));
  }
  MemoryPlan memory = plan_memory(config, spec, numa, !gpus.empty());
  if (!spec.memory.hugepages) return memory;
  const uint64_t page_kib = config.hugepage_kib;
  std::vector<HugepageNeed> needs;
  if (numa) {
    for (size_t i = 0; i < numa->nodes.size(); ++i) {
      const GuestNumaNode& node = numa->nodes[i];
      needs.push_back({.host_node = node.host_node,
                       .pages = node.memory_mib * 1024 / page_kib,
                       .free_pages = host_.free_hugepages(node.host_node, page_kib),
                       .what = "guest NUMA node " + std::to_string(i) + ": " + std::to_string(node.memory_mib) + " MiB",
                       .pool = paths_.node_hugepage_pool(node.host_node, page_kib, "nr_hugepages")});
    }
    // The nodes' free counts include pages other mappings reserved: the host's, less them, must
    // hold the VM too.
    needs.push_back({.host_node = std::nullopt,
                     .pages = spec.memory.size_mib * 1024 / page_kib,
                     .free_pages = host_.free_hugepages(std::nullopt, page_kib),
                     .what = "the guest RAM: " + std::to_string(spec.memory.size_mib) + " MiB",
                     .pool = paths_.hugepage_pool(page_kib, "nr_hugepages")});
  } else {
    // Not bound to a node: any node's pages serve it.
    needs.push_back({.host_node = std::nullopt,
                     .pages = spec.memory.size_mib * 1024 / page_kib,
                     .free_pages = host_.free_hugepages(std::nullopt, page_kib),
                     .what = "the guest RAM: " + std::to_string(spec.memory.size_mib) + " MiB",
                     .pool = paths_.hugepage_pool(page_kib, "nr_hugepages")});
  }
  FEOS_TRY(check_free_hugepages(needs, page_kib).map_error([](const Error& e) {
    return e.context(model::field::kMemoryHugepages);
  }));
  return memory;
}

void QemuHypervisor::set_progress_callback(ProgressCallback callback) {
  std::lock_guard lock(progress_mutex_);
  progress_ = std::move(callback);
}

void QemuHypervisor::report(const std::string& vm_id, const std::string& component, const std::string& text) const {
  log::get("qemu")->info("start progress vm={} {}: {}", vm_id, component, text);
  ProgressCallback callback;
  {
    std::lock_guard lock(progress_mutex_);
    callback = progress_;
  }
  if (callback) callback(vm_id, component, text);
}

}  // namespace feos::vmm::qemu
