#include "hostdev/policy.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

namespace feos::hostdev {
namespace {

using nlohmann::json;

// Reads a JSON array of strings at `key`, converting each with `parse_one`.
template <typename T, typename Parse>
Result<std::vector<T>> string_list(const json& object, const char* key, const std::string& where,
                                   Parse parse_one) {
  std::vector<T> out;
  auto it = object.find(key);
  if (it == object.end()) return out;
  if (!it->is_array()) {
    return fail(Code::kInvalidArgument,
                where + ": " + key + ": expected an array of strings, got " + it->type_name());
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const json& item = (*it)[i];
    const std::string field = std::string(key) + "[" + std::to_string(i) + "]";
    if (!item.is_string()) {
      return fail(Code::kInvalidArgument,
                  where + ": " + field + ": expected a string, got " + item.type_name());
    }
    auto parsed = parse_one(item.get_ref<const std::string&>());
    if (!parsed) {
      return fail(Code::kInvalidArgument, where + ": " + field + ": " + parsed.error().message);
    }
    out.push_back(*parsed);
  }
  return out;
}

}  // namespace

Policy::Policy(std::vector<pci::Address> allow_addresses, std::vector<pci::DeviceId> allow_ids,
               bool allow_group_peers)
    : allow_addresses_(std::move(allow_addresses)),
      allow_ids_(std::move(allow_ids)),
      allow_group_peers_(allow_group_peers) {}

Result<Policy> Policy::parse(std::string_view text, std::string_view source) {
  const std::string where(source);
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    // e.what() carries "parse error at line L, column C: ...". A number too large for a double
    // ("1e999") is an out_of_range, not a parse_error: catch every json exception.
    return fail(Code::kInvalidArgument, where + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) {
    return fail(Code::kInvalidArgument,
                where + ": expected a JSON object, got " + std::string(j.type_name()));
  }
  for (const auto& item : j.items()) {
    const std::string& key = item.key();
    if (key != "allow_addresses" && key != "allow_ids" && key != "allow_group_peers") {
      return fail(Code::kInvalidArgument,
                  where + ": unknown field " + pci::quote_for_message(key) +
                      " (known: allow_addresses, allow_ids, allow_group_peers)");
    }
  }
  auto addresses = string_list<pci::Address>(j, "allow_addresses", where,
                                              [](const std::string& s) { return pci::Address::parse(s); });
  if (!addresses) return fail(addresses.error());
  auto ids = string_list<pci::DeviceId>(j, "allow_ids", where,
                                        [](const std::string& s) { return pci::DeviceId::parse(s); });
  if (!ids) return fail(ids.error());
  bool peers = false;
  if (auto it = j.find("allow_group_peers"); it != j.end()) {
    if (!it->is_boolean()) {
      return fail(Code::kInvalidArgument, where + ": allow_group_peers: expected a boolean, got " +
                                              std::string(it->type_name()));
    }
    peers = it->get<bool>();
  }
  return Policy(std::move(*addresses), std::move(*ids), peers);
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
