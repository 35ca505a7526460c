#include "api/convert.h"

#include <string>

namespace feos::api {
namespace {

// Bounds on client strings: paths and ids are short; a kernel cmdline or ignition can be longer.
constexpr size_t kMaxPath = 4096;
constexpr size_t kMaxId = 128;
constexpr size_t kMaxCmdline = 4096;
constexpr size_t kMaxIgnition = 1 << 20;
constexpr int kMaxDevices = 64;
constexpr int kMaxGpus = 16;

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

Status check_len(const std::string& value, size_t max, const std::string& field) {
  if (value.size() > max)
    return fail(Code::kInvalidArgument, field + ": " + std::to_string(value.size()) +
                                            " bytes is longer than the limit of " + std::to_string(max));
  if (value.find('\0') != std::string::npos)
    return fail(Code::kInvalidArgument, field + ": contains a NUL byte");
  return ok();
}

}  // namespace

Result<model::VmSpec> spec_from_proto(const pb::VmConfig& c) {
  model::VmSpec spec;
  if (!c.has_cpus() || c.cpus().boot_vcpus() == 0)
    return fail(Code::kInvalidArgument, "config.cpus.boot_vcpus: must be at least 1");
  spec.cpus.boot_vcpus = c.cpus().boot_vcpus();
  spec.cpus.max_vcpus = c.cpus().max_vcpus() == 0 ? c.cpus().boot_vcpus() : c.cpus().max_vcpus();
  if (!c.has_memory() || c.memory().size_mib() == 0)
    return fail(Code::kInvalidArgument, "config.memory.size_mib: must be at least 1");
  spec.memory.size_mib = c.memory().size_mib();
  spec.memory.hugepages = c.memory().hugepages();

  FEOS_TRY(check_len(c.image_ref(), kMaxPath, "config.image_ref"));
  spec.image_ref = c.image_ref();

  if (c.disks_size() > kMaxDevices || c.net_size() > kMaxDevices)
    return fail(Code::kInvalidArgument,
                "config: at most " + std::to_string(kMaxDevices) + " disks and " +
                    std::to_string(kMaxDevices) + " NICs");
  for (int i = 0; i < c.disks_size(); ++i) {
    const auto& d = c.disks(i);
    std::string field = "config.disks[" + std::to_string(i) + "]";
    FEOS_TRY(check_len(d.device_id(), kMaxId, field + ".device_id"));
    switch (d.backend_case()) {
      case pb::DiskConfig::kPath: break;
      case pb::DiskConfig::kVfioPci:
        return fail(Code::kUnimplemented,
                    field + ".vfio_pci: PCI passthrough of disks is not available in this feosd "
                            "version; use a path backend");
      case pb::DiskConfig::BACKEND_NOT_SET:
        return fail(Code::kInvalidArgument, field + ": no backend set (path or vfio_pci)");
    }
    FEOS_TRY(check_len(d.path(), kMaxPath, field + ".path"));
    if (d.path().empty()) return fail(Code::kInvalidArgument, field + ".path: empty");
    spec.disks.push_back({d.device_id(), d.path(), d.readonly()});
  }
  for (int i = 0; i < c.net_size(); ++i) {
    const auto& n = c.net(i);
    std::string field = "config.net[" + std::to_string(i) + "]";
    FEOS_TRY(check_len(n.device_id(), kMaxId, field + ".device_id"));
    FEOS_TRY(check_len(n.mac_address(), 32, field + ".mac_address"));
    switch (n.backend_case()) {
      case pb::NetConfig::kTap: break;
      case pb::NetConfig::kVfioPci:
        return fail(Code::kUnimplemented,
                    field + ".vfio_pci: PCI passthrough of NICs is not available in this feosd "
                            "version; use a tap backend");
      case pb::NetConfig::BACKEND_NOT_SET:
        return fail(Code::kInvalidArgument, field + ": no backend set (tap or vfio_pci)");
    }
    FEOS_TRY(check_len(n.tap().tap_name(), 15, field + ".tap.tap_name"));  // IFNAMSIZ - 1
    if (n.tap().tap_name().empty()) return fail(Code::kInvalidArgument, field + ".tap.tap_name: empty");
    spec.nets.push_back({n.device_id(), n.tap().tap_name(), n.mac_address()});
  }
  if (c.has_ignition()) {
    FEOS_TRY(check_len(c.ignition(), kMaxIgnition, "config.ignition"));
    spec.ignition = c.ignition();
  }
  FEOS_TRY(check_len(c.boot().kernel(), kMaxPath, "config.boot.kernel"));
  FEOS_TRY(check_len(c.boot().initramfs(), kMaxPath, "config.boot.initramfs"));
  FEOS_TRY(check_len(c.boot().cmdline(), kMaxCmdline, "config.boot.cmdline"));
  spec.boot = {c.boot().kernel(), c.boot().initramfs(), c.boot().cmdline()};
  if (c.gpus_size() > kMaxGpus)
    return fail(Code::kInvalidArgument, "config.gpus: at most " + std::to_string(kMaxGpus) + " GPUs per VM");
  for (int i = 0; i < c.gpus_size(); ++i) {
    const auto& g = c.gpus(i);
    std::string field = "config.gpus[" + std::to_string(i) + "]";
    FEOS_TRY(check_len(g.address(), 32, field + ".address"));
    if (g.address().empty()) return fail(Code::kInvalidArgument, field + ".address: empty");
    // The one parse of a requested address: below this, addresses are values.
    auto address = pci::Address::parse(g.address());
    if (!address) return fail(address.error().context(field + ".address"));
    if (!feosd::v1::RomBar_IsValid(g.rombar()))
      return fail(Code::kInvalidArgument, field + ".rombar: unknown value " + std::to_string(g.rombar()));
    spec.gpus.push_back({*address, rombar_from_proto(g.rombar()), g.boot_vga()});
  }
  return spec;
}

pb::VmConfig spec_to_proto(const model::VmSpec& spec) {
  pb::VmConfig c;
  c.mutable_cpus()->set_boot_vcpus(spec.cpus.boot_vcpus);
  c.mutable_cpus()->set_max_vcpus(spec.cpus.max_vcpus);
  c.mutable_memory()->set_size_mib(spec.memory.size_mib);
  c.mutable_memory()->set_hugepages(spec.memory.hugepages);
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
  for (const auto& g : r.gpus) {
    auto* gpu = info.add_gpus();
    *gpu->mutable_request() = gpu_to_proto(g.request);
    for (const auto& f : g.functions) function_to_proto(f, gpu->add_functions());
    for (const auto& f : g.group_peers) function_to_proto(f, gpu->add_group_peers());
    gpu->set_numa_node(g.numa_node);
  }
  return info;
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
