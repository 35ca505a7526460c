// VmManager's limits (VmLimits): what a VM's record takes in the store, and whether one more VM
// fits under them.
#include <cstdio>

#include "core/vm_manager.h"
#include "store/spec_codec.h"

namespace feos::core {
namespace {

// "3.5 MiB", "64.0 KiB": one decimal, so that a total just over a limit does not read as equal.
std::string with_unit(uint64_t bytes) {
  char text[32];
  if (bytes >= 1024 * 1024)
    std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1024 * 1024));
  else
    std::snprintf(text, sizeof text, "%.1f KiB", static_cast<double>(bytes) / 1024);
  return text;
}

}  // namespace

uint64_t stored_size(const model::VmRecord& record) {
  // Compact JSON: what the store holds. Strings that are not UTF-8 never get stored; count them
  // at their length.
  auto spec = store::encode_spec(record.spec);
  uint64_t size = spec ? spec->size() : record.spec.ignition.value_or("").size() + 64 * 1024;
  if (record.gpus.empty()) {
    size += record.spec.gpus.size() * kResolvedGpuAllowance;
  } else {
    auto gpus = store::encode_assigned_gpus(record.gpus);
    size += gpus ? gpus->size() : record.gpus.size() * kResolvedGpuAllowance;
  }
  // The reason at its cap, the id, numbers and protobuf framing.
  return size + kMaxReasonBytes + 512;
}

Status VmManager::check_limits_locked(const std::string& vm_id, uint64_t size) const {
  if (vms_.size() >= limits_.max_vms)
    return fail(Code::kResourceExhausted, "vm " + vm_id + ": feosd holds " + std::to_string(vms_.size()) +
                                              " VMs, its limit; delete one first");
  uint64_t total = 0;
  for (const auto& [id, entry] : vms_) total += entry.stored_bytes;
  if (total + size > limits_.max_total_bytes)
    return fail(Code::kResourceExhausted,
                "vm " + vm_id + ": its definition (" + with_unit(size) + " with ignition and devices) would bring " +
                    "all VMs to " + with_unit(total + size) + ", over feosd's limit of " +
                    with_unit(limits_.max_total_bytes) + " (it keeps ListVms within gRPC's 4 MiB message limit)");
  return ok();
}

}  // namespace feos::core
