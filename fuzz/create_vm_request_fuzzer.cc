// CreateVm requests as a client sends them: wire bytes -> CreateVmRequest -> the checks VmService
// and VmManager run before anything touches the host, in their order:
//   api::spec_from_proto and model::VmId::parse on the given id (VmService::CreateVm),
//   core::normalize_spec, model::validate (QemuHypervisor::validate minus its file existence
//   checks), and hostdev planning's first step (each card once; addresses are parsed by the first).
// Checks: nothing crashes; refusals use the documented codes; an accepted spec satisfies what
// the rest of the daemon relies on (vCPU and memory bounds, something to boot, an absolute image
// path without "..", unique well-formed device ids, canonical GPU addresses, no NUL in anything
// that becomes an argument) and survives the daemon's own round trips unchanged: the store's JSON
// codec (VmManager::create persists it) and the API conversion back (GetVm returns it).
#include <cstdint>
#include <set>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "api/convert.h"
#include "core/vm_config.h"
#include "feos/vm/vmm/api/v1/vm.pb.h"
#include "fuzz_check.h"
#include "model/limits.h"
#include "model/validate.h"
#include "model/vm_id.h"
#include "pci/address.h"
#include "store/spec_codec.h"

using feos::Code;
using feos::model::VmSpec;

namespace {

namespace pb = ::feos::vm::vmm::api::v1;

// The id VmManager would generate; fixed so runs are reproducible (VmId::random() is random).
constexpr const char* kGeneratedId = "123e4567-e89b-42d3-a456-426614174000";

void expect_code(const feos::Error& e, std::initializer_list<Code> codes, const char* step) {
  bool known = false;
  for (Code c : codes) known = known || e.code == c;
  FUZZ_CHECK(known, "%s: unexpected code %s: %s", step, std::string(feos::code_name(e.code)).c_str(),
             e.message.c_str());
  FUZZ_CHECK(!e.message.empty(), "%s: empty message", step);
}

bool same(const VmSpec& a, const VmSpec& b) {
  // Lists every member, so a new VmSpec field fails to compile here until it is compared too.
  const auto& [cpus, memory, image_ref, image_path, image_format, disks, nets, ignition, boot, gpus,
               firmware, gpu_count, gpu_p2p, guest_numa] = a;
  if (gpu_p2p != b.gpu_p2p || guest_numa != b.guest_numa) return false;
  if (firmware.kind != b.firmware.kind || firmware.secure_boot != b.firmware.secure_boot) return false;
  if (gpu_count != b.gpu_count) return false;
  if (cpus.boot_vcpus != b.cpus.boot_vcpus || cpus.max_vcpus != b.cpus.max_vcpus) return false;
  if (memory.size_mib != b.memory.size_mib || memory.hugepages != b.memory.hugepages ||
      memory.hugepage_size != b.memory.hugepage_size)
    return false;
  if (image_ref != b.image_ref || image_path != b.image_path || image_format != b.image_format ||
      ignition != b.ignition)
    return false;
  if (boot.kernel != b.boot.kernel || boot.initramfs != b.boot.initramfs || boot.cmdline != b.boot.cmdline)
    return false;
  if (disks.size() != b.disks.size() || nets.size() != b.nets.size() || gpus.size() != b.gpus.size())
    return false;
  for (size_t i = 0; i < disks.size(); ++i)
    if (disks[i].device_id != b.disks[i].device_id || disks[i].path != b.disks[i].path ||
        disks[i].readonly != b.disks[i].readonly || disks[i].format != b.disks[i].format)
      return false;
  for (size_t i = 0; i < nets.size(); ++i)
    if (nets[i].device_id != b.nets[i].device_id || nets[i].tap_name != b.nets[i].tap_name ||
        nets[i].mac != b.nets[i].mac || nets[i].tap_created != b.nets[i].tap_created)
      return false;
  for (size_t i = 0; i < gpus.size(); ++i)
    if (gpus[i].address != b.gpus[i].address || gpus[i].rombar != b.gpus[i].rombar ||
        gpus[i].boot_vga != b.gpus[i].boot_vga)
      return false;
  return true;
}

bool has_nul(const std::string& s) { return s.find('\0') != std::string::npos; }

void check_accepted(const VmSpec& spec) {
  FUZZ_CHECK(spec.cpus.boot_vcpus >= 1 && spec.cpus.boot_vcpus <= spec.cpus.max_vcpus &&
                 spec.cpus.max_vcpus <= feos::model::kMaxVcpus,
             "vcpus %u/%u", spec.cpus.boot_vcpus, spec.cpus.max_vcpus);
  FUZZ_CHECK(spec.memory.size_mib >= 1 && spec.memory.size_mib <= feos::model::kMaxMemoryMib,
             "memory %llu MiB", static_cast<unsigned long long>(spec.memory.size_mib));
  FUZZ_CHECK(!spec.image_path.empty() || !spec.boot.kernel.empty(), "nothing to boot");
  FUZZ_CHECK(spec.disks.size() <= feos::model::kMaxDisks && spec.nets.size() <= feos::model::kMaxNics &&
                 spec.gpus.size() <= feos::model::kMaxGpus,
             "%zu disks, %zu NICs, %zu GPUs", spec.disks.size(), spec.nets.size(), spec.gpus.size());
  FUZZ_CHECK(!spec.ignition || spec.ignition->size() <= feos::model::kMaxIgnition, "ignition of %zu bytes",
             spec.ignition->size());
  if (!spec.image_path.empty()) {
    FUZZ_CHECK(spec.image_path[0] == '/', "relative image path '%s'", spec.image_path.c_str());
    FUZZ_CHECK(spec.image_path.find("/../") == std::string::npos &&
                   !spec.image_path.ends_with("/.."),
               "image path '%s' climbs", spec.image_path.c_str());
  }
  FUZZ_CHECK(spec.boot.cmdline.size() <= feos::model::kMaxKernelCmdline, "cmdline %zu bytes",
             spec.boot.cmdline.size());
  FUZZ_CHECK(!has_nul(spec.image_path) && !has_nul(spec.boot.kernel) && !has_nul(spec.boot.initramfs) &&
                 !has_nul(spec.boot.cmdline),
             "NUL in a boot argument");
  std::set<std::string> ids;
  for (const auto& d : spec.disks) {
    FUZZ_CHECK(feos::model::validate_device_id(d.device_id, "disk").has_value(), "bad disk id accepted");
    FUZZ_CHECK(ids.insert(d.device_id).second, "duplicate id '%s' accepted", d.device_id.c_str());
    FUZZ_CHECK(!d.path.empty() && !has_nul(d.path), "bad disk path accepted");
  }
  for (const auto& n : spec.nets) {
    FUZZ_CHECK(feos::model::validate_device_id(n.device_id, "net").has_value(), "bad net id accepted");
    FUZZ_CHECK(ids.insert(n.device_id).second, "duplicate id '%s' accepted", n.device_id.c_str());
    FUZZ_CHECK(!n.tap_name.empty() && n.tap_name.size() <= feos::model::kMaxTapName && !has_nul(n.tap_name), "bad tap name");
    FUZZ_CHECK(n.mac.empty() || feos::model::validate_mac(n.mac, "mac").has_value(), "bad MAC accepted");
  }
}

// hostdev planning, step 1 (make_plan): each card named once. Addresses are values since
// spec_from_proto; their canonical text must parse back to the same value.
bool gpu_addresses_accepted(const VmSpec& spec) {
  std::vector<feos::pci::Address> seen;
  for (const auto& gpu : spec.gpus) {
    const feos::pci::Address& address = gpu.address;
    for (const auto& other : seen)
      if (other.same_slot(address)) return false;  // refused: one card named twice
    auto again = feos::pci::Address::parse(address.to_string());
    FUZZ_CHECK(again && *again == address, "GPU address %s does not re-parse",
               address.to_string().c_str());
    seen.push_back(address);
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Bytes that are not valid UTF-8 in a string field make protobuf log an error per input.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pb::CreateVmRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;

  auto spec = feos::api::spec_from_proto(request.config());
  if (!spec) {
    expect_code(spec.error(), {Code::kInvalidArgument, Code::kUnimplemented}, "spec_from_proto");
    return 0;
  }
  const std::string vm_id = request.has_vm_id() ? request.vm_id() : kGeneratedId;
  auto parsed_id = feos::model::VmId::parse(vm_id);
  if (!parsed_id) {
    expect_code(parsed_id.error(), {Code::kInvalidArgument}, "VmId::parse");
    return 0;
  }
  // The stored form becomes a directory name: 36 characters of lower-case hex digits and dashes.
  const std::string stored_id = parsed_id->canonical().text();
  FUZZ_CHECK(stored_id.size() == 36 && stored_id.find_first_not_of("0123456789abcdef-") == std::string::npos,
             "stored id %s", stored_id.c_str());
  auto normalized = feos::core::normalize_spec(*spec);
  if (!normalized) {
    expect_code(normalized.error(), {Code::kInvalidArgument, Code::kUnimplemented}, "normalize_spec");
    return 0;
  }
  if (auto valid = feos::model::validate(*normalized); !valid) {
    expect_code(valid.error(), {Code::kInvalidArgument}, "model::validate");
    return 0;
  }
  check_accepted(*normalized);
  if (!gpu_addresses_accepted(*normalized)) return 0;

  // VmManager::create stores the spec; what is read back must be the same spec.
  auto encoded = feos::store::encode_spec(*normalized);
  FUZZ_CHECK(encoded.has_value(), "accepted spec does not encode: %s", encoded.error().message.c_str());
  auto decoded = feos::store::decode_spec(*encoded);
  FUZZ_CHECK(decoded.has_value(), "stored spec does not decode: %s", decoded.error().message.c_str());
  FUZZ_CHECK(same(*decoded, *normalized), "stored spec differs after decoding: %s", encoded->c_str());

  // GetVm returns the config; sending it back must give the same spec.
  pb::VmConfig returned = feos::api::spec_to_proto(*normalized);
  std::string wire;
  FUZZ_CHECK(returned.SerializeToString(&wire), "returned config does not serialize");
  pb::VmConfig resent;
  FUZZ_CHECK(resent.ParseFromString(wire), "returned config does not parse");
  auto again = feos::api::spec_from_proto(resent);
  FUZZ_CHECK(again.has_value(), "returned config refused: %s", again.error().message.c_str());
  auto again_normalized = feos::core::normalize_spec(*again);
  FUZZ_CHECK(again_normalized.has_value() && same(*again_normalized, *normalized),
             "returned config is a different spec");
  return 0;
}
