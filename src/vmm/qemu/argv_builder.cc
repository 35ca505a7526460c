#include "vmm/qemu/argv_builder.h"

#include <optional>
#include <set>
#include <utility>

#include "pci/address.h"
#include "vmm/qemu/block_graph.h"
#include "vmm/qemu/mmio_layout.h"
#include "vmm/qemu/qemu_options.h"
#include "model/field_path.h"
#include "model/validate.h"

namespace feos::vmm::qemu {

std::string_view accel_name(Accel accel) { return accel == Accel::kKvm ? "kvm" : "tcg"; }

namespace {

// The composed machine, filled section by section and rendered in a fixed order. A component
// (memory, disks, nets, vfio cards with their pcie-root-ports) adds machine and cpu
// properties, -global settings, backends and devices without knowing about the others.
struct MachinePlan {
  QemuOpts machine{"q35"};
  QemuOpts cpu;
  std::vector<QemuOpts> objects;  // -object
  std::vector<QemuOpts> globals;  // -global
  // -blockdev / -netdev values, rendered, in device order
  std::vector<std::pair<std::string, std::string>> backends;
  std::vector<QemuOpts> devices;  // -device
  std::vector<QemuOpts> fw_cfg;   // -fw_cfg
  std::optional<AddressLayout> layout;  // set by add_gpus() for a VM with GPUs
  std::optional<UefiAperture> aperture;  // set by add_gpus() for a UEFI VM with GPUs
  std::vector<std::string> decisions;   // why the machine looks as it does, one sentence each
};

void add_memory(MachinePlan& plan, const ArgvConfig& config, const model::VmSpec& spec) {
  if (!spec.memory.hugepages) return;
  // Guest RAM from hugetlbfs, shared (so later vfio and vhost users see it) and preallocated
  // (a VM must fail at start, not at runtime, when the host runs out of hugepages).
  plan.objects.push_back(QemuOpts("memory-backend-file")
                                 .set("id", "ram0")
                                 .set("size", std::to_string(spec.memory.size_mib) + "M")
                                 .set("mem-path", config.hugepages_dir)
                                 .set("share", "on")
                                 .set("prealloc", "on"));
  plan.machine.set("memory-backend", "ram0");
}

// One disk: its checked image chain as -blockdev nodes (block_graph.h), and the device.
void add_disk(MachinePlan& plan, const ImageChain& chain, const std::string& node,
              const std::string& device_id, bool readonly, bool serial, int bootindex) {
  for (auto& value : blockdev_values(chain, node, readonly))
    plan.backends.emplace_back("-blockdev", std::move(value));
  QemuOpts device("virtio-blk-pci");
  device.set("drive", node).set("id", device_id);
  // The guest finds the disk as /dev/disk/by-id/virtio-<device_id> (first 20 characters).
  if (serial) device.set("serial", device_id);
  if (bootindex >= 0) device.set("bootindex", std::to_string(bootindex));
  plan.devices.push_back(std::move(device));
}

// Every disk of `spec` needs its image chain in `images` (the adapter resolved and checked them):
// qemu is never given a path of the spec itself.
Status add_disks(MachinePlan& plan, const model::VmSpec& spec, const BlockGraph& images) {
  if (spec.image_path.empty() != images.root.empty())
    return fail(Code::kInternal, std::string(model::field::kImageRef) +
                                     ": the checked image chain does not match the spec");
  if (images.disks.size() != spec.disks.size())
    return fail(Code::kInternal, std::string(model::field::kDisks) + ": " + std::to_string(images.disks.size()) +
                                     " checked image chains for " +
                                     std::to_string(spec.disks.size()) + " disks");
  bool kernel_boot = !spec.boot.kernel.empty();
  if (!spec.image_path.empty())
    add_disk(plan, images.root, "drive-root", std::string(kRootDiskId), false, false,
             kernel_boot ? -1 : 0);
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const auto& disk = spec.disks[i];
    if (images.disks[i].empty())
      return fail(Code::kInternal, model::field::disk(i, "path") + ": no checked image chain");
    add_disk(plan, images.disks[i], "drive" + std::to_string(i), disk.device_id, disk.readonly,
             true, -1);
  }
  return ok();
}

void add_nets(MachinePlan& plan, const model::VmSpec& spec) {
  for (size_t i = 0; i < spec.nets.size(); ++i) {
    const auto& net = spec.nets[i];
    std::string netdev = "netdev" + std::to_string(i);
    // script=no: the tap exists already; qemu must not run /etc/qemu-ifup as root.
    plan.backends.emplace_back("-netdev", QemuOpts("tap")
                                                  .set("id", netdev)
                                                  .set("ifname", net.tap_name)
                                                  .set("script", "no")
                                                  .set("downscript", "no")
                                                  .render());
    QemuOpts device("virtio-net-pci");
    device.set("netdev", netdev).set("id", net.device_id);
    if (!net.mac.empty()) device.set("mac", net.mac);
    plan.devices.push_back(std::move(device));
  }
}

// Checks that one passed-through function has an IOMMU group (the adapter opens its /dev/vfio node)
// and returns its address. `seen` catches a function passed twice.
Result<pci::Address> check_function(const model::PassthroughFunction& function,
                                    const std::string& field, std::set<pci::Address>& seen) {
  const pci::Address& address = function.address;
  if (!seen.insert(address).second)
    return fail(Code::kInvalidArgument, field + ": " + address.to_string() + " is passed twice");
  if (!function.iommu_group)
    return fail(Code::kInvalidArgument, field + ": " + address.to_string() + " has no IOMMU group");
  return address;
}

std::string class_hex(uint32_t class_code) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "0x";
  for (int shift = 20; shift >= 0; shift -= 4) out += kDigits[(class_code >> shift) & 0xf];
  return out;
}

