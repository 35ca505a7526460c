// The NVSwitch fabric rules of planning (policy.h, "NVSwitch fabric"): a whole board with its
// NVSwitches, or exactly one partition of the host's fabric manager.
#include <algorithm>
#include <set>

#include "hostdev/planning.h"

namespace feos::hostdev::detail {
namespace {

std::string address_list(const std::vector<pci::Address>& addresses) {
  std::string out;
  for (const auto& a : addresses) out += (out.empty() ? "" : ", ") + a.to_string();
  return out;
}

// Shared mode: the request's board GPUs must be exactly one partition of the policy.
tl::expected<FabricPart, Problem> check_partition(const Policy& policy,
                                                  const std::vector<pci::Address>& board,
                                                  std::vector<std::string>& decisions) {
  for (const auto& partition : policy.nvswitch_partitions()) {
    if (partition.size() != board.size()) continue;
    const bool same = std::all_of(partition.begin(), partition.end(), [&](const pci::Address& p) {
      return std::any_of(board.begin(), board.end(), [&](const pci::Address& b) { return b.same_slot(p); });
    });
    if (!same) continue;
    decisions.push_back(address_list(board) + ": NVSwitch partition [" + address_list(partition) +
                        "] (nvswitch_mode shared: the NVSwitches stay with the host's fabric manager, "
                        "which must have this partition activated)");
    return FabricPart{};
  }
  return problem(Code::kFailedPrecondition,
                 address_list(board) + (board.size() == 1 ? " is" : " are") +
                     " not one NVSwitch partition (nvswitch_mode shared: a VM's GPUs of the board must "
                     "be exactly one partition activated in the host's fabric manager; partitions: " +
                     policy.describe_partitions() + ")",
                 "not one NVSwitch partition");
}

// Full passthrough: every board GPU, and then every function of the NVSwitches' IOMMU groups.
tl::expected<FabricPart, Problem> whole_board(PlanContext& context, const Fabric& fabric,
                                              const std::vector<pci::Address>& board, size_t owner,
                                              std::vector<std::string>& decisions) {
  if (board.size() < fabric.gpus.size()) {
    const std::string mode = context.policy().nvswitch_mode() == NvSwitchMode::kUnset
                                 ? "no nvswitch_mode set"
                                 : "nvswitch_mode full-passthrough";
    return tl::unexpected<Problem>(Problem{partial_board_error(fabric, context.policy(), board.front().to_string()),
                                           "part of an NVSwitch board (" + mode + ": all " +
                                               std::to_string(fabric.gpus.size()) + " GPUs or none)"});
  }
  FabricPart part{.owner = owner, .devices = {}};
  std::set<pci::Address> seen;
  std::set<pci::IommuGroup> groups;
  for (const pci::Device* sw : fabric.nvswitches) {
    if (!sw->iommu_group)
      return problem(Code::kFailedPrecondition,
                     "NVSwitch " + sw->address.to_string() + " has no IOMMU group: the fabric cannot be passed",
                     "NVSwitch without an IOMMU group");
    if (!groups.insert(*sw->iommu_group).second) continue;
    auto members = context.view().group_members(*sw->iommu_group);
    if (!members) return problem(members.error());
    for (const auto& member : *members) {
      auto device = context.view().device(member);
      if (!device) {
        if (device.error().code == Code::kNotFound) continue;  // unplugged meanwhile
        return problem(device.error());
      }
      if ((*device)->is_pci_bridge() || !seen.insert(member).second) continue;
      if ((*device)->boot_vga.value_or(false))
        return problem(Code::kFailedPrecondition,
                       "IOMMU group " + sw->iommu_group->to_string() + " of NVSwitch " + sw->address.to_string() +
                           " also holds the host's boot VGA device " + member.to_string(),
                       "NVSwitch group holds the boot VGA");
      part.devices.push_back(*device);
    }
  }
  std::sort(part.devices.begin(), part.devices.end(),
            [](const pci::Device* a, const pci::Device* b) { return a->address < b->address; });
  std::vector<pci::Address> addresses;
  for (const pci::Device* d : part.devices) addresses.push_back(d->address);
  decisions.push_back("the VM takes all " + std::to_string(fabric.gpus.size()) + " GPUs of the board, so its " +
                      fabric.describe() + " go along (" +
                      (context.policy().nvswitch_mode() == NvSwitchMode::kUnset ? "no nvswitch_mode set"
                                                                                 : "nvswitch_mode full-passthrough") +
                      "; the guest runs the fabric manager): " + address_list(addresses));
  return part;
}

}  // namespace

// The fabric rules for a VM's request (policy.h, "NVSwitch fabric").
tl::expected<FabricPart, Problem> fabric_part(PlanContext& context, const std::vector<pci::Address>& requested,
                                              std::vector<std::string>& decisions) {
  auto fabric = context.fabric();
  if (!fabric) return problem(fabric.error());
  if (!(*fabric)->present()) return FabricPart{};
  std::vector<pci::Address> board;
  std::optional<size_t> owner;
  for (size_t i = 0; i < requested.size(); ++i) {
    if (!(*fabric)->is_board_gpu(requested[i])) continue;
    if (!owner) owner = i;
    board.push_back(requested[i]);
  }
  if (board.empty()) return FabricPart{};  // other vendors' GPUs: no fabric of theirs
  if (context.policy().nvswitch_mode() == NvSwitchMode::kShared) return check_partition(context.policy(), board, decisions);
  return whole_board(context, **fabric, board, *owner, decisions);
}



bool Fabric::is_board_gpu(const pci::Address& address) const {
  return std::any_of(gpus.begin(), gpus.end(), [&](const pci::Address& gpu) { return gpu.same_slot(address); });
}

std::string Fabric::describe() const {
  std::set<std::string> ids;
  std::set<pci::IommuGroup> groups;
  for (const pci::Device* sw : nvswitches) {
    ids.insert(sw->id());
    if (sw->iommu_group) groups.insert(*sw->iommu_group);
  }
  std::string detail;
  for (const auto& id : ids) detail += (detail.empty() ? "" : ", ") + id;
  std::string group_list;
  for (const auto& group : groups) group_list += (group_list.empty() ? "" : ", ") + group.to_string();
  if (!groups.empty()) detail += (groups.size() == 1 ? ", IOMMU group " : ", IOMMU groups ") + group_list;
  return std::to_string(nvswitches.size()) + (nvswitches.size() == 1 ? " NVSwitch (" : " NVSwitches (") + detail +
         ")";
}

Error partial_board_error(const Fabric& fabric, const Policy& policy, const std::string& who) {
  const std::string n = std::to_string(fabric.gpus.size());
  const std::string mode = policy.nvswitch_mode() == NvSwitchMode::kUnset
                               ? "no nvswitch_mode set: full-board VMs only"
                               : "nvswitch_mode full-passthrough";
  return Error{Code::kFailedPrecondition,
               who + ": this host's " + n + " GPUs are joined by " + fabric.describe() +
                   " and the fabric is passed whole (" + mode + "): a VM with fewer than all " + n +
                   " GPUs would fail CUDA with error 802 (system not ready). Ask for all " + n + " (gpu_count " +
                   n + "), or run the fabric manager on the host in shared-NVSwitch mode and list its "
                   "partitions in the policy (nvswitch_mode shared, nvswitch_partitions)"};
}

}  // namespace feos::hostdev::detail
