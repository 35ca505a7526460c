// VmManager's GPU ownership bookkeeping: taking a VM's GPUs for a start and giving them back
// (through hostdev), with the "gpus" events that tell clients which way it went.
#include "common/log.h"
#include "core/vm_manager.h"

namespace feos::core {
namespace {

auto logger() {
  static auto l = log::get("vm");
  return l;
}

}  // namespace

Status VmManager::acquire_devices(const std::string& id) {
  std::vector<model::GpuSpec> wanted;
  {
    std::lock_guard lock(mutex_);
    Entry& entry = vms_.at(id);
    if (entry.holds_devices || entry.record.spec.gpus.empty()) return ok();
    if (!devices_) return fail(Code::kFailedPrecondition, "vm " + id + ": GPU passthrough is not available on this host");
    wanted = entry.record.spec.gpus;
  }
  auto prepared = devices_->prepare(id, wanted);
  if (!prepared) return fail(prepared.error());  // hostdev's messages already name the VM
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(id);
  entry.holds_devices = true;
  entry.record.gpus = std::move(*prepared);
  entry.stored_bytes = stored_size(entry.record);
  if (auto stored = db_.vms().update_gpus(id, entry.record.gpus); !stored)
    logger()->error("vm={} assigned gpus not stored: {}", id, stored.error().to_string());
  return ok();
}

Status VmManager::release_devices(const std::string& id) {
  bool held = false;
  {
    std::lock_guard lock(mutex_);
    auto it = vms_.find(id);
    if (it == vms_.end() || it->second.record.spec.gpus.empty() || !devices_) return ok();
    Entry& entry = it->second;
    held = entry.holds_devices;
    // VmInfo stops showing the GPUs on this VM before the ledger lets another VM take them: no
    // client sees one GPU on two VMs. (A failed release keeps the ledger's rows, and says so.)
    if (!entry.record.gpus.empty()) {
      entry.record.gpus.clear();
      entry.stored_bytes = stored_size(entry.record);
      if (auto stored = db_.vms().update_gpus(id, {}); !stored)
        logger()->error("vm={} assigned gpus not cleared: {}", id, stored.error().to_string());
    }
  }
  // Always asked (it is idempotent): rows may be left from an earlier release that failed.
  auto released = devices_->release(id);
  std::lock_guard lock(mutex_);
  auto it = vms_.find(id);
  if (it == vms_.end()) return released;
  Entry& entry = it->second;
  // Either way the VM no longer holds its GPUs: a failed device keeps its ledger row, so no other
  // VM can take it, and the VM's next start prepares its GPUs again (refused, naming the row,
  // until the device is back).
  entry.holds_devices = false;
  auto emit = [&](std::string reason) {
    if (auto emitted = emit_locked(entry, "gpus", std::move(reason)); !emitted)
      logger()->error("vm={} event not stored: {}", id, emitted.error().to_string());
  };
  if (!released) {
    logger()->error("vm={} devices not returned to the host: {}", id, released.error().to_string());
    emit("GPUs not returned to the host: " + released.error().message +
         " (they stay reserved; DeleteVm, StartVm or a daemon restart retries)");
    return fail(released.error().context("return GPUs to the host"));
  }
  if (held) {
    std::string addresses;
    for (const auto& gpu : entry.record.spec.gpus) addresses += (addresses.empty() ? "" : ", ") + gpu.address.to_string();
    logger()->info("vm={} GPUs returned to the host", id);
    emit("GPUs returned to the host: " + addresses);
  }
  return ok();
}

}  // namespace feos::core
