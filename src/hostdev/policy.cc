#include "hostdev/policy.h"

#include <algorithm>
#include <utility>

#include "common/strict_json.h"

namespace feos::hostdev {
namespace {

using strict_json::json;

// Reads the policy object (all keys optional). Errors name the field, without the source.
Result<Policy> read_policy(const json& object) {
  // Type names only in messages ("got number"): operators read them next to their own file.
  FEOS_ASSIGN_OR_RETURN(auto reader,
                        strict_json::ObjectReader::open(object, "", strict_json::Naming::kType));
  FEOS_TRY(reader.only_keys({"allow_addresses", "allow_ids", "allow_group_peers"}));
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
  return Policy(std::move(addresses), std::move(ids), peers);
}

}  // namespace

Policy::Policy(std::vector<pci::Address> allow_addresses, std::vector<pci::DeviceId> allow_ids,
               bool allow_group_peers)
    : allow_addresses_(std::move(allow_addresses)),
      allow_ids_(std::move(allow_ids)),
      allow_group_peers_(allow_group_peers) {}

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
  if (allow_addresses_.empty() && allow_ids_.empty()) {
    return "default (display/3D devices and their companion functions; " + peers + ")";
  }
  return std::to_string(allow_addresses_.size()) + " address(es), " +
         std::to_string(allow_ids_.size()) + " id(s); " + peers;
}

}  // namespace feos::hostdev