bool is_vga(const model::PassthroughFunction& function) {
  return (function.class_code >> 8) == 0x0300;
}

bool is_nvidia_display(const model::PassthroughFunction& function) {
  bool nvidia = function.id.size() >= 5 && (function.id.compare(0, 5, "10de:") == 0 ||
                                            function.id.compare(0, 5, "10DE:") == 0);
  return nvidia && (function.class_code >> 16) == 0x03;
}

// One pcie-root-port on the root complex. Unique (chassis, slot) pairs: qemu refuses duplicates,
// and the guest names hotplug slots by slot number.
QemuOpts root_port(const std::string& id, int slot) {
  return QemuOpts("pcie-root-port")
      .set("id", id)
      .set("bus", "pcie.0")
      .set("chassis", "1")
      .set("slot", std::to_string(slot));
}

struct FunctionOptions {
  bool multifunction = false;
  bool rombar_off = false;
  bool x_vga = false;
};

// Host function `address` as guest function `guest_function` of slot 0 behind root port `bus`.
QemuOpts vfio_function(const model::PassthroughFunction& function, const pci::Address& address,
                       uint8_t guest_function, const std::string& id, const std::string& bus,
                       const FunctionOptions& options, const ArgvConfig& config) {
  QemuOpts device{std::string(kVfioDriver)};
  device.set(std::string(kVfioHostKey), address.to_string())
      .set("id", id)
      .set("bus", bus)
      .set("addr", "0x0." + std::to_string(guest_function));
  if (options.multifunction) device.set("multifunction", "on");
  if (options.rombar_off) device.set("rombar", "0");
  if (options.x_vga) device.set("x-vga", "on");
  if (config.gpudirect_clique && is_nvidia_display(function))
    device.set("x-nv-gpudirect-clique", std::to_string(*config.gpudirect_clique));
  return device;
}

