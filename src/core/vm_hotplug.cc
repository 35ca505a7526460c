// Disks and NICs added to or removed from a VM after create (AttachDisk/DetachDisk,
// AttachNic/DetachNic). A created or stopped VM's spec changes only; a running VM's hypervisor
// plugs or unplugs the device first, then the spec is stored, so the next start and a restarted
// daemon see the change. One job at a time per VM, as for every other change.
#include <algorithm>
#include <cstdio>
#include <random>

#include "common/log.h"
#include "core/vm_manager.h"
#include "core/vm_manager_detail.h"
#include "model/validate.h"

namespace feos::core {
namespace {

using model::VmState;

auto logger() {
  static auto l = log::get("vm");
  return l;
}

bool has_device(const model::VmSpec& spec, const std::string& device_id) {
  auto same = [&](const auto& device) { return device.device_id == device_id; };
  return std::any_of(spec.disks.begin(), spec.disks.end(), same) ||
         std::any_of(spec.nets.begin(), spec.nets.end(), same);
}

// A locally administered unicast address in qemu's 52:54:00 range, kept in the spec so the guest
// sees the same NIC at every start.
std::string random_mac() {
  std::random_device random;
  const unsigned value = random();
  char text[18];
  std::snprintf(text, sizeof text, "52:54:00:%02x:%02x:%02x", (value >> 16) & 0xff, (value >> 8) & 0xff,
                value & 0xff);
  return text;
}

// The first "disk<n>" no device of the VM has: the id of a disk attached without one.
std::string free_disk_id(const model::VmSpec& spec) {
  for (size_t n = 0;; ++n)
    if (std::string id = "disk" + std::to_string(n); !has_device(spec, id)) return id;
}

}  // namespace

Result<VmManager::Entry*> VmManager::begin_device_job_locked(const model::VmId& id, std::string_view action) {
  FEOS_ASSIGN_OR_RETURN(Entry* entry, find_locked(id));
  const VmState state = entry->record.state;
  // Paused: an attach would wait for the guest to see it and a detach could not complete, so
  // the VM is resumed (or stopped) first. Creating and crashed VMs take no changes (FeOS's rule).
  if (state != VmState::kCreated && state != VmState::kStopped && state != VmState::kRunning)
    return fail(Code::kFailedPrecondition, "vm " + entry->record.id + ": Invalid VM state for operation: Cannot " +
                                               std::string(action) + " VM in " +
                                               std::string(feos_state_name(state)) +
                                               " state. Must be in Created, Stopped or Running.");
  if (entry->job)
    return fail(Code::kAborted, "vm " + entry->record.id + " is busy: " + std::string(job_name(entry->job->kind)) +
                                    " in progress; retry");
  entry->job = Job{JobKind::kDevices, std::nullopt};
  return entry;
}

Status VmManager::store_spec_locked(Entry& entry, model::VmSpec spec, const std::string& component,
                                    std::string reason) {
  FEOS_TRY(db_.vms().update_spec(entry.record.id, spec));
  entry.record.spec = std::move(spec);
  entry.stored_bytes = stored_size(entry.record);
  logger()->info("vm={} {}: {}", entry.record.id, component, reason);
  if (auto emitted = emit_locked(entry, component, std::move(reason)); !emitted)
    logger()->error("vm={} event not stored: {}", entry.record.id, emitted.error().to_string());
  return ok();
}

Result<VmManager::DeviceChange> VmManager::begin_attach(const model::VmId& request_id, std::string_view action,
                                                        const std::string& device_id,
                                                        const std::function<void(model::VmSpec&)>& add) {
  std::lock_guard lock(mutex_);
  FEOS_ASSIGN_OR_RETURN(Entry* entry, begin_device_job_locked(request_id, action));
  DeviceChange change{entry->record.id, entry->record.state == VmState::kRunning, entry->record.spec};
  auto refuse = [&](Error error) -> Result<DeviceChange> {
    entry->job.reset();
    return fail(std::move(error));
  };
  if (has_device(change.spec, device_id))
    return refuse(Error{Code::kAlreadyExists, "vm " + change.id + ": a device with id " +
                                                  quote_for_message(device_id) + " exists already"});
  add(change.spec);
  model::VmRecord grown = entry->record;
  grown.spec = change.spec;
  uint64_t total = 0;
  for (const auto& [id, other] : vms_) total += other.stored_bytes;
  const uint64_t size = stored_size(grown);
  if (total - entry->stored_bytes + size > limits_.max_total_bytes)
    return refuse(Error{Code::kResourceExhausted, "vm " + change.id + ": the device would bring all VMs' definitions "
                                                      "over feosd's limit of " +
                                                      std::to_string(limits_.max_total_bytes) + " bytes"});
  return change;
}

Result<std::string> VmManager::attach_disk(const model::VmId& request_id, model::DiskSpec disk) {
  if (disk.device_id.empty()) {
    std::lock_guard lock(mutex_);
    FEOS_ASSIGN_OR_RETURN(const Entry* entry, find_locked(request_id));
    disk.device_id = free_disk_id(entry->record.spec);
  }
  FEOS_ASSIGN_OR_RETURN(DeviceChange change, begin_attach(request_id, "attach disk to", disk.device_id,
                                                          [&](model::VmSpec& spec) { spec.disks.push_back(disk); }));
  JobGuard guard(*this, change.id);
  // The spec with the disk passes create's checks: its file within the image roots, its format
  // recorded now and kept for every start.
  auto admitted = hypervisor_.admit(change.spec);
  if (!admitted) return fail(admitted.error().context("attach disk to vm " + change.id));
  change.spec = std::move(*admitted);
  disk = change.spec.disks.back();
  if (change.live) {
    auto plugged = hypervisor_.attach_disk(change.id, disk);
    if (!plugged) return fail(plugged.error().context("attach disk to vm " + change.id));
    change.spec.disks.back() = disk = *plugged;
  }
  const std::string format(model::disk_format_name(disk.format));
  std::string reason = "disk " + disk.device_id + " attached (" + disk.path + (format.empty() ? "" : ", " + format) +
                       (disk.readonly ? ", read-only" : "") + ")" +
                       (change.live ? " to the running guest" : "; the guest gets it at the next start");
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(change.id);
  if (auto stored = store_spec_locked(entry, std::move(change.spec), "disk", std::move(reason)); !stored) {
    if (change.live) (void)hypervisor_.detach_disk(change.id, disk.device_id);
    return fail(stored.error().context("attach disk to vm " + change.id));
  }
  return disk.device_id;
}

Result<std::string> VmManager::attach_nic(const model::VmId& request_id, model::NetSpec nic) {
  // FeOS's defaults: the tap's name is the device id.
  if (nic.device_id.empty()) nic.device_id = nic.tap_name;
  if (nic.mac.empty()) nic.mac = random_mac();
  FEOS_ASSIGN_OR_RETURN(DeviceChange change, begin_attach(request_id, "attach NIC to", nic.device_id,
                                                          [&](model::VmSpec& spec) { spec.nets.push_back(nic); }));
  JobGuard guard(*this, change.id);
  if (auto valid = hypervisor_.validate(change.spec); !valid)
    return fail(valid.error().context("attach NIC to vm " + change.id));
  nic.tap_created = false;  // only the attach below says so
  if (change.live) {
    auto created = hypervisor_.attach_nic(change.id, nic);
    if (!created) return fail(created.error().context("attach NIC to vm " + change.id));
    nic.tap_created = change.spec.nets.back().tap_created = *created;
  }
  std::string reason = "NIC " + nic.device_id + " attached (tap " + nic.tap_name +
                       (nic.tap_created ? ", created" : "") + ", MAC " + nic.mac + ")" +
                       (change.live ? " to the running guest" : "; the guest gets it at the next start");
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(change.id);
  if (auto stored = store_spec_locked(entry, std::move(change.spec), "nic", std::move(reason)); !stored) {
    if (change.live) (void)hypervisor_.detach_nic(change.id, nic.device_id);
    if (nic.tap_created) (void)hypervisor_.remove_created_tap(nic.tap_name);
    return fail(stored.error().context("attach NIC to vm " + change.id));
  }
  return nic.device_id;
}

Status VmManager::detach(const model::VmId& request_id, const std::string& device_id, bool disk) {
  const std::string what = disk ? "disk" : "NIC";
  DeviceChange change;
  std::string created_tap;  // the NIC's tap, when feosd created it
  {
    std::lock_guard lock(mutex_);
    FEOS_ASSIGN_OR_RETURN(Entry* entry, begin_device_job_locked(request_id, "detach " + what + " from"));
    change = DeviceChange{entry->record.id, entry->record.state == VmState::kRunning, entry->record.spec};
    auto same = [&](const auto& device) { return device.device_id == device_id; };
    for (const auto& nic : change.spec.nets)
      if (!disk && same(nic) && nic.tap_created) created_tap = nic.tap_name;
    size_t before = disk ? change.spec.disks.size() : change.spec.nets.size();
    if (disk) std::erase_if(change.spec.disks, same);
    else std::erase_if(change.spec.nets, same);
    if ((disk ? change.spec.disks.size() : change.spec.nets.size()) == before) {
      entry->job.reset();
      return fail(Code::kNotFound,
                  "vm " + change.id + ": no " + what + " with device id " + quote_for_message(device_id));
    }
  }
  JobGuard guard(*this, change.id);
  if (change.live) {
    Status unplugged =
        disk ? hypervisor_.detach_disk(change.id, device_id) : hypervisor_.detach_nic(change.id, device_id);
    if (!unplugged) return fail(unplugged.error().context("detach " + what + " from vm " + change.id));
  }
  std::string reason = what + " " + device_id + " detached" +
                       (change.live ? ": released by the guest" : " from the spec");
  // The tap feosd made for the NIC goes with it (the guest released it, or the VM does not run);
  // one that cannot be removed stays, said in the event.
  if (!created_tap.empty()) {
    auto removed = hypervisor_.remove_created_tap(created_tap);
    reason += removed ? "; tap " + created_tap + " removed"
                      : "; tap " + created_tap + " not removed: " + removed.error().to_string();
  }
  std::lock_guard lock(mutex_);
  Entry& entry = vms_.at(change.id);
  if (auto stored = store_spec_locked(entry, std::move(change.spec), disk ? "disk" : "nic", std::move(reason));
      !stored)
    return fail(stored.error().context("detach " + what + " from vm " + change.id +
                                       (change.live ? " (the guest released it, but the record still has it: "
                                                      "it comes back at the next start; retry the detach)"
                                                    : "")));
  return ok();
}

Status VmManager::detach_disk(const model::VmId& id, const std::string& device_id) {
  return detach(id, device_id, true);
}

Status VmManager::detach_nic(const model::VmId& id, const std::string& device_id) {
  return detach(id, device_id, false);
}

}  // namespace feos::core
