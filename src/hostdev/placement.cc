#include "hostdev/placement.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "model/field_path.h"

namespace feos::hostdev::detail {
namespace {

struct Candidate {
  pci::Address address;
  int node = -1;                      // NUMA node, -1 unknown
  std::optional<pci::Address> under;  // the PCIe switch (upstream port) above it
};

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string node_name(int node) { return node < 0 ? "no NUMA node" : "node " + std::to_string(node); }

// "0000:18:00.0, 0000:2a:00.0 on node 0; 0000:9a:00.0 on node 1".
std::string by_node_text(const std::vector<Candidate>& candidates) {
  std::map<int, std::string> lists;
  for (const auto& c : candidates) {
    std::string& list = lists[c.node];
    list += (list.empty() ? "" : ", ") + c.address.to_string();
  }
  std::string out;
  for (const auto& [node, list] : lists) out += (out.empty() ? "" : "; ") + list + " on " + node_name(node);
  return out;
}

// Takes `want` GPUs of one node's candidates (address order), keeping those under one PCIe switch
// together: the smallest switch group that holds what is still wanted, else the largest group.
std::vector<const Candidate*> take_by_switch(const std::vector<const Candidate*>& pool, size_t want) {
  std::vector<std::vector<const Candidate*>> groups;
  std::map<pci::Address, size_t> group_of_switch;
  for (const Candidate* c : pool) {
    if (!c->under) {
      groups.push_back({c});  // alone: no switch to share
      continue;
    }
    auto [it, added] = group_of_switch.emplace(*c->under, groups.size());
    if (added) groups.emplace_back();
    groups[it->second].push_back(c);
  }
  std::vector<const Candidate*> taken;
  std::vector<bool> used(groups.size(), false);
  while (taken.size() < want) {
    const size_t remaining = want - taken.size();
    std::optional<size_t> best_fit, largest;
    for (size_t g = 0; g < groups.size(); ++g) {
      if (used[g]) continue;
      const size_t size = groups[g].size();
      if (size >= remaining && (!best_fit || size < groups[*best_fit].size())) best_fit = g;
      if (!largest || size > groups[*largest].size()) largest = g;
    }
    const size_t g = best_fit ? *best_fit : *largest;  // the pool holds `want`: one exists
    used[g] = true;
    for (const Candidate* c : groups[g])
      if (taken.size() < want) taken.push_back(c);
  }
  std::sort(taken.begin(), taken.end(), [](const Candidate* a, const Candidate* b) { return a->address < b->address; });
  return taken;
}

// The fewest free GPUs under one PCIe switch of `pool` that still number `want`; 0 when no switch
// has that many.
size_t tightest_switch(const std::vector<const Candidate*>& pool, size_t want) {
  std::map<pci::Address, size_t> per_switch;
  for (const Candidate* c : pool)
    if (c->under) ++per_switch[*c->under];
  size_t best = 0;
  for (const auto& [sw, n] : per_switch)
    if (n >= want && (best == 0 || n < best)) best = n;
  return best;
}

// Why a board GPU is not a candidate: "0000:18:00.0 held by vm X", "... not assignable".
std::string not_free(const pci::Address& gpu, const std::map<pci::Address, std::string>& ledger,
                     const std::set<std::string>& taken_slots) {
  if (auto held = ledger.find(gpu); held != ledger.end()) return gpu.to_string() + " held by vm " + held->second;
  if (taken_slots.count(gpu.slot())) return gpu.to_string() + " named by address in this request";
  return gpu.to_string() + " not assignable";
}

bool is_candidate(const pci::Address& gpu, const std::vector<Candidate>& candidates) {
  return std::any_of(candidates.begin(), candidates.end(), [&](const Candidate& c) { return c.address.same_slot(gpu); });
}

// Full passthrough: the count must make the whole board, whose GPUs must all be free.
Result<Placement> place_whole_board(const PlanContext& context, const Fabric& fabric, const model::GpuCount& request,
                                    const std::set<std::string>& taken_slots,
                                    const std::vector<Candidate>& candidates,
                                    const std::map<pci::Address, std::string>& ledger) {
  size_t taken_on_board = 0;
  for (const auto& gpu : fabric.gpus) taken_on_board += taken_slots.count(gpu.slot());
  if (request.count + taken_on_board != fabric.gpus.size())
    return fail(partial_board_error(fabric, context.policy(), std::string(model::field::kGpuCount)));
  Placement placement;
  std::string busy, list;
  for (const auto& gpu : fabric.gpus) {
    if (taken_slots.count(gpu.slot())) continue;
    if (!is_candidate(gpu, candidates)) {
      busy += (busy.empty() ? "" : ", ") + not_free(gpu, ledger, taken_slots);
      continue;
    }
    placement.gpus.push_back(model::GpuSpec{.address = gpu});
    list += (list.empty() ? "" : ", ") + gpu.to_string();
  }
  if (!busy.empty())
    return fail(Code::kResourceExhausted,
                std::string(model::field::kGpuCount) + ": " + std::to_string(request.count) +
                    " GPU(s) asked: the whole NVSwitch board, which is not free: " + busy);
  placement.decisions.push_back("gpu_count: the whole board's " +
                                std::to_string(placement.gpus.size()) +
                                " GPU(s), which its NVSwitch fabric joins (passed with them): " + list);
  return placement;
}

// Shared NVSwitches: the first partition of the asked size (policy order) whose GPUs are all free.
Result<Placement> place_partition(const PlanContext& context, const Fabric& fabric, const model::GpuCount& request,
                                  const std::set<std::string>& taken_slots,
                                  const std::vector<Candidate>& candidates,
                                  const std::map<pci::Address, std::string>& ledger) {
  const Policy& policy = context.policy();
  const std::string field(model::field::kGpuCount);
  std::string held;  // "[a, b] (a held by vm X)" per partition of the size
  bool sized = false;
  for (const auto& partition : policy.nvswitch_partitions()) {
    if (partition.size() != request.count) continue;
    sized = true;
    std::string busy, list;
    for (const auto& gpu : partition) {
      list += (list.empty() ? "" : ", ") + gpu.to_string();
      if (taken_slots.count(gpu.slot()) || !is_candidate(gpu, candidates) || !fabric.is_board_gpu(gpu))
        busy += (busy.empty() ? "" : ", ") +
                (fabric.is_board_gpu(gpu) ? not_free(gpu, ledger, taken_slots) : gpu.to_string() + " not a GPU here");
    }
    if (busy.empty()) {
      Placement placement;
      for (const auto& gpu : partition) placement.gpus.push_back(model::GpuSpec{.address = gpu});
      placement.decisions.push_back("gpu_count: NVSwitch partition [" + list + "], the first free one of " +
                                    std::to_string(request.count) + " GPU(s) (nvswitch_mode shared)");
      return placement;
    }
    held += (held.empty() ? "[" : "; [") + list + "] (" + busy + ")";
  }
  if (!sized)
    return fail(Code::kFailedPrecondition,
                field + ": no NVSwitch partition holds " + std::to_string(request.count) +
                    " GPU(s) (nvswitch_mode shared: a VM's GPUs are one partition; partitions: " +
                    policy.describe_partitions() + ")");
  return fail(Code::kResourceExhausted, field + ": " + std::to_string(request.count) +
                                            " GPU(s) asked, no NVSwitch partition of that size is free "
                                            "(nvswitch_mode shared): " + held);
}

}  // namespace

bool matches_model(const pci::Device& device, const std::string& model, const pci::PciIds* ids) {
  if (model.empty()) return true;
  if (auto id = pci::DeviceId::parse(model)) return id->vendor == device.vendor_id && id->device == device.device_id;
  if (ids == nullptr) return false;
  auto name = ids->device(device.vendor_id, device.device_id);
  return name && lower(*name).find(lower(model)) != std::string::npos;
}

Result<Placement> place_gpus(PlanContext& context, const model::GpuCount& request,
                             const std::vector<model::GpuSpec>& taken) {
  const pci::PciIds* ids = context.options().pci_ids.get();
  FEOS_ASSIGN_OR_RETURN(const auto* ledger, context.ledger());
  std::set<std::string> taken_slots;
  for (const auto& gpu : taken) taken_slots.insert(gpu.address.slot());

  // The GPU of each slot: its lowest display function (the map is sorted by address).
  std::map<std::string, const pci::Device*> gpu_of_slot;
  for (const auto& [address, device] : context.view().devices())
    if (device.is_display()) gpu_of_slot.emplace(address.slot(), &device);

  const std::string what = "GPU(s)" + (request.model.empty() ? std::string() : " of model \"" + request.model + "\"");
  std::map<std::string, int> models_here;  // "10de:2330" -> count, for a model that matches nothing
  size_t matching = 0, held = 0, unassignable = 0;
  std::vector<Candidate> candidates;
  for (const auto& [slot, device] : gpu_of_slot) {
    ++models_here[device->id()];
    if (!matches_model(*device, request.model, ids)) continue;
    ++matching;
    if (taken_slots.count(slot)) continue;
    if (ledger->count(device->address)) {
      ++held;
      continue;
    }
    if (!make_plan(context, {model::GpuSpec{.address = device->address}}, PlanScope::kOneGpu)) {
      ++unassignable;
      continue;
    }
    // load_all() read (and cached) every function's place in the PCIe tree.
    const auto& topologies = context.view().topologies();
    auto topology = topologies.find(device->address);
    candidates.push_back({device->address, device->numa_node,
                          topology != topologies.end() ? topology->second.switch_upstream : std::nullopt});
  }
  if (matching == 0) {
    std::string here;
    for (const auto& [id, count] : models_here) here += (here.empty() ? "" : ", ") + id + " x" + std::to_string(count);
    return fail(Code::kNotFound, std::string(model::field::kGpuModel) + ": no GPU on this host matches \"" +
                                     request.model + "\" (GPUs here: " + (here.empty() ? "none" : here) + ")");
  }
  // An HGX board's GPUs go by its NVSwitch fabric: the whole board, or one partition.
  FEOS_ASSIGN_OR_RETURN(const Fabric* fabric, context.fabric());
  const bool on_board = std::any_of(fabric->gpus.begin(), fabric->gpus.end(), [&](const pci::Address& gpu) {
    return matches_model(context.view().devices().at(gpu), request.model, ids);
  });
  if (on_board) {
    if (context.policy().nvswitch_mode() == NvSwitchMode::kShared)
      return place_partition(context, *fabric, request, taken_slots, candidates, *ledger);
    return place_whole_board(context, *fabric, request, taken_slots, candidates, *ledger);
  }
  if (candidates.size() < request.count) {
    return fail(Code::kResourceExhausted,
                std::string(model::field::kGpuCount) + ": " + std::to_string(request.count) + " " + what +
                    " asked, " + std::to_string(candidates.size()) + " free" +
                    (candidates.empty() ? "" : ": " + by_node_text(candidates)) + " (" +
                    std::to_string(held) + " held by VMs, " + std::to_string(unassignable) +
                    " not assignable" + (taken.empty() ? "" : ", the VM's own not counted") + ")");
  }

  // The nodes: one that holds the request (the tightest fit; with p2p, one whose PCIe switch
  // holds it all first), else the fewest, largest first.
  std::map<int, std::vector<const Candidate*>> by_node;
  for (const auto& c : candidates) by_node[c.node].push_back(&c);
  const bool p2p_pick = request.p2p && request.count > 1;
  auto switch_fit = [&](int node) { return p2p_pick ? tightest_switch(by_node[node], request.count) : 0; };
  auto fits_better = [&](int node, int than) {
    const size_t a = switch_fit(node), b = switch_fit(than);
    if ((a != 0) != (b != 0)) return a != 0;
    if (a != b) return a < b;
    return by_node[node].size() < by_node[than].size();
  };
  std::vector<int> nodes;
  std::optional<int> fit;
  for (const auto& [node, list] : by_node)
    if (list.size() >= request.count && (!fit || fits_better(node, *fit))) fit = node;
  if (fit) {
    nodes.push_back(*fit);
  } else {
    for (const auto& [node, list] : by_node) nodes.push_back(node);
    std::stable_sort(nodes.begin(), nodes.end(),
                     [&](int a, int b) { return by_node[a].size() > by_node[b].size(); });
  }

  Placement placement;
  std::vector<const Candidate*> picked;
  for (int node : nodes) {
    if (picked.size() == request.count) break;
    const auto& pool = by_node[node];
    const size_t want = std::min(pool.size(), request.count - picked.size());
    std::vector<const Candidate*> from_node;
    if (request.p2p) from_node = take_by_switch(pool, want);
    else from_node.assign(pool.begin(), pool.begin() + static_cast<long>(want));
    std::string list;
    for (const Candidate* c : from_node) list += (list.empty() ? "" : ", ") + c->address.to_string();
    placement.decisions.push_back("gpu_count: " + std::to_string(from_node.size()) + " " + what + " on " +
                                  node_name(node) + " (" + std::to_string(pool.size()) + " free there" +
                                  (!fit                ? ""
                                   : switch_fit(node) != 0 ? ", the node with the tightest PCIe switch that holds all"
                                                           : ", the tightest node that holds all") +
                                  "): " + list);
    picked.insert(picked.end(), from_node.begin(), from_node.end());
  }
  if (request.p2p) {
    std::map<pci::Address, int> per_switch;
    for (const Candidate* c : picked)
      if (c->under) ++per_switch[*c->under];
    std::string shared;
    for (const auto& [sw, n] : per_switch)
      if (n > 1) shared += (shared.empty() ? "" : ", ") + std::to_string(n) + " under the switch at " + sw.to_string();
    placement.decisions.push_back("gpu_count: p2p asked: " + (shared.empty() ? std::string("no two free GPUs share a PCIe switch") : shared));
  }
  for (const Candidate* c : picked) placement.gpus.push_back(model::GpuSpec{.address = c->address});
  return placement;
}

}  // namespace feos::hostdev::detail