// UEFI: the firmware's code and the VM's variable store as pflash, SMM for Secure Boot builds.
Status add_firmware(MachinePlan& plan, const ArgvConfig& config, const model::VmSpec& spec,
                    const RuntimeFiles& files) {
  if (spec.firmware.kind != model::FirmwareKind::kUefi) return ok();
  if (!config.uefi)
    return fail(Code::kInternal, std::string(model::field::kFirmwareKind) + ": uefi: no UEFI firmware was resolved");
  const UefiFirmware& firmware = *config.uefi;
  if (spec.firmware.secure_boot && !firmware.requires_smm)
    return fail(Code::kInternal, std::string(model::field::kFirmwareSecureBoot) + ": " + firmware.descriptor +
                                     " is not a Secure Boot build");
  auto flash = [&](const std::string& node, const std::string& path, bool readonly) {
    plan.backends.emplace_back("-blockdev", QemuOpts()
                                                .set("driver", "file")
                                                .set("node-name", node + "-file")
                                                .set("filename", path)
                                                .set("read-only", readonly ? "on" : "off")
                                                .render());
    plan.backends.emplace_back("-blockdev", QemuOpts()
                                                .set("driver", "raw")
                                                .set("node-name", node)
                                                .set("file", node + "-file")
                                                .set("read-only", readonly ? "on" : "off")
                                                .render());
  };
  flash("feos-fw-code", firmware.code, true);
  flash("feos-fw-vars", files.uefi_vars, false);
  plan.machine.set("pflash0", "feos-fw-code").set("pflash1", "feos-fw-vars");
  if (firmware.requires_smm) {
    // Only code running in SMM may write the variable store: the guest OS cannot undo Secure Boot.
    plan.machine.set("smm", "on");
    plan.globals.push_back(QemuOpts().set("driver", "cfi.pflash01").set("property", "secure").set("value", "on"));
  }
  return ok();
}

// "0000:18:00.0 256 GiB, 0000:2a:00.0 256 GiB": each GPU's 64-bit windows, for refusals.
std::string describe_gpu_windows(const std::vector<model::AssignedGpu>& gpus,
                                 const std::vector<BridgeWindows>& card_windows) {
  std::string out;
  for (size_t i = 0; i < gpus.size() && i < card_windows.size(); ++i)
    out += (out.empty() ? "" : ", ") + gpus[i].functions.front().address.to_string() + " " +
           format_bytes(card_windows[i].pref64);
  return out;
}

