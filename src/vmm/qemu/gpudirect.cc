#include "vmm/qemu/gpudirect.h"

#include <map>

#include "model/field_path.h"
#include "model/limits.h"

namespace feos::vmm::qemu {
namespace {

std::string list(const std::vector<model::AssignedGpu>& gpus, const std::vector<size_t>& members) {
  std::string out;
  for (size_t i : members) out += (out.empty() ? "" : ", ") + gpus[i].request.address.to_string();
  return out;
}

// Why the capability cannot go into `gpu`'s config space with this QEMU; "" when it can (or the
// slot is not known: records from before it was read, where QEMU itself decides).
std::string no_room(const model::AssignedGpu& gpu, bool qemu_takes_d4) {
  switch (gpu.peer_path.cap_slot) {
    case model::GpudirectSlot::kNone:
      return "its config space holds capabilities at both C8h and D4h, the two places the GPUDirect capability may go";
    case model::GpudirectSlot::kD4:
      if (qemu_takes_d4) return "";
      return "its MSI-X capability holds C8h and this QEMU places the GPUDirect capability only there (QEMU 8.1 "
             "and newer fall back to D4h)";
    case model::GpudirectSlot::kC8:
    case model::GpudirectSlot::kUnknown: return "";
  }
  return "";
}

// How the GPUs of one root bus reach each other, for the decision.
std::string path_words(const std::vector<model::AssignedGpu>& gpus, const std::vector<size_t>& members) {
  const auto& first = gpus[members.front()].peer_path;
  bool one_switch = first.pcie_switch.has_value();
  for (size_t i : members) one_switch = one_switch && gpus[i].peer_path.pcie_switch == first.pcie_switch;
  if (one_switch) return "under the PCIe switch at " + first.pcie_switch->to_string();
  return "on root bus " + first.pcie_root + " (one root complex)";
}

Result<GpudirectPlan> explicit_cliques(const model::GpuP2pSpec& p2p, const std::vector<model::AssignedGpu>& gpus,
                                       bool qemu_takes_d4) {
  GpudirectPlan plan;
  plan.clique.assign(gpus.size(), std::nullopt);
  for (size_t c = 0; c < p2p.cliques.size(); ++c) {
    const std::string field = model::field::element(model::field::kGpuP2pCliques, c);
    std::vector<size_t> members;
    for (const pci::Address& address : p2p.cliques[c]) {
      size_t i = 0;
      while (i < gpus.size() && !gpus[i].request.address.same_slot(address)) ++i;
      if (i == gpus.size())
        return fail(Code::kInvalidArgument, field + ": " + address.to_string() + " is not one of the VM's GPUs");
      if (!is_nvidia_gpu(gpus[i]))
        return fail(Code::kInvalidArgument,
                    field + ": " + address.to_string() + " (" +
                        (gpus[i].functions.empty() ? std::string("?") : gpus[i].functions[0].id) +
                        ") is not an NVIDIA GPU: GPUDirect cliques are NVIDIA's (QEMU refuses "
                        "x-nv-gpudirect-clique on other devices)");
      if (std::string why = no_room(gpus[i], qemu_takes_d4); !why.empty())
        return fail(Code::kFailedPrecondition, field + ": " + address.to_string() + " cannot carry a clique: " + why);
      plan.clique[i] = static_cast<int>(c);
      members.push_back(i);
    }
    plan.decisions.push_back("GPUDirect clique " + std::to_string(c) + ": " + list(gpus, members) +
                             " (gpu_p2p explicit)");
  }
  return plan;
}

}  // namespace

bool is_nvidia_gpu(const model::AssignedGpu& gpu) {
  if (gpu.functions.empty()) return false;
  const auto& f = gpu.functions.front();
  const bool nvidia = f.id.size() >= 5 && (f.id.compare(0, 5, "10de:") == 0 || f.id.compare(0, 5, "10DE:") == 0);
  return nvidia && (f.class_code >> 16) == 0x03;
}

Result<GpudirectPlan> plan_gpudirect(const model::GpuP2pSpec& p2p, const std::vector<model::AssignedGpu>& gpus,
                                     bool qemu_takes_d4) {
  if (p2p.mode == model::GpuP2pMode::kExplicit) return explicit_cliques(p2p, gpus, qemu_takes_d4);
  GpudirectPlan plan;
  plan.clique.assign(gpus.size(), std::nullopt);
  if (gpus.size() < 2) return plan;  // one GPU has no peer: nothing to say
  if (p2p.mode == model::GpuP2pMode::kOff) {
    plan.decisions.push_back("GPUDirect cliques: none (gpu_p2p off)");
    return plan;
  }
  // The GPUs of each root bus, in the order of their first GPU.
  std::vector<std::string> order;
  std::map<std::string, std::vector<size_t>> by_domain;
  std::vector<size_t> nvlink;
  for (size_t i = 0; i < gpus.size(); ++i) {
    if (!is_nvidia_gpu(gpus[i])) continue;
    if (gpus[i].peer_path.nvlink) {
      nvlink.push_back(i);
      continue;
    }
    const std::string domain = model::p2p_domain(true, gpus[i].peer_path);
    if (domain.empty()) continue;
    if (std::string why = no_room(gpus[i], qemu_takes_d4); !why.empty()) {
      plan.decisions.push_back("GPUDirect: " + gpus[i].request.address.to_string() + " gets no clique: " + why);
      continue;
    }
    auto [it, added] = by_domain.try_emplace(domain);
    if (added) order.push_back(domain);
    it->second.push_back(i);
  }
  if (!nvlink.empty())
    plan.decisions.push_back("GPUDirect: " + list(gpus, nvlink) +
                             " are joined by NVLink through the board's NVSwitches: no clique needed");
  int next = 0;
  for (const auto& domain : order) {
    const auto& members = by_domain[domain];
    if (members.size() < 2) continue;
    if (next == static_cast<int>(model::kMaxGpudirectCliques)) {
      plan.decisions.push_back("GPUDirect: " + list(gpus, members) + " get no clique: all 16 ids are taken");
      continue;
    }
    for (size_t i : members) plan.clique[i] = next;
    plan.decisions.push_back("GPUDirect clique " + std::to_string(next) + ": " + list(gpus, members) + " (" +
                             path_words(gpus, members) + ")");
    ++next;
  }
  return plan;
}

}  // namespace feos::vmm::qemu
