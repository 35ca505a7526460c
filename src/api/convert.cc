#include "api/convert.h"

#include <string>

#include "model/field_path.h"
#include "model/limits.h"

namespace feos::api {
namespace {

model::RomBar rombar_from_proto(feosd::v1::RomBar r) {
  switch (r) {
    case feosd::v1::ROM_BAR_ON: return model::RomBar::kOn;
    case feosd::v1::ROM_BAR_OFF: return model::RomBar::kOff;
    default: return model::RomBar::kDefault;
  }
}

feosd::v1::RomBar rombar_to_proto(model::RomBar r) {
  switch (r) {
    case model::RomBar::kOn: return feosd::v1::ROM_BAR_ON;
    case model::RomBar::kOff: return feosd::v1::ROM_BAR_OFF;
    case model::RomBar::kDefault: break;
  }
  return feosd::v1::ROM_BAR_DEFAULT;
}

feosd::v1::GpuConfig gpu_to_proto(const model::GpuSpec& g) {
  feosd::v1::GpuConfig out;
  out.set_address(g.address.to_string());
  out.set_rombar(rombar_to_proto(g.rombar));
  out.set_boot_vga(g.boot_vga);
  return out;
}

void function_to_proto(const model::PassthroughFunction& f, feosd::v1::PassthroughFunction* out) {
  out->set_address(f.address.to_string());
  out->set_id(f.id);
  out->set_class_code(f.class_code);
  if (f.iommu_group) out->set_iommu_group(f.iommu_group->to_string());
  out->set_original_driver(f.original_driver);
  for (const auto& b : f.bars) {
    auto* bar = out->add_bars();
    bar->set_index(b.index);
    bar->set_size(b.size);
    bar->set_is_64bit(b.is_64bit);
    bar->set_prefetchable(b.prefetchable);
    bar->set_is_io(b.is_io);
  }
}

void assigned_gpu_to_proto(const model::AssignedGpu& g, feosd::v1::AssignedGpu* gpu) {
  *gpu->mutable_request() = gpu_to_proto(g.request);
  for (const auto& f : g.functions) function_to_proto(f, gpu->add_functions());
  for (const auto& f : g.group_peers) function_to_proto(f, gpu->add_group_peers());
  for (const auto& f : g.fabric) function_to_proto(f, gpu->add_fabric());
  gpu->set_numa_node(g.numa_node);
}

// The GPU address is bounded here until it is parsed at this border; every other bound is
// model::validate()'s (model/limits.h).
Status check_len(const std::string& value, size_t max, const std::string& field) {
  if (value.size() > max)
    return fail(Code::kInvalidArgument, field + ": " + std::to_string(value.size()) +
                                            " bytes is longer than the limit of " + std::to_string(max));
  if (value.find('\0') != std::string::npos)
    return fail(Code::kInvalidArgument, field + ": contains a NUL byte");
  return ok();
}

// The guest topology choices (gpu_p2p, guest_numa), parsed once here; model::validate() judges
// the cliques against the VM's GPUs.
Status topology_from_proto(const pb::VmConfig& c, model::VmSpec& spec) {
  switch (c.gpu_p2p().mode()) {
    case feosd::v1::GPU_P2P_MODE_AUTO: spec.gpu_p2p.mode = model::GpuP2pMode::kAuto; break;
    case feosd::v1::GPU_P2P_MODE_OFF: spec.gpu_p2p.mode = model::GpuP2pMode::kOff; break;
    case feosd::v1::GPU_P2P_MODE_EXPLICIT: spec.gpu_p2p.mode = model::GpuP2pMode::kExplicit; break;
    default:
      return fail(Code::kInvalidArgument, std::string(model::field::kGpuP2pMode) + ": unknown value " +
                                              std::to_string(c.gpu_p2p().mode()));
  }
  if (c.gpu_p2p().cliques_size() > static_cast<int>(model::kMaxGpudirectCliques))
    return fail(Code::kInvalidArgument, std::string(model::field::kGpuP2pCliques) + ": " +
                                            std::to_string(c.gpu_p2p().cliques_size()) + " given, at most " +
                                            std::to_string(model::kMaxGpudirectCliques) + " (clique ids 0-15)");
  for (int i = 0; i < c.gpu_p2p().cliques_size(); ++i) {
    const auto& clique = c.gpu_p2p().cliques(i);
    if (clique.gpus_size() > static_cast<int>(model::kMaxGpus))
      return fail(Code::kInvalidArgument, model::field::element(model::field::kGpuP2pCliques, i) + ": " +
                                              std::to_string(clique.gpus_size()) + " GPUs, more than a VM has");
    std::vector<pci::Address> gpus;
    for (int j = 0; j < clique.gpus_size(); ++j) {
      const std::string field =
          model::field::element(model::field::kGpuP2pCliques, i, "gpus[" + std::to_string(j) + "]");
      FEOS_TRY(check_len(clique.gpus(j), model::kMaxPciAddressText, field));
      auto address = pci::Address::parse(clique.gpus(j));
      if (!address) return fail(address.error().context(field));
      gpus.push_back(*address);
    }
    spec.gpu_p2p.cliques.push_back(std::move(gpus));
  }
  switch (c.guest_numa()) {
    case feosd::v1::GUEST_NUMA_MODE_DEFAULT: spec.guest_numa = model::GuestNumaMode::kDefault; break;
    case feosd::v1::GUEST_NUMA_MODE_AUTO: spec.guest_numa = model::GuestNumaMode::kAuto; break;
    case feosd::v1::GUEST_NUMA_MODE_OFF: spec.guest_numa = model::GuestNumaMode::kOff; break;
    default:
      return fail(Code::kInvalidArgument, std::string(model::field::kGuestNuma) + ": unknown value " +
                                              std::to_string(c.guest_numa()));
  }
  return ok();
}

void topology_to_proto(const model::VmSpec& spec, pb::VmConfig& c) {
  switch (spec.gpu_p2p.mode) {
    case model::GpuP2pMode::kAuto: break;
    case model::GpuP2pMode::kOff: c.mutable_gpu_p2p()->set_mode(feosd::v1::GPU_P2P_MODE_OFF); break;
    case model::GpuP2pMode::kExplicit: c.mutable_gpu_p2p()->set_mode(feosd::v1::GPU_P2P_MODE_EXPLICIT); break;
  }
  for (const auto& clique : spec.gpu_p2p.cliques) {
    auto* out = c.mutable_gpu_p2p()->add_cliques();
    for (const auto& address : clique) out->add_gpus(address.to_string());
  }
  switch (spec.guest_numa) {
    case model::GuestNumaMode::kDefault: break;
    case model::GuestNumaMode::kAuto: c.set_guest_numa(feosd::v1::GUEST_NUMA_MODE_AUTO); break;
    case model::GuestNumaMode::kOff: c.set_guest_numa(feosd::v1::GUEST_NUMA_MODE_OFF); break;
  }
}

}  // namespace

Result<model::VmSpec> spec_from_proto(const pb::VmConfig& c) {
  model::VmSpec spec;
  // Unset messages read as zeros, which model::validate() refuses naming the field.
  spec.cpus.boot_vcpus = c.cpus().boot_vcpus();
  spec.cpus.max_vcpus = c.cpus().max_vcpus() == 0 ? c.cpus().boot_vcpus() : c.cpus().max_vcpus();
  spec.memory.size_mib = c.memory().size_mib();
  spec.memory.hugepages = c.memory().hugepages();
  switch (c.memory().hugepage_size()) {
    case feosd::v1::HUGEPAGE_SIZE_DEFAULT: spec.memory.hugepage_size = model::HugepageSize::kHostDefault; break;
    case feosd::v1::HUGEPAGE_SIZE_2M: spec.memory.hugepage_size = model::HugepageSize::k2M; break;
    case feosd::v1::HUGEPAGE_SIZE_1G: spec.memory.hugepage_size = model::HugepageSize::k1G; break;
    default:
      return fail(Code::kInvalidArgument, std::string(model::field::kMemoryHugepageSize) + ": unknown value " +
                                              std::to_string(c.memory().hugepage_size()));
  }
  spec.image_ref = c.image_ref();

  for (int i = 0; i < c.disks_size(); ++i) {
    const auto& d = c.disks(i);
    switch (d.backend_case()) {
      case pb::DiskConfig::kPath: break;
      case pb::DiskConfig::kVfioPci:
        return fail(Code::kUnimplemented,
                    model::field::disk(i, "vfio_pci") +
                        ": PCI passthrough of disks is not available in this feosd version; use a "
                        "path backend");
      case pb::DiskConfig::BACKEND_NOT_SET:
        return fail(Code::kInvalidArgument, model::field::disk(i) + ": no backend set (path or vfio_pci)");
    }
    spec.disks.push_back({d.device_id(), d.path(), d.readonly()});
  }
  for (int i = 0; i < c.net_size(); ++i) {
    const auto& n = c.net(i);
    switch (n.backend_case()) {
      case pb::NetConfig::kTap: break;
      case pb::NetConfig::kVfioPci:
        return fail(Code::kUnimplemented,
                    model::field::net(i, "vfio_pci") +
                        ": PCI passthrough of NICs is not available in this feosd version; use a tap "
                        "backend");
      case pb::NetConfig::BACKEND_NOT_SET:
        return fail(Code::kInvalidArgument, model::field::net(i) + ": no backend set (tap or vfio_pci)");
    }
    spec.nets.push_back({n.device_id(), n.tap().tap_name(), n.mac_address()});
  }
  if (c.has_ignition()) spec.ignition = c.ignition();
  spec.boot = {c.boot().kernel(), c.boot().initramfs(), c.boot().cmdline()};
  for (int i = 0; i < c.gpus_size(); ++i) {
    const auto& g = c.gpus(i);
    const std::string address_field = model::field::gpu(i, "address");
    FEOS_TRY(check_len(g.address(), model::kMaxPciAddressText, address_field));
    if (g.address().empty()) return fail(Code::kInvalidArgument, address_field + ": empty");
    // The one parse of a requested address: below this, addresses are values.
    auto address = pci::Address::parse(g.address());
    if (!address) return fail(address.error().context(address_field));
    if (!feosd::v1::RomBar_IsValid(g.rombar()))
      return fail(Code::kInvalidArgument,
                  model::field::gpu(i, "rombar") + ": unknown value " + std::to_string(g.rombar()));
    spec.gpus.push_back({*address, rombar_from_proto(g.rombar()), g.boot_vga()});
  }
  switch (c.firmware().kind()) {
    case feosd::v1::FIRMWARE_KIND_DEFAULT:
    case feosd::v1::FIRMWARE_KIND_BIOS: spec.firmware.kind = model::FirmwareKind::kBios; break;
    case feosd::v1::FIRMWARE_KIND_UEFI: spec.firmware.kind = model::FirmwareKind::kUefi; break;
    default:
      return fail(Code::kInvalidArgument, std::string(model::field::kFirmwareKind) + ": unknown value " +
                                              std::to_string(c.firmware().kind()));
  }
  spec.firmware.secure_boot = c.firmware().secure_boot();
  if (c.has_gpu_count()) {
    FEOS_TRY(check_len(c.gpu_count().model(), model::kMaxGpuModelLength, model::field::kGpuModel));
    spec.gpu_count = model::GpuCount{.count = c.gpu_count().count(),
                                     .model = c.gpu_count().model(),
                                     .p2p = c.gpu_count().p2p()};
  }
  FEOS_TRY(topology_from_proto(c, spec));
  return spec;
}

Result<model::DiskSpec> disk_from_proto(bool present, const pb::DiskConfig& d) {
  if (!present) return fail(Code::kInvalidArgument, "disk: not given");
  if (d.backend_case() == pb::DiskConfig::kVfioPci)
    return fail(Code::kUnimplemented, "disk.vfio_pci: PCI passthrough of disks is not available; use a path backend");
  if (d.backend_case() != pb::DiskConfig::kPath) return fail(Code::kInvalidArgument, "disk: no backend set (path)");
  return model::DiskSpec{d.device_id(), d.path(), d.readonly()};
}

Result<model::NetSpec> net_from_proto(bool present, const pb::NetConfig& n) {
  if (!present) return fail(Code::kInvalidArgument, "nic: not given");
  if (n.backend_case() == pb::NetConfig::kVfioPci)
    return fail(Code::kUnimplemented, "nic.vfio_pci: PCI passthrough of NICs is not available; use a tap backend");
  if (n.backend_case() != pb::NetConfig::kTap) return fail(Code::kInvalidArgument, "nic: no backend set (tap)");
  return model::NetSpec{n.device_id(), n.tap().tap_name(), n.mac_address()};
}

pb::VmConfig spec_to_proto(const model::VmSpec& spec) {
  pb::VmConfig c;
  c.mutable_cpus()->set_boot_vcpus(spec.cpus.boot_vcpus);
  c.mutable_cpus()->set_max_vcpus(spec.cpus.max_vcpus);
  c.mutable_memory()->set_size_mib(spec.memory.size_mib);
  c.mutable_memory()->set_hugepages(spec.memory.hugepages);
  switch (spec.memory.hugepage_size) {
    case model::HugepageSize::kHostDefault: break;
    case model::HugepageSize::k2M: c.mutable_memory()->set_hugepage_size(feosd::v1::HUGEPAGE_SIZE_2M); break;
    case model::HugepageSize::k1G: c.mutable_memory()->set_hugepage_size(feosd::v1::HUGEPAGE_SIZE_1G); break;
  }
  c.set_image_ref(spec.image_ref);
  for (const auto& d : spec.disks) {
    auto* disk = c.add_disks();
    disk->set_device_id(d.device_id);
    disk->set_path(d.path);
    disk->set_readonly(d.readonly);
  }
  for (const auto& n : spec.nets) {
    auto* net = c.add_net();
    net->set_device_id(n.device_id);
    net->mutable_tap()->set_tap_name(n.tap_name);
    net->set_mac_address(n.mac);
  }
  if (spec.ignition) c.set_ignition(*spec.ignition);
  if (!spec.boot.kernel.empty() || !spec.boot.initramfs.empty() || !spec.boot.cmdline.empty()) {
    c.mutable_boot()->set_kernel(spec.boot.kernel);
    c.mutable_boot()->set_initramfs(spec.boot.initramfs);
    c.mutable_boot()->set_cmdline(spec.boot.cmdline);
  }
  for (const auto& g : spec.gpus) *c.add_gpus() = gpu_to_proto(g);
  if (spec.firmware.kind == model::FirmwareKind::kUefi) {
    c.mutable_firmware()->set_kind(feosd::v1::FIRMWARE_KIND_UEFI);
    c.mutable_firmware()->set_secure_boot(spec.firmware.secure_boot);
  }
  if (spec.gpu_count) {
    c.mutable_gpu_count()->set_count(spec.gpu_count->count);
    c.mutable_gpu_count()->set_model(spec.gpu_count->model);
    c.mutable_gpu_count()->set_p2p(spec.gpu_count->p2p);
  }
  topology_to_proto(spec, c);
  return c;
}

pb::VmState state_to_proto(model::VmState state) {
  // The domain enum uses FeOS's numbers; the cast is checked by a unit test.
  return static_cast<pb::VmState>(static_cast<int>(state));
}

pb::VmInfo record_to_proto(const model::VmRecord& r) {
  pb::VmInfo info;
  info.set_vm_id(r.id);
  info.set_state(state_to_proto(r.state));
  *info.mutable_config() = spec_to_proto(r.spec);
  info.set_state_reason(r.state_reason);
  info.set_pid(r.pid);
  info.set_created_unix_ms(r.created_unix_ms);
  for (const auto& g : r.gpus) assigned_gpu_to_proto(g, info.add_gpus());
  return info;
}

feosd::v1::VmPlan plan_to_proto(const model::VmPlan& plan) {
  feosd::v1::VmPlan out;
  out.set_vm_id(plan.vm_id);
  for (const auto& g : plan.gpus) assigned_gpu_to_proto(g, out.add_gpus());
  for (const auto& decision : plan.decisions) out.add_decisions(decision);
  auto* space = out.mutable_address_space();
  space->set_ram_bytes(plan.address_space.ram_bytes);
  space->set_mmio32_bytes(plan.address_space.mmio32_bytes);
  space->set_hole64_start(plan.address_space.hole64_start);
  space->set_hole64_size(plan.address_space.hole64_size);
  space->set_phys_bits(static_cast<uint32_t>(plan.address_space.phys_bits));
  space->set_uefi_aperture_base(plan.address_space.uefi_aperture_base);
  space->set_uefi_aperture_size(plan.address_space.uefi_aperture_size);
  auto* firmware = out.mutable_firmware();
  const bool uefi = plan.firmware.spec.kind == model::FirmwareKind::kUefi;
  firmware->set_kind(uefi ? feosd::v1::FIRMWARE_KIND_UEFI : feosd::v1::FIRMWARE_KIND_BIOS);
  firmware->set_secure_boot(plan.firmware.spec.secure_boot);
  firmware->set_descriptor_file(plan.firmware.descriptor);
  firmware->set_code(plan.firmware.code);
  firmware->set_vars_template(plan.firmware.vars_template);
  firmware->set_vars(plan.firmware.vars);
  for (const auto& arg : plan.qemu_argv) out.add_qemu_argv(arg);
  return out;
}

pb::VmEvent event_to_proto(const model::VmEvent& e) {
  pb::VmEvent out;
  out.set_vm_id(e.vm_id);
  out.set_id(std::to_string(e.id));
  out.set_component_id(e.component_id);
  pb::VmStateChangedEvent changed;
  changed.set_new_state(state_to_proto(e.state));
  changed.set_reason(e.reason);
  out.mutable_data()->PackFrom(changed);
  return out;
}

}  // namespace feos::api