// Root ports and vfio-pci functions for `gpus`, plus the 64-bit hole and phys-bits they need
// (see build_argv()). Errors as build_argv()'s for GPUs, without the "vm <id>: " prefix.
Status add_gpus(MachinePlan& plan, const ArgvConfig& config, const model::VmSpec& spec,
                const std::vector<model::AssignedGpu>& gpus) {
  if (gpus.empty()) return ok();
  if (config.gpudirect_clique && (*config.gpudirect_clique < 0 || *config.gpudirect_clique > 15))
    return fail(Code::kInvalidArgument, "gpudirect clique " +
                                            std::to_string(*config.gpudirect_clique) +
                                            " is outside 0..15");
  std::set<pci::Address> seen;
  std::vector<BridgeWindows> ports;
  std::vector<BridgeWindows> card_windows;  // the card's own port of each GPU, for messages
  std::vector<QemuOpts> devices;
  int slot = 0;
  int boot_vga_cards = 0;
  for (size_t i = 0; i < gpus.size(); ++i) {
    const auto& gpu = gpus[i];
    std::string field = model::field::gpu(i);
    if (gpu.functions.empty())
      return fail(Code::kInvalidArgument, field + ": no host functions were assigned");
    std::vector<pci::Address> addresses;
    for (const auto& function : gpu.functions) {
      auto address = check_function(function, field, seen);
      if (!address) return fail(address.error());
      addresses.push_back(*address);
    }
    if (addresses[0].function() != 0)
      return fail(Code::kInvalidArgument, field + ": the first function is " +
                                              addresses[0].to_string() + ", not function 0");
    for (const auto& address : addresses)
      if (!address.same_slot(addresses[0]))
        return fail(Code::kInvalidArgument, field + ": " + address.to_string() +
                                                " is not in the slot of " +
                                                addresses[0].to_string());
    bool x_vga = gpu.request.boot_vga;
    if (x_vga) {
      if (!is_vga(gpu.functions[0]))
        return fail(Code::kInvalidArgument,
                    field + ": boot_vga: " + addresses[0].to_string() +
                        " is not a VGA controller (class " +
                        class_hex(gpu.functions[0].class_code) + ")");
      // The legacy VGA ranges (0xa0000, ports 0x3b0-0x3df) can go to one device only.
      if (++boot_vga_cards > 1)
        return fail(Code::kInvalidArgument,
                    field + ": boot_vga: only one GPU can be the guest's VGA");
    }
    auto windows = bridge_windows(gpu.functions);
    if (!windows) return fail(windows.error().context(field));
    ports.push_back(*windows);
    card_windows.push_back(*windows);

    std::string card = "feos-gpu" + std::to_string(i);
    std::string bus = card + "-rp";
    devices.push_back(root_port(bus, ++slot));
    for (size_t f = 0; f < gpu.functions.size(); ++f) {
      FunctionOptions options;
      options.multifunction = f == 0 && gpu.functions.size() > 1;
      options.rombar_off = gpu.request.rombar == model::RomBar::kOff;
      options.x_vga = f == 0 && x_vga;
      uint8_t function = addresses[f].function();
      devices.push_back(vfio_function(gpu.functions[f], addresses[f], function,
                                      card + "-f" + std::to_string(function), bus, options,
                                      config));
    }
    // A group peer is a device of its own (not part of the card): its own root port, function 0.
    for (size_t j = 0; j < gpu.group_peers.size(); ++j) {
      const auto& peer = gpu.group_peers[j];
      std::string peer_field = field + ".group_peers[" + std::to_string(j) + "]";
      auto address = check_function(peer, peer_field, seen);
      if (!address) return fail(address.error());
      auto peer_windows = bridge_windows({peer});
      if (!peer_windows) return fail(peer_windows.error().context(peer_field));
      ports.push_back(*peer_windows);
      std::string peer_id = card + "-peer" + std::to_string(j);
      devices.push_back(root_port(peer_id + "-rp", ++slot));
      devices.push_back(vfio_function(peer, *address, 0, peer_id, peer_id + "-rp", {}, config));
    }
  }

  uint64_t ram = spec.memory.size_mib * kMiB;
  auto layout = plan_address_layout(ram, ports);
  if (!layout) return fail(layout.error().context("gpus"));
  int phys_bits = layout->phys_bits;
  std::string reach = describe_reach(*layout, ram);
  if (spec.firmware.kind == model::FirmwareKind::kUefi) {
    auto aperture = plan_uefi_aperture(*layout);
    if (!aperture) return fail(aperture.error().context("gpus"));
    phys_bits = aperture->phys_bits;
    reach = "with UEFI firmware the 64-bit windows need an aperture of " + format_bytes(aperture->size) +
            " at " + format_bytes(aperture->base) + ", which needs " + std::to_string(phys_bits) +
            " physical address bits";
    plan.aperture = *aperture;
    plan.decisions.push_back("UEFI: OVMF's 64-bit aperture " + format_bytes(aperture->size) + " at " +
                             format_bytes(aperture->base) +
                             (aperture->needs_fw_cfg ? " (more than its default 32 GiB: X-PciMmio64Mb set)"
                                                     : " (its default)"));
    if (aperture->needs_fw_cfg)
      plan.fw_cfg.push_back(QemuOpts()
                                .set("name", "opt/ovmf/X-PciMmio64Mb")
                                .set("string", std::to_string(aperture->size / kMiB)));
  }
  if (config.accel == Accel::kKvm) {
    if (config.host_phys_bits > 0 && phys_bits > config.host_phys_bits)
      return fail(Code::kFailedPrecondition,
                  "gpus: " + std::to_string(gpus.size()) + " GPU(s) with 64-bit windows of " +
                      describe_gpu_windows(gpus, card_windows) + " do not fit on this host: " + reach +
                      "; the host CPU has " + std::to_string(config.host_phys_bits) +
                      " (kvm guests get the host's address bits)");
    plan.cpu.set("host-phys-bits", "on");
    plan.decisions.push_back(
        "guest physical address bits: the host CPU's (host-phys-bits=on, " +
        (config.host_phys_bits > 0 ? std::to_string(config.host_phys_bits) + " bits"
                                   : std::string("not known")) +
        "); the layout needs " + std::to_string(layout->phys_bits));
  } else {
    plan.cpu.set("phys-bits", std::to_string(phys_bits));
    plan.decisions.push_back("guest physical address bits: " + std::to_string(phys_bits) +
                             " (-cpu max,phys-bits), to reach " +
                             format_bytes(plan.aperture ? plan.aperture->base + plan.aperture->size
                                                        : layout->address_end));
  }
  if (!layout->hole64_is_default)
    plan.globals.push_back(
        QemuOpts().set("q35-pcihost.pci-hole64-size", std::to_string(layout->hole64_size)));
  plan.decisions.push_back(
      "64-bit PCI hole: " + format_bytes(layout->hole64_size) + " at " +
      format_bytes(layout->hole64_start) + "; the 64-bit BAR windows need " +
      format_bytes(layout->hole64_needed) +
      (layout->hole64_is_default ? ", which q35's default 32 GiB holds"
                                 : ", more than q35's default 32 GiB: pci-hole64-size set"));
  plan.decisions.push_back("below 4 GiB: " + format_bytes(layout->mmio32_needed) + " of the " +
                           format_bytes(kMmio32Budget) + " q35 leaves for passed-through devices");
  plan.layout = *layout;
  for (auto& device : devices) plan.devices.push_back(std::move(device));
  return ok();
}

}  // namespace

