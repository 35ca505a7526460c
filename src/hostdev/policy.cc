#include "hostdev/policy.h"

#include <algorithm>
#include <set>
#include <utility>

#include "common/strict_json.h"

namespace feos::hostdev {
namespace {

using strict_json::json;

Result<NvSwitchMode> read_mode(strict_json::ObjectReader& reader) {
  FEOS_ASSIGN_OR_RETURN(const std::string mode, reader.string("nvswitch_mode"));
  for (NvSwitchMode m : {NvSwitchMode::kFullPassthrough, NvSwitchMode::kShared})
    if (mode == nvswitch_mode_name(m)) return m;
  return fail(Code::kInvalidArgument, "nvswitch_mode: " + quote_for_message(mode) +
                                          " is not a mode (expected \"full-passthrough\" or \"shared\")");
}

// One partition: an array of GPU addresses of 1, 2, 4 or 8 GPUs, none in an earlier partition.
Result<NvSwitchPartition> read_partition(const json& item, const std::string& where,
                                         std::set<pci::Address>& seen) {
  if (!item.is_array())
    return fail(Code::kInvalidArgument,
                strict_json::at_path(where, "expected an array of GPU addresses, got " +
                                                strict_json::describe(item, strict_json::Naming::kType)));
  NvSwitchPartition partition;
  for (size_t i = 0; i < item.size(); ++i) {
    const std::string at = strict_json::item_path(where, i);
    if (!item[i].is_string())
      return fail(Code::kInvalidArgument,
                  strict_json::at_path(at, "expected a string, got " +
                                               strict_json::describe(item[i], strict_json::Naming::kType)));
    auto address = pci::Address::parse(item[i].get_ref<const std::string&>());
    if (!address) return fail(Code::kInvalidArgument, strict_json::at_path(at, address.error().message));
    if (!seen.insert(*address).second)
      return fail(Code::kInvalidArgument,
                  strict_json::at_path(at, address->to_string() + " is already in an earlier partition "
                                                                  "(a GPU belongs to one partition)"));
    partition.push_back(*address);
  }
  const size_t n = partition.size();
  if (n != 1 && n != 2 && n != 4 && n != 8)
    return fail(Code::kInvalidArgument,
                strict_json::at_path(where, std::to_string(n) +
                                                " GPUs (a partition holds 1, 2, 4 or 8, as the fabric "
                                                "manager's partitions do)"));
  return partition;
}

// nvswitch_mode and nvswitch_partitions; partitions only with mode "shared".
Result<NvSwitchPolicy> read_nvswitch(strict_json::ObjectReader& reader) {
  NvSwitchPolicy out;
  if (reader.has("nvswitch_mode")) {
    FEOS_ASSIGN_OR_RETURN(out.mode, read_mode(reader));
  }
  if (!reader.has("nvswitch_partitions")) return out;
  if (out.mode != NvSwitchMode::kShared)
    return fail(Code::kInvalidArgument,
                std::string("nvswitch_partitions: only with \"nvswitch_mode\": \"shared\" (") +
                    (out.mode == NvSwitchMode::kUnset ? "no nvswitch_mode is set"
                                                      : "nvswitch_mode is full-passthrough, which passes "
                                                        "the whole board to one VM") +
                    ")");
  FEOS_ASSIGN_OR_RETURN(const json* list, reader.array("nvswitch_partitions"));
  std::set<pci::Address> seen;
  for (size_t i = 0; i < list->size(); ++i) {
    FEOS_ASSIGN_OR_RETURN(NvSwitchPartition partition,
                          read_partition((*list)[i], strict_json::item_path("nvswitch_partitions", i), seen));
    out.partitions.push_back(std::move(partition));
  }
  return out;
}

// Reads the policy object (all keys optional). Errors name the field, without the source.
Result<Policy> read_policy(const json& object) {
  // Type names only in messages ("got number"): operators read them next to their own file.
  FEOS_ASSIGN_OR_RETURN(auto reader,
                        strict_json::ObjectReader::open(object, "", strict_json::Naming::kType));
  FEOS_TRY(reader.only_keys({"allow_addresses", "allow_ids", "allow_group_peers", "nvswitch_mode",
                             "nvswitch_partitions"}));
  std::vector<pci::Address> addresses;
  if (reader.has("allow_addresses")) {
    FEOS_ASSIGN_OR_RETURN(addresses,
                          reader.strings<pci::Address>("allow_addresses", [](const std::string& s) {
                            return pci::Address::parse(s);
                          }));
  }
  std::vector<pci::DeviceId> ids;
  if (reader.has("allow_ids")) {
    FEOS_ASSIGN_OR_RETURN(ids, reader.strings<pci::DeviceId>("allow_ids", [](const std::string& s) {
      return pci::DeviceId::parse(s);
    }));
  }
  bool peers = false;
  if (reader.has("allow_group_peers")) {
    FEOS_ASSIGN_OR_RETURN(peers, reader.boolean("allow_group_peers"));
  }
  FEOS_ASSIGN_OR_RETURN(NvSwitchPolicy nvswitch, read_nvswitch(reader));
  return Policy(std::move(addresses), std::move(ids), peers, std::move(nvswitch));
}

}  // namespace

std::string_view nvswitch_mode_name(NvSwitchMode mode) {
  switch (mode) {
    case NvSwitchMode::kUnset: return "unset";
    case NvSwitchMode::kFullPassthrough: return "full-passthrough";
    case NvSwitchMode::kShared: return "shared";
  }
  return "unset";  // unreachable: every enumerator is listed above
}

Policy::Policy(std::vector<pci::Address> allow_addresses, std::vector<pci::DeviceId> allow_ids,
               bool allow_group_peers, NvSwitchPolicy nvswitch)
    : allow_addresses_(std::move(allow_addresses)),
      allow_ids_(std::move(allow_ids)),
      allow_group_peers_(allow_group_peers),
      nvswitch_(std::move(nvswitch)) {}

Result<Policy> Policy::parse(std::string_view text, std::string_view source) {
  const std::string where(source);
  FEOS_ASSIGN_OR_RETURN(const json j, strict_json::parse(text, where));
  if (!j.is_object()) {
    return fail(Code::kInvalidArgument,
                where + ": expected a JSON object, got " + std::string(j.type_name()));
  }
  auto policy = read_policy(j);
  if (!policy) return fail(policy.error().context(where));
  return policy;
}

Result<Policy> Policy::load(const sys::Filesystem& fs, const std::string& path) {
  auto text = fs.read_file(path);
  if (!text) return fail(text.error().context("read GPU policy " + path));
  return parse(*text, path);
}

bool Policy::listed(const pci::Device& device) const {
  if (std::find(allow_addresses_.begin(), allow_addresses_.end(), device.address) !=
      allow_addresses_.end()) {
    return true;
  }
  const pci::DeviceId id{device.vendor_id, device.device_id};
  return std::find(allow_ids_.begin(), allow_ids_.end(), id) != allow_ids_.end();
}

bool Policy::allows_gpu(const pci::Device& gpu) const {
  if (allow_addresses_.empty() && allow_ids_.empty()) return true;
  return listed(gpu);
}

bool Policy::allows_group_peer(const pci::Device& peer) const {
  if (!allow_group_peers_) return false;
  if (allow_addresses_.empty() && allow_ids_.empty()) return true;
  return listed(peer);
}

std::string Policy::describe() const {
  std::string peers = allow_group_peers_ ? "group peers allowed" : "no group peers";
  std::string fabric;
  if (nvswitch_.mode == NvSwitchMode::kFullPassthrough) fabric = "; nvswitch_mode full-passthrough";
  if (nvswitch_.mode == NvSwitchMode::kShared)
    fabric = "; nvswitch_mode shared, " + std::to_string(nvswitch_.partitions.size()) + " partition" +
             (nvswitch_.partitions.size() == 1 ? "" : "s");
  if (allow_addresses_.empty() && allow_ids_.empty()) {
    return "default (display/3D devices and their companion functions; " + peers + ")" + fabric;
  }
  return std::to_string(allow_addresses_.size()) + " address(es), " +
         std::to_string(allow_ids_.size()) + " id(s); " + peers + fabric;
}

std::string Policy::describe_partitions(size_t size) const {
  std::string out;
  for (const auto& partition : nvswitch_.partitions) {
    if (size != 0 && partition.size() != size) continue;
    std::string list;
    for (const auto& gpu : partition) list += (list.empty() ? "" : ", ") + gpu.to_string();
    out += (out.empty() ? "[" : ", [") + list + "]";
  }
  return out.empty() ? "none" : out;
}

}  // namespace feos::hostdev
