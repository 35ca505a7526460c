// The adapter's side of guest NUMA (guest_numa.h): whether the host nodes have room for a
// layout, and the vCPU threads' affinity to their host node.
#include <map>
#include <vector>

#include "common/log.h"
#include "vmm/qemu/guest_numa.h"
#include "vmm/qemu/memory_backing.h"
#include "vmm/qemu/qemu_hypervisor.h"

namespace feos::vmm::qemu {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("qemu"); }

}  // namespace

Status QemuHypervisor::check_guest_numa(const model::VmSpec& spec, const std::vector<model::AssignedGpu>& gpus,
                                        const ArgvConfig& config) const {
  FEOS_ASSIGN_OR_RETURN(auto numa, plan_guest_numa(spec, gpus, numa_step_mib(config, spec)));
  if (!numa || spec.memory.hugepages) return ok();  // hugepages: check_hugepages()
  std::map<int, HostNodeMemory> host;
  for (const auto& node : numa->nodes) host[node.host_node] = host_.node_memory(node.host_node);
  return check_host_nodes(*numa, false, host);
}

void QemuHypervisor::pin_vcpus(QemuProcess& vm, const std::map<int, int>& vcpu_host_nodes) {
  auto cpus = vm.execute("query-cpus-fast");
  if (!cpus || !cpus->is_array()) {
    logger()->warn("vCPUs not pinned vm={} error=\"query-cpus-fast: {}\"", vm.vm_id(),
                   cpus ? "not a list" : cpus.error().message);
    return;
  }
  std::map<int, std::vector<int>> node_cpus;
  int pinned = 0;
  for (const auto& cpu : *cpus) {
    // qemu's answer is outside data (a guest that took over its qemu writes it): only integers,
    // and only a thread of this qemu, get an affinity.
    if (!cpu.is_object() || !cpu.contains("cpu-index") || !cpu["cpu-index"].is_number_integer() ||
        !cpu.contains("thread-id") || !cpu["thread-id"].is_number_integer())
      continue;
    const int index = cpu["cpu-index"].get<int>();
    const int thread = cpu["thread-id"].get<int>();
    auto node = vcpu_host_nodes.find(index);
    if (node == vcpu_host_nodes.end() || thread <= 0) continue;
    if (!fs_.exists(paths_.process(vm.pid()) + "/task/" + std::to_string(thread))) {
      logger()->warn("vCPU not pinned vm={} cpu={} thread={} error=\"not a thread of qemu pid {}\"", vm.vm_id(),
                     index, thread, vm.pid());
      continue;
    }
    auto [it, added] = node_cpus.try_emplace(node->second);
    if (added) it->second = host_.node_cpus(node->second);
    if (it->second.empty()) {
      logger()->warn("vCPU not pinned vm={} cpu={} host_node={} error=\"the node's CPU list is unknown\"",
                     vm.vm_id(), index, node->second);
      continue;
    }
    if (Status set = launcher_.set_cpu_affinity(thread, it->second); !set) {
      logger()->warn("vCPU not pinned vm={} cpu={} thread={} host_node={} error=\"{}\"", vm.vm_id(), index,
                     thread, node->second, set.error().message);
      continue;
    }
    ++pinned;
  }
  logger()->info("vCPUs pinned to their host NUMA nodes vm={} pinned={} of={}", vm.vm_id(), pinned,
                 vcpu_host_nodes.size());
}

}  // namespace feos::vmm::qemu