std::string name_argument(std::string_view vm_id) {
  return QemuOpts()
      .set(std::string(kNameGuestKey), std::string(vm_id))
      .set("debug-threads", "on")
      .render();
}

Result<std::vector<std::string>> build_argv(const ArgvConfig& config, const model::VmSpec& spec,
                                            const BlockGraph& images,
                                            const std::vector<model::AssignedGpu>& gpus,
                                            const RuntimeFiles& files, const std::string& vm_id) {
  FEOS_ASSIGN_OR_RETURN(auto launch, build_launch(config, spec, images, gpus, files, vm_id));
  return std::move(launch.argv);
}

Result<model::LaunchPlan> build_launch(const ArgvConfig& config, const model::VmSpec& spec,
                                       const BlockGraph& images,
                                       const std::vector<model::AssignedGpu>& gpus,
                                       const RuntimeFiles& files, const std::string& vm_id) {
  if (vm_id.empty()) return fail(Code::kInvalidArgument, "vm id is empty");
  if (vm_id.find('\0') != std::string::npos)
    return fail(Code::kInvalidArgument, "vm id contains a NUL byte");
  FEOS_TRY(model::validate(spec).map_error([&](const Error& e) { return e.context("vm " + vm_id); }));
  if (spec.memory.hugepages && config.hugepages_dir.empty())
    return fail(Code::kInvalidArgument,
                "vm " + vm_id + ": " + model::field::kMemoryHugepages +
                    ": no hugepages mount configured");
  if (spec.ignition && files.ignition_file.empty())
    return fail(Code::kInvalidArgument,
                "vm " + vm_id + ": " + model::field::kIgnition + ": no ignition file path given");

  MachinePlan plan;
  plan.cpu = QemuOpts(config.accel == Accel::kKvm ? "host" : "max");
  add_memory(plan, config, spec);
  FEOS_TRY(add_disks(plan, spec, images).map_error([&](const Error& e) {
    return e.context("vm " + vm_id);
  }));
  add_nets(plan, spec);
  FEOS_TRY(add_firmware(plan, config, spec, files).map_error([&](const Error& e) {
    return e.context("vm " + vm_id);
  }));
  FEOS_TRY(add_gpus(plan, config, spec, gpus).map_error([&](const Error& e) {
    return e.context("vm " + vm_id);
  }));

  std::vector<std::string> argv{config.binary};
  auto arg = [&](std::string_view flag, std::string value) {
    argv.emplace_back(flag);
    argv.push_back(std::move(value));
  };
  arg(kNameFlag, name_argument(vm_id));
  arg("-machine", plan.machine.render());
  arg(kAccelFlag, std::string(accel_name(config.accel)));
  arg("-cpu", plan.cpu.render());
  arg("-smp", std::to_string(spec.cpus.boot_vcpus) + "," +
                  QemuOpts().set("maxcpus", std::to_string(spec.cpus.max_vcpus)).render());
  arg("-m", std::to_string(spec.memory.size_mib) + "M");
  for (const auto& object : plan.objects) arg("-object", object.render());
  for (const auto& global : plan.globals) arg("-global", global.render());
  for (const char* flag : {"-nodefaults", "-no-user-config"}) argv.emplace_back(flag);
  arg("-sandbox", std::string(kSandbox));
  arg("-display", "none");
  arg("-msg", "timestamp=on");
  argv.emplace_back("-S");
  arg(kPidfileFlag, files.pid_file);
  arg("-chardev", QemuOpts("socket")
                          .set("id", std::string(kQmpChardevId))
                          .set("path", files.qmp_socket)
                          .set("server", "on")
                          .set("wait", "off")
                          .render());
  arg("-mon",
      QemuOpts().set("chardev", std::string(kQmpChardevId)).set("mode", "control").render());
  arg("-chardev", QemuOpts("socket")
                          .set("id", std::string(kConsoleChardevId))
                          .set("path", files.console_socket)
                          .set("server", "on")
                          .set("wait", "off")
                          .render());
  arg("-serial", "chardev:" + std::string(kConsoleChardevId));
  if (!spec.boot.kernel.empty()) {
    // qemu's multiboot loader splits -initrd at commas and opens each piece: a path with one in it
    // would make qemu open files nobody checked.
    if (spec.boot.initramfs.find(',') != std::string::npos)
      return fail(Code::kInvalidArgument, std::string(model::field::kBootInitramfs) + ": " +
                                              quote_for_message(spec.boot.initramfs) +
                                              " contains ',', which qemu's -initrd cannot take");
    arg("-kernel", spec.boot.kernel);
    if (!spec.boot.initramfs.empty()) arg("-initrd", spec.boot.initramfs);
    if (!spec.boot.cmdline.empty()) arg("-append", spec.boot.cmdline);
  }
  if (spec.ignition)
    arg("-fw_cfg",
        QemuOpts().set("name", "opt/com.coreos/config").set("file", files.ignition_file).render());
  for (const auto& fw_cfg : plan.fw_cfg) arg("-fw_cfg", fw_cfg.render());
  for (const auto& [flag, backend] : plan.backends) arg(flag, backend);
  for (const auto& device : plan.devices) arg(kDeviceFlag, device.render());

  model::LaunchPlan launch;
  launch.argv = std::move(argv);
  const uint64_t ram = spec.memory.size_mib * kMiB;
  // Without GPUs the layout is q35's own: the default hole after the RAM, qemu's default bits.
  AddressLayout layout;
  if (plan.layout) {
    layout = *plan.layout;
  } else {
    auto plain = plan_address_layout(ram, {});
    if (!plain) return fail(plain.error().context("vm " + vm_id));
    layout = *plain;
  }
  launch.address_space = model::AddressSpacePlan{.ram_bytes = ram,
                                                 .mmio32_bytes = layout.mmio32_needed,
                                                 .hole64_start = layout.hole64_start,
                                                 .hole64_size = layout.hole64_size,
                                                 .phys_bits = layout.phys_bits};
  if (plan.aperture) {
    launch.address_space.phys_bits = plan.aperture->phys_bits;
    launch.address_space.uefi_aperture_base = plan.aperture->base;
    launch.address_space.uefi_aperture_size = plan.aperture->size;
  }
  launch.firmware.spec = spec.firmware;
  if (config.uefi && spec.firmware.kind == model::FirmwareKind::kUefi) {
    launch.firmware.descriptor = config.uefi->descriptor;
    launch.firmware.code = config.uefi->code;
    launch.firmware.vars_template = config.uefi->vars_template;
    launch.firmware.vars = files.uefi_vars;
    launch.decisions.push_back("firmware: UEFI from " + config.uefi->descriptor +
                               (spec.firmware.secure_boot ? ", Secure Boot enforced (SMM)" : ""));
  } else {
    launch.decisions.push_back("firmware: BIOS (SeaBIOS, qemu's default)");
  }
  // kvm guests get the host's bits (host-phys-bits=on), when they are known.
  if (config.accel == Accel::kKvm && config.host_phys_bits > 0)
    launch.address_space.phys_bits = config.host_phys_bits;
  launch.decisions.push_back("accelerator: " + std::string(accel_name(config.accel)));
  for (auto& decision : plan.decisions) launch.decisions.push_back(std::move(decision));
  return launch;
}

}  // namespace feos::vmm::qemu
