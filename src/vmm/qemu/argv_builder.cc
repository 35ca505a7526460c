#include "vmm/qemu/argv_builder.h"

#include <optional>
#include <set>
#include <utility>

#include "pci/address.h"
#include "vmm/qemu/block_graph.h"
#include "vmm/qemu/guest_numa.h"
#include "vmm/qemu/machine_plan.h"
#include "vmm/qemu/memory_backing.h"
#include "vmm/qemu/mmio_layout.h"
#include "vmm/qemu/qemu_options.h"
#include "model/field_path.h"
#include "model/validate.h"

namespace feos::vmm::qemu {

std::string_view accel_name(Accel accel) { return accel == Accel::kKvm ? "kvm" : "tcg"; }

namespace {

using internal::MachinePlan;


// Guest NUMA nodes that mirror the GPUs' host nodes (guest_numa.h): a bound RAM backend, -numa
// node and pxb-pcie expander bus each.
void add_guest_numa(MachinePlan& plan, const MemoryPlan& memory, const GuestNuma& numa,
                    const std::vector<model::AssignedGpu>& gpus) {
  for (size_t i = 0; i < numa.nodes.size(); ++i) {
    const GuestNumaNode& node = numa.nodes[i];
    const std::string& id = memory.backends.at(i).id;
    plan.objects.push_back(render_backend(memory, memory.backends.at(i)));
    QemuOpts numa_node("node");
    numa_node.set("nodeid", std::to_string(i));
    if (node.cpus > 0) numa_node.set("cpus", cpu_range(node));
    plan.numa.push_back(numa_node.set("memdev", id));
    plan.devices.push_back(QemuOpts("pxb-pcie")
                               .set("id", node.bus)
                               .set("bus_nr", std::to_string(node.bus_nr))
                               .set("numa_node", std::to_string(i))
                               .set("bus", "pcie.0"));
    plan.decisions.push_back("NUMA: " + describe(node, static_cast<int>(i), gpus));
  }
  plan.gpu_bus = numa.gpu_bus;
}

// Guest RAM without guest NUMA: one backend when it is preallocated (memory_backing.h), else
// qemu's own from -m.
void add_memory(MachinePlan& plan, const MemoryPlan& memory) {
  if (memory.backends.empty()) return;
  plan.objects.push_back(render_backend(memory, memory.backends.front()));
  plan.machine.set("memory-backend", memory.backends.front().id);
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
  if (spec.memory.hugepages && (config.hugepages_dir.empty() || config.hugepage_kib == 0))
    return fail(Code::kInvalidArgument,
                "vm " + vm_id + ": " + model::field::kMemoryHugepages +
                    ": no hugepages mount configured");
  if (spec.ignition && files.ignition_file.empty())
    return fail(Code::kInvalidArgument,
                "vm " + vm_id + ": " + model::field::kIgnition + ": no ignition file path given");

  MachinePlan plan;
  plan.cpu = QemuOpts(config.accel == Accel::kKvm ? "host" : "max");
  std::optional<GuestNuma> numa;
  if (config.guest_numa) {
    FEOS_ASSIGN_OR_RETURN(numa, plan_guest_numa(spec, gpus, numa_step_mib(config, spec)).map_error([&](const Error& e) {
      return e.context("vm " + vm_id + ": guest NUMA");
    }));
  }
  const MemoryPlan memory = plan_memory(config, spec, numa, !gpus.empty());
  if (numa) add_guest_numa(plan, memory, *numa, gpus);
  else add_memory(plan, memory);
  for (const auto& line : describe_memory(memory)) plan.decisions.push_back("memory: " + line);
  FEOS_TRY(add_disks(plan, spec, images).map_error([&](const Error& e) {
    return e.context("vm " + vm_id);
  }));
  add_nets(plan, spec);
  FEOS_TRY(add_firmware(plan, config, spec, files).map_error([&](const Error& e) {
    return e.context("vm " + vm_id);
  }));
  FEOS_TRY(internal::add_gpus(plan, config, spec, gpus).map_error([&](const Error& e) {
    return e.context("vm " + vm_id);
  }));
  internal::add_hotplug_ports(plan, config);

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
  for (const auto& node : plan.numa) arg("-numa", node.render());
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
  // kvm guests get the host's bits (host-phys-bits=on), when they are known.
  if (config.accel == Accel::kKvm && config.host_phys_bits > 0)
    launch.address_space.phys_bits = config.host_phys_bits;
  std::string firmware_decision;
  launch.firmware.spec = spec.firmware;
  if (config.uefi && spec.firmware.kind == model::FirmwareKind::kUefi) {
    launch.firmware.descriptor = config.uefi->descriptor;
    launch.firmware.code = config.uefi->code;
    launch.firmware.vars_template = config.uefi->vars_template;
    launch.firmware.vars = files.uefi_vars;
    firmware_decision = "firmware: UEFI from " + config.uefi->descriptor +
                        (spec.firmware.secure_boot ? ", Secure Boot enforced (SMM)" : "");
  } else {
    firmware_decision = "firmware: BIOS (SeaBIOS, qemu's default)";
  }
  launch.decisions.push_back("accelerator: " + std::string(accel_name(config.accel)));
  launch.decisions.push_back(std::move(firmware_decision));
  for (auto& decision : plan.decisions) launch.decisions.push_back(std::move(decision));
  return launch;
}

}  // namespace feos::vmm::qemu
