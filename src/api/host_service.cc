#include "api/host_service.h"

#include <cstdio>
#include <set>

#include "api/status.h"
#include "feosd/v1/host.grpc.pb.h"
#include "hostdev/inventory.h"
#include "vmm/hypervisor.h"

namespace feos::api {
namespace {

std::string hex4(uint16_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04x", v);
  return buf;
}

feosd::v1::DeviceStatus status_to_proto(hostdev::DeviceStatus s) {
  switch (s) {
    case hostdev::DeviceStatus::kAvailable: return feosd::v1::DEVICE_STATUS_AVAILABLE;
    case hostdev::DeviceStatus::kAssigned: return feosd::v1::DEVICE_STATUS_ASSIGNED;
    case hostdev::DeviceStatus::kNotAssignable: return feosd::v1::DEVICE_STATUS_NOT_ASSIGNABLE;
  }
  return feosd::v1::DEVICE_STATUS_UNSPECIFIED;
}

void device_to_proto(const hostdev::InventoryDevice& in, feosd::v1::PciDeviceInfo* out) {
  const pci::Device& d = in.device;
  out->set_address(d.address.to_string());
  out->set_vendor_id(hex4(d.vendor_id));
  out->set_device_id(hex4(d.device_id));
  out->set_vendor_name(in.vendor_name);
  out->set_device_name(in.device_name);
  out->set_class_code(d.class_code);
  out->set_class_name(in.class_name);
  out->set_subsystem_id(d.subsystem_id());
  out->set_driver(d.driver);
  if (d.iommu_group) out->set_iommu_group(d.iommu_group->to_string());
  for (const auto& member : in.group_members) out->add_iommu_group_members(member.to_string());
  out->set_numa_node(d.numa_node);
  for (const auto& bar : d.present_bars()) {
    auto* b = out->add_bars();
    b->set_index(bar.index);
    b->set_size(bar.size());
    b->set_is_64bit(bar.is_64bit());
    b->set_prefetchable(bar.is_prefetchable());
    b->set_is_io(bar.is_io());
  }
  for (const auto& m : d.reset_methods) out->add_reset_methods(m);
  out->set_boot_vga(d.boot_vga.value_or(false));
  out->set_is_gpu(in.is_gpu);
  out->set_is_bridge(in.is_bridge);
  out->set_status(status_to_proto(in.status));
  out->set_assigned_vm(in.assigned_vm);
  out->set_reason(in.reason);
  if (d.current_link) out->set_link(d.current_link->to_string());
  out->set_local_cpus(d.local_cpus);
  if (in.topology) {
    out->set_pcie_root(in.topology->pcie_root);
    if (in.topology->switch_upstream) out->set_switch_upstream(in.topology->switch_upstream->to_string());
  }
  for (const auto& peer : in.switch_peers) {
    auto* p = out->add_switch_peers();
    p->set_address(peer.address.to_string());
    p->set_id(peer.id.to_string());
    p->set_class_name(peer.class_name);
  }
  out->set_p2p_domain(in.p2p_domain);
  for (const auto& peer : in.p2p_peers) out->add_p2p_clique_peers(peer.to_string());
}

void add_item(feosd::v1::CheckHostResponse* resp, std::string name, bool ok, std::string detail) {
  auto* item = resp->add_items();
  item->set_name(std::move(name));
  item->set_ok(ok);
  item->set_detail(std::move(detail));
}

std::string join(const std::vector<std::string>& parts) {
  std::string text;
  for (const auto& part : parts) text += (text.empty() ? "" : ", ") + part;
  return text;
}

// "4 NVSwitches 10de:22a3 (0000:05:00.0, ..., 0000:08:00.0) in IOMMU group 114": which group a VM
// taking the board's GPUs with their fabric would need whole.
std::string describe_nvswitches(const std::vector<hostdev::NvSwitch>& switches) {
  std::set<std::string> ids;
  std::set<pci::IommuGroup> groups;
  std::vector<std::string> addresses;
  bool ungrouped = false;
  for (const auto& sw : switches) {
    ids.insert(sw.id.to_string());
    addresses.push_back(sw.address.to_string());
    if (sw.iommu_group) groups.insert(*sw.iommu_group);
    else ungrouped = true;
  }
  std::vector<std::string> group_names;
  for (const auto& group : groups) group_names.push_back(group.to_string());
  std::string text = std::to_string(switches.size()) + (switches.size() == 1 ? " NVSwitch " : " NVSwitches ") +
                     join({ids.begin(), ids.end()}) + " (" + join(addresses) + ")";
  if (!groups.empty()) text += (groups.size() == 1 ? " in IOMMU group " : " in IOMMU groups ") + join(group_names);
  if (ungrouped) text += groups.empty() ? " without an IOMMU group" : "; some without an IOMMU group";
  return text;
}

void nvswitches_to_proto(const std::vector<hostdev::NvSwitch>& switches, feosd::v1::CheckHostResponse* resp) {
  for (const auto& sw : switches) {
    auto* out = resp->add_nvswitches();
    out->set_address(sw.address.to_string());
    out->set_id(sw.id.to_string());
    out->set_name(sw.name);
    if (sw.iommu_group) out->set_iommu_group(sw.iommu_group->to_string());
  }
}

void fit_to_proto(const model::FirmwareFit& in, feosd::v1::FirmwareCapacity* out) {
  out->set_fit(in.fit);
  out->set_phys_bits_needed(in.phys_bits_needed);
  out->set_limit(in.limit);
}

// "8 of 8 with BIOS (43 address bits)", "3 of 4 with UEFI: <why not the 4th>".
std::string describe_fit(const model::FirmwareFit& fit, size_t present, std::string_view firmware) {
  std::string out = std::to_string(fit.fit) + " of " + std::to_string(present) + " with " +
                    std::string(firmware);
  if (fit.fit > 0) out += " (" + std::to_string(fit.phys_bits_needed) + " address bits)";
  if (!fit.limit.empty()) out += ": " + fit.limit;
  return out;
}

// `fit` bounded by the NVSwitch fabric: the largest count the fabric allows that the address space
// holds, with the bits that count needs; the limit then names the fabric's rule first.
model::FirmwareFit fabric_bound(model::FirmwareFit fit, const hostdev::GpuModel& gpu_model,
                                const vmm::Hypervisor& hypervisor, bool uefi) {
  if (gpu_model.fabric_counts.empty()) return fit;
  size_t allowed = 0;
  for (size_t count : gpu_model.fabric_counts)
    if (count <= static_cast<size_t>(fit.fit)) allowed = count;
  if (allowed == static_cast<size_t>(fit.fit)) return fit;
  model::FirmwareFit bound;
  bound.fit = static_cast<int>(allowed);
  if (allowed > 0) {
    const std::vector<model::AssignedGpu> first(gpu_model.cards.begin(),
                                                gpu_model.cards.begin() + static_cast<long>(allowed));
    const model::GpuFit fits = hypervisor.fit_gpus(first);
    bound.phys_bits_needed = (uefi ? fits.uefi : fits.bios).phys_bits_needed;
  }
  bound.limit = gpu_model.fabric_rule + (fit.limit.empty() ? "" : "; and the address space: " + fit.limit);
  return bound;
}

// The guest address space: the host's address bits, OVMF, and per GPU model how many one VM holds.
void add_capacity(const hostdev::HostCheck& check, const vmm::Hypervisor& hypervisor,
                  feosd::v1::CheckHostResponse* resp) {
  const model::GuestLimits limits = hypervisor.guest_limits();
  auto* capacity = resp->mutable_capacity();
  capacity->set_host_phys_bits(limits.host_phys_bits);
  capacity->set_accelerator(limits.accelerator);
  capacity->set_guest_phys_bits_max(limits.guest_phys_bits_max);
  capacity->set_guest_ram_bytes(limits.guest_ram_bytes);
  capacity->set_uefi_firmware(limits.uefi_firmware);
  std::string bits = limits.host_phys_bits > 0
                         ? "host CPU: " + std::to_string(limits.host_phys_bits) + " physical address bits"
                         : std::string("host CPU: physical address bits unknown (no \"address sizes\" in cpuinfo)");
  bits += limits.accelerator == "kvm"
              ? "; kvm guests get the host's bits (at most " + std::to_string(limits.guest_phys_bits_max) + ")"
              : "; " + limits.accelerator + " guests may have up to " +
                    std::to_string(limits.guest_phys_bits_max);
  add_item(resp, "address_bits", limits.host_phys_bits > 0, bits);
  add_item(resp, "uefi_firmware", !limits.uefi_firmware.empty(),
           limits.uefi_firmware.empty() ? limits.uefi_problem : "OVMF " + limits.uefi_firmware);
  const std::string ram = std::to_string(limits.guest_ram_bytes >> 30) + " GiB";
  for (const auto& gpu_model : check.models) {
    model::GpuFit fit = hypervisor.fit_gpus(gpu_model.cards);
    fit.bios = fabric_bound(fit.bios, gpu_model, hypervisor, false);
    fit.uefi = fabric_bound(fit.uefi, gpu_model, hypervisor, true);
    auto* out = capacity->add_models();
    out->set_id(gpu_model.id);
    out->set_name(gpu_model.name);
    for (const auto& card : gpu_model.cards) out->add_addresses(card.request.address.to_string());
    fit_to_proto(fit.bios, out->mutable_bios());
    fit_to_proto(fit.uefi, out->mutable_uefi());
    const size_t present = gpu_model.cards.size();
    const bool all_fit = fit.bios.fit == static_cast<int>(present) && fit.uefi.fit == static_cast<int>(present);
    add_item(resp, "model " + gpu_model.id, all_fit,
             (gpu_model.name.empty() ? "" : gpu_model.name + ": ") + "one VM (up to " + ram +
                 " of RAM) holds " + describe_fit(fit.bios, present, "BIOS") + "; " +
                 describe_fit(fit.uefi, present, "UEFI"));
  }
}

class HostService final : public feosd::v1::HostDeviceService::Service {
 public:
  HostService(const hostdev::HostInventory& inventory, const vmm::Hypervisor& hypervisor)
      : inventory_(inventory), hypervisor_(hypervisor) {}

