// The operator's GPU policy file (hostdev::Policy::parse). Checks: nothing crashes or throws;
// every failure is INVALID_ARGUMENT starting with the file's name; an accepted policy's lists hold
// well-formed values that round-trip, and its decisions follow the documented rules.
#include <algorithm>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "hostdev/policy.h"

using feos::Code;
using feos::hostdev::Policy;

namespace {

constexpr const char* kSource = "/etc/feos/gpu-policy.json";

feos::pci::Device device(const char* bdf, uint16_t vendor, uint16_t id) {
  feos::pci::Device d;
  d.address = *feos::pci::Address::parse(bdf);
  d.vendor_id = vendor;
  d.device_id = id;
  d.class_code = 0x030200;
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto policy = Policy::parse(feos::fuzz::as_text(data, size), kSource);
  if (!policy) {
    feos::fuzz::check_error(policy.error(), Code::kInvalidArgument, "Policy::parse");
    FUZZ_CHECK(policy.error().message.rfind(std::string(kSource) + ": ", 0) == 0,
               "error does not start with the source: %s", policy.error().message.c_str());
    return 0;
  }
  for (const auto& a : policy->allow_addresses()) {
    auto again = feos::pci::Address::parse(a.to_string());
    FUZZ_CHECK(again && *again == a, "listed address %s does not round-trip", a.to_string().c_str());
  }
  for (const auto& id : policy->allow_ids()) {
    auto again = feos::pci::DeviceId::parse(id.to_string());
    FUZZ_CHECK(again && *again == id, "listed id %s does not round-trip", id.to_string().c_str());
  }
  (void)policy->describe();

  const bool lists_empty = policy->allow_addresses().empty() && policy->allow_ids().empty();
  const feos::pci::Device h100 = device("0000:18:00.0", 0x10de, 0x2330);
  auto listed = [&](const feos::pci::Device& d) {
    const auto& addresses = policy->allow_addresses();
    const auto& ids = policy->allow_ids();
    return std::find(addresses.begin(), addresses.end(), d.address) != addresses.end() ||
           std::find(ids.begin(), ids.end(), feos::pci::DeviceId{d.vendor_id, d.device_id}) != ids.end();
  };
  FUZZ_CHECK(policy->allows_gpu(h100) == (lists_empty || listed(h100)), "allows_gpu breaks the rule");
  FUZZ_CHECK(policy->allows_group_peer(h100) ==
                 (policy->allow_group_peers() && (lists_empty || listed(h100))),
             "allows_group_peer breaks the rule");
  // Every listed address is allowed as a GPU.
  for (const auto& a : policy->allow_addresses()) {
    feos::pci::Device d = h100;
    d.address = a;
    FUZZ_CHECK(policy->allows_gpu(d), "listed %s not allowed", a.to_string().c_str());
  }
  return 0;
}
