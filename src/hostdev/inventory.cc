// HostInventory: read-only views of the host for `feosctl gpu list` and `feosctl host check`.
#include "hostdev/inventory.h"

#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include "hostdev/host_view.h"
#include "hostdev/planning.h"
#include "pci/iommu.h"
#include "pci/naming.h"
#include "pci/sysfs.h"

namespace feos::hostdev {
namespace {

Readiness readiness(pci::InterruptRemapping::State state) {
  switch (state) {
    case pci::InterruptRemapping::State::kOn: return Readiness::kYes;
    case pci::InterruptRemapping::State::kOff: return Readiness::kNo;
    case pci::InterruptRemapping::State::kUnknown: return Readiness::kUnknown;
  }
  return Readiness::kUnknown;
}

// Every GPU of `inv` as a whole card, grouped by model.
std::vector<GpuModel> gpu_models(const Inventory& inv) {
  std::map<pci::Address, const InventoryDevice*> by_address;
  for (const auto& item : inv.devices) by_address.emplace(item.device.address, &item);
  std::map<std::string, GpuModel> models;
  for (const auto& item : inv.devices) {
    const std::string address = item.device.address.to_string();
    if (!item.is_gpu || item.gpu != address) continue;
    model::AssignedGpu card;
    card.request.address = item.device.address;
    card.numa_node = item.device.numa_node;
    for (const auto& other : inv.devices) {
      if (other.gpu != address || other.is_bridge) continue;
      card.functions.push_back(detail::function_of(other.device));
    }
    std::set<pci::Address> peers;
    for (const auto& function : card.functions) {
      auto device = by_address.find(function.address);
      for (const auto& member : device->second->group_members) {
        auto peer = by_address.find(member);
        if (member.same_slot(item.device.address) || peer == by_address.end() || peer->second->is_bridge)
          continue;
        if (peers.insert(member).second) card.group_peers.push_back(detail::function_of(peer->second->device));
      }
    }
    GpuModel& model = models[item.device.id()];
    model.id = item.device.id();
    model.name = item.device_name;
    model.cards.push_back(std::move(card));
  }
  std::vector<GpuModel> out;
  for (auto& [id, model] : models) out.push_back(std::move(model));
  return out;
}

// Fills each GPU's switch_peers: the endpoints whose nearest switch is its own, its slot's
// functions excluded. One pass to index the endpoints by switch, one to look them up.
void add_switch_peers(std::vector<InventoryDevice>& devices) {
  std::map<pci::Address, std::vector<const InventoryDevice*>> under_switch;  // by upstream port
  for (const auto& item : devices) {
    if (!item.is_bridge && item.topology && item.topology->switch_upstream)
      under_switch[*item.topology->switch_upstream].push_back(&item);
  }
  for (auto& item : devices) {
    if (!item.is_gpu || item.gpu != item.device.address.to_string()) continue;
    if (!item.topology || !item.topology->switch_upstream) continue;
    for (const InventoryDevice* other : under_switch[*item.topology->switch_upstream]) {
      if (other->device.address.same_slot(item.device.address)) continue;
      item.switch_peers.push_back({.address = other->device.address,
                                   .id = {other->device.vendor_id, other->device.device_id},
                                   .class_name = other->class_name});
    }
  }
}

// Fills each GPU's GPUDirect clique domain and peers (model::p2p_domain, the rule the guest's
// cliques follow: vmm/qemu/gpudirect.h): NVIDIA GPUs on one root bus, unless NVSwitches join the
// host's NVIDIA GPUs (an HGX board: NVLink, no clique needed).
void add_p2p_peers(std::vector<InventoryDevice>& devices) {
  const bool board = std::any_of(devices.begin(), devices.end(),
                                 [](const InventoryDevice& d) { return d.device.is_nvswitch(); });
  std::map<std::string, std::vector<InventoryDevice*>> by_domain;
  for (auto& item : devices) {
    if (!item.is_gpu || item.gpu != item.device.address.to_string() || !item.topology) continue;
    const bool nvidia = item.device.vendor_id == pci::kVendorNvidia;
    model::GpuPeerPath path;
    path.pcie_root = item.topology->pcie_root;
    path.nvlink = board && nvidia;
    item.p2p_domain = model::p2p_domain(nvidia, path);
    if (!item.p2p_domain.empty()) by_domain[item.p2p_domain].push_back(&item);
  }
  for (auto& [domain, gpus] : by_domain)
    for (InventoryDevice* gpu : gpus)
      for (const InventoryDevice* other : gpus)
        if (other != gpu) gpu->p2p_peers.push_back(other->device.address);
}

std::vector<NvSwitch> nvswitches_of(const std::vector<InventoryDevice>& devices) {
  std::vector<NvSwitch> out;
  for (const auto& item : devices) {
    if (!item.device.is_nvswitch()) continue;
    out.push_back({.address = item.device.address,
                   .id = {item.device.vendor_id, item.device.device_id},
                   .name = item.device_name,
                   .iommu_group = item.device.iommu_group});
  }
  return out;
}

// The NVSwitch fabric's rule for the models of an HGX board's GPUs (NVIDIA's, as Fabric::gpus):
// the counts a VM may take and, for the whole board, the NVSwitches the first card brings along.
void add_fabric_rules(std::vector<GpuModel>& models, const std::vector<InventoryDevice>& devices,
                      const Policy& policy, size_t board_gpus) {
  std::vector<model::PassthroughFunction> nvswitches;
  for (const auto& item : devices)
    if (item.device.is_nvswitch()) nvswitches.push_back(detail::function_of(item.device));
  if (nvswitches.empty()) return;
  for (auto& gpu_model : models) {
    if (!gpu_model.id.starts_with("10de:") || gpu_model.cards.empty()) continue;
    if (policy.nvswitch_mode() == NvSwitchMode::kShared) {
      std::set<size_t> sizes;
      std::string listed;
      for (const auto& partition : policy.nvswitch_partitions()) sizes.insert(partition.size());
      for (size_t size : sizes) listed += (listed.empty() ? "" : ", ") + std::to_string(size);
      gpu_model.fabric_counts.assign(sizes.begin(), sizes.end());
      gpu_model.fabric_rule = "the NVSwitch fabric (mode shared) gives VMs one partition: of " +
                              (listed.empty() ? std::string("no size (none configured)") : listed + " GPU(s)");
      continue;
    }
    gpu_model.fabric_counts = {board_gpus};
    gpu_model.fabric_rule = "the NVSwitch fabric (" +
                            std::string(policy.nvswitch_mode() == NvSwitchMode::kUnset ? "no nvswitch_mode"
                                                                                       : "mode full-passthrough") +
                            ") gives a VM all " + std::to_string(board_gpus) + " GPUs with the NVSwitches, or none";
    gpu_model.cards.front().fabric = nvswitches;
  }
}

// What the policy's nvswitch_mode means on this board of `board_gpus` GPUs.
std::string nvswitch_mode_text(const Policy& policy, size_t board_gpus) {
  const std::string n = std::to_string(board_gpus);
  switch (policy.nvswitch_mode()) {
    case NvSwitchMode::kFullPassthrough:
      return "fabric mode full-passthrough: a VM with all " + n +
             " GPUs also gets the NVSwitches (its guest runs the fabric manager); fewer GPUs are refused";
    case NvSwitchMode::kShared:
      return "fabric mode shared: partitions " + policy.describe_partitions() +
             "; a VM's GPUs must be exactly one of them, the NVSwitches stay with the host's fabric manager";
    case NvSwitchMode::kUnset: break;
  }
  return "no nvswitch_mode in the GPU policy: only a VM with all " + n +
         " GPUs is allowed (it gets the NVSwitches too), since one with fewer would fail CUDA with error 802 "
         "without a fabric manager; set \"nvswitch_mode\": \"full-passthrough\", or \"shared\" with the "
         "fabric manager's \"nvswitch_partitions\", in the --device-policy file";
}

}  // namespace

HostInventory::HostInventory(const sys::Filesystem& fs, sys::HostPaths paths,
                             store::DeviceLedger& ledger, Policy policy, Options options)
    : fs_(fs),
      paths_(std::move(paths)),
      ledger_(ledger),
      policy_(std::move(policy)),
      options_(std::move(options)),
      device_cache_(std::make_unique<detail::DeviceCache>()) {}

HostInventory::~HostInventory() = default;

Result<Inventory> HostInventory::inventory() const {
  detail::HostView view(fs_, paths_);
  const unsigned threads = std::max(2u, std::min(8u, std::thread::hardware_concurrency()));
  FEOS_TRY(view.load_all(threads, device_cache_.get()));
  detail::PlanContext context(fs_, paths_, ledger_, policy_, options_, view);
  context.tolerate_scan_errors();
  const pci::PciIds* ids = options_.pci_ids.get();

  Inventory out;
  auto groups = context.iommu_group_count();
  if (!groups) return fail(groups.error());
  out.iommu_enabled = *groups > 0;
  auto ledger = context.ledger();
  if (!ledger) return fail(ledger.error());

  // The GPU of each slot that has one (its lowest display function).
  std::map<std::string, pci::Address> gpu_of_slot;
  for (const auto& [address, device] : view.devices()) {
    if (device.is_display()) gpu_of_slot.emplace(address.slot(), address);
  }
  // Group members, from the devices' own group links.
  std::map<pci::IommuGroup, std::vector<pci::Address>> members;
  for (const auto& [address, device] : view.devices()) {
    if (device.iommu_group) members[*device.iommu_group].push_back(address);
  }

  // Status of each GPU: would a request for it (alone) pass?
  std::map<pci::Address, std::pair<DeviceStatus, std::string>> gpu_status;  // + reason or vm
  for (const auto& [slot, gpu] : gpu_of_slot) {
    auto held = (*ledger)->find(gpu);
    if (held != (*ledger)->end()) {
      gpu_status[gpu] = {DeviceStatus::kAssigned, held->second};
      continue;
    }
    auto planned = detail::make_plan(context, {model::GpuSpec{.address = gpu}}, detail::PlanScope::kOneGpu);
    if (planned) gpu_status[gpu] = {DeviceStatus::kAvailable, ""};
    else gpu_status[gpu] = {DeviceStatus::kNotAssignable, planned.error().reason};
  }

  out.devices.reserve(view.devices().size());
  for (const auto& [address, device] : view.devices()) {
    InventoryDevice item;
    item.device = device;
    if (ids != nullptr) {
      if (auto v = ids->vendor(device.vendor_id)) item.vendor_name = std::string(*v);
      if (auto d = ids->device(device.vendor_id, device.device_id)) item.device_name = std::string(*d);
    }
    item.class_name = pci::class_name(device.class_code, ids);
    item.is_bridge = device.is_pci_bridge();
    item.is_gpu = device.is_display();
    if (device.iommu_group) item.group_members = members[*device.iommu_group];
    if (auto place = view.topologies().find(address); place != view.topologies().end())
      item.topology = place->second;

    auto slot_gpu = gpu_of_slot.find(address.slot());
    auto held = (*ledger)->find(address);
    if (held != (*ledger)->end()) {
      item.status = DeviceStatus::kAssigned;
      item.assigned_vm = held->second;
      if (slot_gpu != gpu_of_slot.end()) item.gpu = slot_gpu->second.to_string();
    } else if (slot_gpu != gpu_of_slot.end()) {
      // A GPU, or a companion function that shares its GPU's fate.
      item.gpu = slot_gpu->second.to_string();
      const auto& [status, detail_text] = gpu_status[slot_gpu->second];
      item.status = status;
      if (status == DeviceStatus::kAssigned) item.assigned_vm = detail_text;
      else item.reason = detail_text;
      if (!item.is_gpu && status == DeviceStatus::kAvailable) {
        item.reason = "function of GPU " + item.gpu;
      }
    } else if (item.is_bridge) {
      item.status = DeviceStatus::kNotAssignable;
      item.reason = "PCI bridge (stays with the host)";
    } else if (!device.iommu_group) {
      item.status = DeviceStatus::kNotAssignable;
      item.reason = "no IOMMU group";
    } else {
      item.status = DeviceStatus::kNotAssignable;
      item.reason = "not a GPU (" + item.class_name + ")";
    }
    out.devices.push_back(std::move(item));
  }
  add_switch_peers(out.devices);
  add_p2p_peers(out.devices);
  out.nvswitches = nvswitches_of(out.devices);
  return out;
}

Result<HostCheck> HostInventory::check_host() const {
  FEOS_ASSIGN_OR_RETURN(const Inventory inv, inventory());
  HostCheck check;
  check.iommu_enabled = inv.iommu_enabled;
  if (check.iommu_enabled) {
    auto groups = pci::PciSysfs(fs_, paths_).iommu_group_count();
    check.iommu_detail = std::to_string(groups.value_or(0)) + " IOMMU groups under " +
                         paths_.iommu_groups();
  } else {
    check.iommu_detail = "no " + paths_.iommu_groups() +
                         " entries; boot with intel_iommu=on / amd_iommu=on (and enable VT-d / "
                         "AMD-Vi in the firmware)";
  }
  const auto remapping = pci::read_interrupt_remapping(fs_, paths_, check.iommu_enabled);
  check.interrupt_remapping = readiness(remapping.state);
  check.interrupt_remapping_detail = remapping.detail;

  const std::string driver_dir = paths_.pci_driver(options_.vfio_driver);
  const std::string module_dir = paths_.kernel_module(options_.vfio_module);
  if (fs_.exists(driver_dir)) {
    check.vfio_pci_available = true;
    check.vfio_pci_detail = options_.vfio_driver + " is registered (" + driver_dir + ")";
  } else if (fs_.exists(module_dir)) {
    check.vfio_pci_available = true;
    check.vfio_pci_detail = "module " + options_.vfio_module + " is loaded (" + module_dir + ")";
  } else {
    check.vfio_pci_detail = "not loaded (no " + driver_dir + "); load it with: modprobe " +
                            options_.vfio_driver;
  }
  check.policy = policy_.describe();

  for (const auto& item : inv.devices) {
    if (!item.is_gpu || item.gpu != item.device.address.to_string()) continue;
    GpuReadiness gpu;
    gpu.address = item.device.address.to_string();
    gpu.id = item.device.id();
    gpu.name = item.device_name;
    gpu.driver = item.device.driver;
    gpu.reset_methods = item.device.reset_methods;
    switch (item.status) {
      case DeviceStatus::kAvailable: gpu.ready = true; break;
      case DeviceStatus::kAssigned:
        gpu.ready = false;
        gpu.reason = "assigned to vm " + item.assigned_vm;
        break;
      case DeviceStatus::kNotAssignable:
        gpu.ready = false;
        gpu.reason = item.reason;
        break;
    }
    check.gpus.push_back(std::move(gpu));
  }
  check.models = gpu_models(inv);
  check.nvswitches = inv.nvswitches;
  if (!check.nvswitches.empty()) {
    size_t board_gpus = 0;  // each slot's GPU, NVIDIA's
    for (const auto& item : inv.devices)
      board_gpus += item.is_gpu && item.gpu == item.device.address.to_string() &&
                    item.device.vendor_id == pci::kVendorNvidia;
    check.nvswitch_mode_set = policy_.nvswitch_mode() != NvSwitchMode::kUnset;
    check.nvswitch_mode_detail = nvswitch_mode_text(policy_, board_gpus);
    add_fabric_rules(check.models, inv.devices, policy_, board_gpus);
  }
  const bool any_gpu_ready =
      std::any_of(check.gpus.begin(), check.gpus.end(), [](const GpuReadiness& g) { return g.ready; });
  check.ready = check.iommu_enabled && check.vfio_pci_available &&
                check.interrupt_remapping != Readiness::kNo && any_gpu_ready;
  return check;
}

}  // namespace feos::hostdev
