#include "hostdev/planning.h"

#include <algorithm>
#include <set>

#include "model/field_path.h"
#include "pci/naming.h"

namespace feos::hostdev::detail {

tl::unexpected<Problem> problem(Code code, std::string message, std::string reason) {
  return tl::unexpected<Problem>(Problem{Error{code, std::move(message)}, std::move(reason)});
}

tl::unexpected<Problem> problem(const Error& error) {
  return tl::unexpected<Problem>(Problem{error, error.message});
}

model::PassthroughFunction function_of(const pci::Device& d) {
  model::PassthroughFunction f;
  f.address = d.address;
  f.id = d.id();
  f.class_code = d.class_code;
  f.iommu_group = d.iommu_group;
  f.original_driver = d.driver;
  for (const auto& bar : d.present_bars()) {
    f.bars.push_back(model::Bar{.index = bar.index,
                                .size = bar.size(),
                                .is_64bit = bar.is_64bit(),
                                .prefetchable = bar.is_prefetchable(),
                                .is_io = bar.is_io()});
  }
  return f;
}

std::map<pci::IommuGroup, std::vector<const Target*>> targets_by_group(const Plan& plan) {
  std::map<pci::IommuGroup, std::vector<const Target*>> out;
  for (const auto& t : plan.targets) out[t.group].push_back(&t);
  return out;
}

PlanContext::PlanContext(const sys::Filesystem& fs, const sys::HostPaths& paths,
                         store::DeviceLedger& ledger, const Policy& policy, const Options& options,
                         HostView& view)
    : fs_(fs),
      paths_(paths),
      ledger_(ledger),
      policy_(policy),
      options_(options),
      view_(view) {}

Result<const std::map<pci::Address, std::string>*> PlanContext::ledger() {
  if (!holders_) {
    auto rows = ledger_.list(std::nullopt);
    if (!rows) return fail(rows.error());
    holders_.emplace();
    for (const auto& row : *rows) (*holders_)[row.bdf] = row.vm_id;
  }
  return &*holders_;
}

Result<const OpenNodes*> PlanContext::open_nodes() {
  if (!open_) {
    auto scanned = OpenNodes::scan(fs_, paths_);
    if (!scanned) {
      if (!tolerate_scan_errors_) return fail(scanned.error());
      scanned = OpenNodes();
    }
    open_ = std::move(*scanned);
  }
  return &*open_;
}

Result<size_t> PlanContext::iommu_group_count() {
  if (!iommu_groups_) {
    auto count = view_.iommu_group_count();
    if (!count) return fail(count.error());
    iommu_groups_ = *count;
  }
  return *iommu_groups_;
}

Result<const Fabric*> PlanContext::fabric() {
  if (!fabric_) {
    if (!view_.displays_loaded())
      return fail(Code::kInternal, "plan devices: the host's GPUs and NVSwitches were not read");
    Fabric fabric;
    for (const auto& [address, device] : view_.devices())
      if (device.is_nvswitch()) fabric.nvswitches.push_back(&device);
    // The board's GPUs: each slot's lowest display function, when it is NVIDIA's.
    std::set<std::string> slots;
    for (const auto& [address, device] : view_.devices()) {
      if (!fabric.present() || !device.is_display() || !slots.insert(address.slot()).second) continue;
      if (device.vendor_id == pci::kVendorNvidia) fabric.gpus.push_back(address);
    }
    fabric_ = std::move(fabric);
  }
  return &*fabric_;
}

bool PlanContext::vfio_available() {
  if (!vfio_) {
    vfio_ = fs_.exists(paths_.pci_driver(options_.vfio_driver)) ||
            fs_.exists(paths_.kernel_module(options_.vfio_module));
  }
  return *vfio_;
}

tl::expected<Plan, Problem> make_plan(PlanContext& context, const std::vector<model::GpuSpec>& gpus,
                                      PlanScope scope) {
  const pci::PciIds* ids = context.options().pci_ids.get();
  const Policy& policy = context.policy();
  HostView& view = context.view();

  // 1. Each card once.
  std::vector<pci::Address> requested;
  for (size_t i = 0; i < gpus.size(); ++i) {
    const pci::Address& address = gpus[i].address;
    for (size_t j = 0; j < i; ++j) {
      if (address == requested[j]) {
        return problem(Code::kInvalidArgument,
                       model::field::gpu(j) + " and " + model::field::gpu(i) + " both name " +
                           address.to_string(),
                       "requested twice");
      }
      if (address.same_slot(requested[j])) {
        return problem(Code::kInvalidArgument,
                       model::field::gpu(i) + " (" + address.to_string() + ") is on the same card as " +
                           model::field::gpu(j) + " (" + requested[j].to_string() +
                           "): a card is passed whole, name it once",
                       "requested twice");
      }
    }
    requested.push_back(address);
  }

  // 2. Each requested function exists and is a display/3D controller.
  std::vector<const pci::Device*> gpu_devices;
  for (const auto& address : requested) {
    auto device = view.device(address);
    if (!device) return problem(device.error());
    const pci::Device& d = **device;
    if (!d.is_display()) {
      return problem(Code::kFailedPrecondition,
                     address.to_string() + " is a " + pci::class_name(d.class_code, ids) + " (" +
                         d.class_string() +
                         ") device, not a GPU (display/3D controller, class 03xx)",
                     "not a GPU");
    }
    gpu_devices.push_back(&d);
  }
  Plan plan;

  // 3. Host prerequisites.
  auto groups = context.iommu_group_count();
  if (!groups) return problem(groups.error());
  if (*groups == 0) {
    return problem(Code::kFailedPrecondition,
                   "IOMMU is not enabled (no " + context.paths().iommu_groups() +
                       " entries); boot with intel_iommu=on / amd_iommu=on",
                   "IOMMU is not enabled");
  }
  if (!context.vfio_available()) {
    return problem(Code::kFailedPrecondition,
                   context.options().vfio_driver + " is not available (no " +
                       context.paths().pci_driver(context.options().vfio_driver) + ", no " +
                       context.paths().kernel_module(context.options().vfio_module) +
                       "); load it with: modprobe " + context.options().vfio_driver,
                   context.options().vfio_driver + " is not available");
  }

  // 4. The operator's policy.
  for (const pci::Device* d : gpu_devices) {
    if (!policy.allows_gpu(*d)) {
      return problem(Code::kPermissionDenied,
                     d->address.to_string() + " (" + d->id() +
                         ") is not allowed by the GPU policy (" + policy.describe() + ")",
                     "not allowed by the GPU policy");
    }
    plan.decisions.push_back(d->address.to_string() + " (" + d->id() +
                             ") is allowed by the GPU policy: " + policy.describe());
  }

  // 4b. An HGX board's NVSwitch fabric: all its GPUs and the NVSwitches with them, or exactly one
  //     partition of the host's fabric manager (policy nvswitch_mode).
  FabricPart fabric;
  if (scope == PlanScope::kVm) {
    auto part = fabric_part(context, requested, plan.decisions);
    if (!part) return tl::unexpected<Problem>(std::move(part.error()));
    fabric = std::move(*part);
  }

  // 5. Whole cards: every function of each slot, each in an IOMMU group; the boot VGA only when
  //    asked for.
  std::set<pci::Address> card_members;
  std::vector<std::vector<const pci::Device*>> card_functions(requested.size());
  for (size_t i = 0; i < requested.size(); ++i) {
    auto functions = view.slot_functions(requested[i]);
    if (!functions) return problem(functions.error());
    for (const auto& address : *functions) {
      auto device = view.device(address);
      if (!device) return problem(device.error());
      const pci::Device& f = **device;
      if (f.boot_vga.value_or(false) && !gpus[i].boot_vga) {
        return problem(Code::kFailedPrecondition,
                       address.to_string() +
                           " is the host's boot VGA device (it drives the console); pass it "
                           "only with boot_vga set",
                       "boot VGA");
      }
      if (!f.iommu_group) {
        return problem(Code::kFailedPrecondition,
                       address.to_string() + " has no IOMMU group (no " +
                           context.paths().pci_device_attr(address.to_string(), "iommu_group") +
                           ")",
                       "no IOMMU group");
      }
      if (f.boot_vga.value_or(false))
        plan.decisions.push_back(address.to_string() +
                                 " is the host's boot VGA device, passed because boot_vga is set");
      card_functions[i].push_back(&f);
      card_members.insert(address);
    }
    std::string names;
    for (const pci::Device* f : card_functions[i])
      names += (names.empty() ? "" : ", ") + f->address.to_string();
    plan.decisions.push_back(requested[i].to_string() + ": the whole card is passed, " +
                             std::to_string(card_functions[i].size()) + " function" +
                             (card_functions[i].size() == 1 ? "" : "s") + " (" + names + ")");
  }

  // 6. IOMMU groups: VFIO gives a VM whole groups, so every other endpoint in them must be part
  //    of the request or a peer the policy lets travel along. Bridges stay with the host.
  struct Peer {
    const pci::Device* device;
    pci::IommuGroup group;  // the card's group it shares
  };
  std::vector<std::vector<Peer>> peers(requested.size());
  std::set<pci::Address> peer_set;
  for (size_t i = 0; i < requested.size(); ++i) {
    std::set<pci::IommuGroup> seen_groups;
    for (const pci::Device* f : card_functions[i]) {
      const pci::IommuGroup& group = *f->iommu_group;
      if (!seen_groups.insert(group).second) continue;
      auto members = view.group_members(group);
      if (!members) return problem(members.error());
      for (const auto& member : *members) {
        if (card_members.count(member) || peer_set.count(member)) continue;
        auto device = view.device(member);
        if (!device) {
          if (device.error().code == Code::kNotFound) continue;  // unplugged meanwhile
          return problem(device.error());
        }
        const pci::Device& d = **device;
        if (d.is_pci_bridge()) {
          plan.decisions.push_back("IOMMU group " + group.to_string() + " of " +
                                   f->address.to_string() + ": bridge " + member.to_string() +
                                   " stays with the host (VFIO does not take bridges)");
          continue;
        }
        if (!policy.allows_group_peer(d)) {
          const std::string why =
              policy.allow_group_peers()
                  ? "the GPU policy does not list it"
                  : "the GPU policy does not allow group peers (allow_group_peers)";
          return problem(Code::kFailedPrecondition,
                         "IOMMU group " + group.to_string() + " of " + f->address.to_string() +
                             " also holds " + pci::describe_device(d, ids) +
                             ", which is not part of the request; VFIO gives a VM whole IOMMU "
                             "groups and " + why,
                         "IOMMU group " + group.to_string() + " also holds " + member.to_string() + " (" +
                             d.id() + ", not a GPU companion)");
        }
        if (d.boot_vga.value_or(false)) {
          return problem(Code::kFailedPrecondition,
                         "IOMMU group " + group.to_string() + " of " + f->address.to_string() +
                             " also holds the host's boot VGA device " + member.to_string(),
                         "IOMMU group " + group.to_string() + " also holds the boot VGA " +
                             member.to_string());
        }
        plan.decisions.push_back("IOMMU group " + group.to_string() + " of " +
                                 f->address.to_string() + ": " + member.to_string() + " (" +
                                 d.id() + ") goes along as a group peer (allowed by the policy)");
        peers[i].push_back(Peer{&d, group});
        peer_set.insert(member);
      }
    }
  }

  for (size_t i = 0; i < requested.size(); ++i) {
    model::AssignedGpu gpu;
    gpu.request = gpus[i];
    gpu.numa_node = gpu_devices[i]->numa_node;
    gpu.peer_path = peer_path_of(context, *gpu_devices[i]);
    for (const pci::Device* f : card_functions[i]) {
      gpu.functions.push_back(function_of(*f));
      plan.targets.push_back(Target{
          .address = f->address,
          .role = f->address == requested[i] ? store::DeviceRole::kRequested
                                              : store::DeviceRole::kFunction,
          .group = *f->iommu_group,
          .original_driver = f->driver,
          .original_override = f->driver_override});
    }
    for (const Peer& peer : peers[i]) {
      const pci::Device* p = peer.device;
      gpu.group_peers.push_back(function_of(*p));
      plan.targets.push_back(Target{.address = p->address,
                                    .role = store::DeviceRole::kGroupPeer,
                                    .group = p->iommu_group.value_or(peer.group),
                                    .original_driver = p->driver,
                                    .original_override = p->driver_override});
    }
    if (fabric.owner == i) {
      for (const pci::Device* sw : fabric.devices) {
        if (card_members.count(sw->address) || peer_set.count(sw->address)) continue;
        gpu.fabric.push_back(function_of(*sw));
        plan.targets.push_back(Target{.address = sw->address,
                                      .role = store::DeviceRole::kFabric,
                                      .group = *sw->iommu_group,
                                      .original_driver = sw->driver,
                                      .original_override = sw->driver_override});
      }
    }
    plan.gpus.push_back(std::move(gpu));
  }
  std::sort(plan.targets.begin(), plan.targets.end(),
            [](const Target& a, const Target& b) { return a.address < b.address; });
  for (const auto& t : plan.targets) {
    const std::string& vfio = context.options().vfio_driver;
    plan.decisions.push_back(
        t.address.to_string() + " (IOMMU group " + t.group.to_string() + "): " +
        (t.original_driver == vfio ? "already on " + vfio
                                   : (t.original_driver.empty() ? std::string("no driver")
                                                                : t.original_driver) +
                                         " -> " + vfio + ", given back to " +
                                         (t.original_driver.empty() ? std::string("no driver")
                                                                    : t.original_driver) +
                                         " when the VM ends"));
  }

  // 7. Not held by another VM.
  auto ledger = context.ledger();
  if (!ledger) return problem(ledger.error());
  for (const auto& t : plan.targets) {
    auto it = (*ledger)->find(t.address);
    if (it != (*ledger)->end()) {
      return problem(Code::kFailedPrecondition,
                     t.address.to_string() + " is assigned to vm " + it->second,
                     "assigned to vm " + it->second);
    }
  }

  // 8. Not in use by host processes: the card's device nodes, and the groups' VFIO nodes (another
  //    VMM, or a VFIO user outside feosd).
  auto open = context.open_nodes();
  if (!open) return problem(open.error());
  for (const auto& t : plan.targets) {
    auto device = view.device(t.address);
    if (!device) return problem(device.error());
    auto held = held_open_by(context.fs(), context.paths(), **device, **open);
    if (!held) return problem(held.error());
    if (*held) {
      return problem(Code::kFailedPrecondition, **held,
                     (*held)->substr(t.address.to_string().size() + 4));  // "in use on the host: pid ..."
    }
  }
  for (const auto& [group, members] : targets_by_group(plan)) {
    const std::string node = context.paths().vfio_group(group.to_string());
    auto openers = (*open)->of(node);
    if (!openers.empty()) {
      const Opener& o = openers.front();
      return problem(Code::kFailedPrecondition,
                     "IOMMU group " + group.to_string() + " (" + members.front()->address.to_string() +
                         ") is in use: pid " +
                         std::to_string(o.pid) + " (" + o.command + ") has " + node + " open",
                     "IOMMU group " + group.to_string() + " is open by pid " + std::to_string(o.pid) + " (" +
                         o.command + ")");
    }
  }
  return plan;
}

}  // namespace feos::hostdev::detail