  grpc::Status ListPciDevices(grpc::ServerContext*, const feosd::v1::ListPciDevicesRequest* req,
                              feosd::v1::ListPciDevicesResponse* resp) override {
    auto inventory = inventory_.inventory();
    if (!inventory) return to_grpc(inventory.error());
    for (const auto& device : inventory->devices)
      if (!req->gpus_only() || device.is_gpu) device_to_proto(device, resp->add_devices());
    return grpc::Status::OK;
  }

  grpc::Status CheckHost(grpc::ServerContext*, const feosd::v1::CheckHostRequest*,
                         feosd::v1::CheckHostResponse* resp) override {
    auto check = inventory_.check_host();
    if (!check) return to_grpc(check.error());
    add_item(resp, "iommu", check->iommu_enabled, check->iommu_detail);
    // Without interrupt remapping a device can forge MSIs; unknown is reported, not failed.
    add_item(resp, "interrupt_remapping", check->interrupt_remapping != hostdev::Readiness::kNo,
             (check->interrupt_remapping == hostdev::Readiness::kUnknown ? "unknown: " : "") +
                 check->interrupt_remapping_detail);
    add_item(resp, "vfio_pci", check->vfio_pci_available, check->vfio_pci_detail);
    add_item(resp, "policy", true, check->policy);
    for (const auto& gpu : check->gpus) {
      std::string label = gpu.id + (gpu.name.empty() ? "" : " " + gpu.name);
      add_item(resp, "gpu " + gpu.address, gpu.ready,
               label + (gpu.driver.empty() ? "" : ", driver " + gpu.driver) +
                   (gpu.reason.empty() ? ": ready" : ": " + gpu.reason));
      // Not a refusal (some cards only reset with the slot), but the operator must know.
      std::string methods;
      for (const auto& m : gpu.reset_methods) methods += (methods.empty() ? "" : ", ") + m;
      add_item(resp, "gpu " + gpu.address + " reset", !methods.empty(),
               methods.empty() ? "no reset method (no FLR, bus or power-management reset): GPU memory "
                                 "and state may carry over from one VM to the next"
                               : "reset between VMs by " + methods);
    }
    if (check->gpus.empty()) add_item(resp, "gpus", false, "no display/3D PCI devices on this host");
    // ok=false without a mode: a warning (full-board VMs only), not a refusal.
    if (!check->nvswitches.empty())
      add_item(resp, "nvswitch", check->nvswitch_mode_set,
               describe_nvswitches(check->nvswitches) + "; " + check->nvswitch_mode_detail);
    nvswitches_to_proto(check->nvswitches, resp);
    add_capacity(*check, hypervisor_, resp);
    resp->set_ready(check->ready);
    return grpc::Status::OK;
  }

 private:
  const hostdev::HostInventory& inventory_;
  const vmm::Hypervisor& hypervisor_;
};

}  // namespace

std::unique_ptr<grpc::Service> make_host_service(const hostdev::HostInventory& inventory,
                                                 const vmm::Hypervisor& hypervisor) {
  return std::make_unique<HostService>(inventory, hypervisor);
}

}  // namespace feos::api
