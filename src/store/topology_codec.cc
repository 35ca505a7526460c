#include "store/topology_codec.h"

#include <string>
#include <vector>

namespace feos::store::detail {
namespace {

using nlohmann::json;
using strict_json::ObjectReader;

const char* mode_name(model::GpuP2pMode mode) {
  switch (mode) {
    case model::GpuP2pMode::kAuto: return "auto";
    case model::GpuP2pMode::kOff: return "off";
    case model::GpuP2pMode::kExplicit: return "explicit";
  }
  return "auto";  // unreachable: every enumerator is listed above
}

const char* slot_name(model::GpudirectSlot slot) {
  switch (slot) {
    case model::GpudirectSlot::kUnknown: return "unknown";
    case model::GpudirectSlot::kC8: return "c8";
    case model::GpudirectSlot::kD4: return "d4";
    case model::GpudirectSlot::kNone: return "none";
  }
  return "unknown";  // unreachable
}

Result<pci::Address> parse_address(const std::string& text) { return pci::Address::parse(text); }

Result<std::vector<pci::Address>> clique_from_json(ObjectReader reader) {
  FEOS_ASSIGN_OR_RETURN(auto gpus, reader.strings<pci::Address>("gpus", parse_address));
  FEOS_TRY(reader.finish());
  return gpus;
}

}  // namespace

json gpu_p2p_to_json(const model::GpuP2pSpec& p2p) {
  const auto& [mode, cliques] = p2p;
  json list = json::array();
  for (const auto& clique : cliques) {
    json gpus = json::array();
    for (const auto& address : clique) gpus.push_back(address.to_string());
    list.push_back(json::object({{"gpus", std::move(gpus)}}));
  }
  return json::object({{"mode", mode_name(mode)}, {"cliques", std::move(list)}});
}

Result<model::GpuP2pSpec> gpu_p2p_from_json(ObjectReader reader) {
  model::GpuP2pSpec p2p;
  auto& [mode, cliques] = p2p;
  FEOS_ASSIGN_OR_RETURN(const std::string name, reader.string("mode"));
  bool known = false;
  for (auto value : {model::GpuP2pMode::kAuto, model::GpuP2pMode::kOff, model::GpuP2pMode::kExplicit}) {
    if (name == mode_name(value)) mode = value, known = true;
  }
  if (!known)
    return fail(Code::kInvalidArgument,
                reader.path_of("mode") + ": unknown mode \"" + name + "\" (auto, off or explicit)");
  FEOS_ASSIGN_OR_RETURN(cliques, reader.objects<std::vector<pci::Address>>("cliques", clique_from_json));
  FEOS_TRY(reader.finish());
  return p2p;
}

Result<model::GuestNumaMode> guest_numa_from_json(ObjectReader& reader, std::string_view key) {
  FEOS_ASSIGN_OR_RETURN(const std::string name, reader.string(key));
  for (auto mode : {model::GuestNumaMode::kDefault, model::GuestNumaMode::kAuto, model::GuestNumaMode::kOff}) {
    if (name == model::guest_numa_name(mode)) return mode;
  }
  return fail(Code::kInvalidArgument,
              reader.path_of(key) + ": unknown guest NUMA mode \"" + name + "\" (default, auto or off)");
}

json peer_path_to_json(const model::GpuPeerPath& path) {
  const auto& [pcie_root, pcie_switch, nvlink, cap_slot] = path;
  return json::object({{"pcie_root", pcie_root},
                       {"pcie_switch", pcie_switch ? pcie_switch->to_string() : std::string()},
                       {"nvlink", nvlink},
                       {"cap_slot", slot_name(cap_slot)}});
}

Result<model::GpuPeerPath> peer_path_from_json(ObjectReader reader) {
  model::GpuPeerPath path;
  auto& [pcie_root, pcie_switch, nvlink, cap_slot] = path;
  FEOS_ASSIGN_OR_RETURN(pcie_root, reader.string("pcie_root"));
  FEOS_ASSIGN_OR_RETURN(const std::string switch_text, reader.string("pcie_switch"));
  if (!switch_text.empty()) {
    auto address = pci::Address::parse(switch_text);
    if (!address) return fail(address.error().context(reader.path_of("pcie_switch")));
    pcie_switch = *address;
  }
  FEOS_ASSIGN_OR_RETURN(nvlink, reader.boolean("nvlink"));
  FEOS_ASSIGN_OR_RETURN(const std::string slot, reader.string("cap_slot"));
  bool known = false;
  for (auto value : {model::GpudirectSlot::kUnknown, model::GpudirectSlot::kC8, model::GpudirectSlot::kD4,
                     model::GpudirectSlot::kNone}) {
    if (slot == slot_name(value)) cap_slot = value, known = true;
  }
  if (!known)
    return fail(Code::kInvalidArgument,
                reader.path_of("cap_slot") + ": unknown slot \"" + slot + "\" (unknown, c8, d4 or none)");
  FEOS_TRY(reader.finish());
  return path;
}

}  // namespace feos::store::detail
