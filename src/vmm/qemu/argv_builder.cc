#include "vmm/qemu/argv_builder.h"

#include <utility>

#include "vmm/spec_validation.h"

namespace feos::vmm::qemu {

std::string_view accel_name(Accel accel) { return accel == Accel::kKvm ? "kvm" : "tcg"; }

std::string_view disk_format_name(DiskFormat format) {
  return format == DiskFormat::kQcow2 ? "qcow2" : "raw";
}

RuntimeFiles runtime_files(const std::string& runtime_dir) {
  RuntimeFiles files;
  files.qmp_socket = runtime_dir + "/qmp.sock";
  files.console_socket = runtime_dir + "/console.sock";
  files.pid_file = runtime_dir + "/qemu.pid";
  files.ignition_file = runtime_dir + "/ignition.json";
  files.qemu_log = runtime_dir + "/qemu.log";
  files.console_log = runtime_dir + "/console.log";
  return files;
}

namespace {

// QEMU's option syntax doubles a comma inside a value.
std::string escape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    out += c;
    if (c == ',') out += ',';
  }
  return out;
}

// One "-flag head,key=value,..." option. Values are escaped when rendered; `head` is the part
// before the first comma (a driver or backend type), or empty.
class Opts {
 public:
  Opts() = default;
  explicit Opts(std::string head) : head_(std::move(head)) {}
  Opts& set(std::string key, std::string value) {
    props_.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  bool empty() const { return head_.empty() && props_.empty(); }
  std::string render() const {
    std::string out = head_;
    for (const auto& [key, value] : props_) {
      if (!out.empty()) out += ',';
      out += key + "=" + escape(value);
    }
    return out;
  }

 private:
  std::string head_;
  std::vector<std::pair<std::string, std::string>> props_;
};

// The composed machine, filled section by section and rendered in a fixed order. A component
// (memory, disks, nets, and later vfio cards with their pcie-root-ports) adds machine and cpu
// properties, -global settings, backends and devices without knowing about the others.
struct MachinePlan {
  Opts machine{"q35"};
  Opts cpu;
  std::vector<Opts> objects;   // -object
  std::vector<Opts> globals;   // -global
  std::vector<std::pair<std::string, Opts>> backends;  // -blockdev / -netdev, in device order
  std::vector<Opts> devices;   // -device
};

void add_memory(MachinePlan& plan, const ArgvConfig& config, const model::VmSpec& spec) {
  if (!spec.memory.hugepages) return;
  // Guest RAM from hugetlbfs, shared (so later vfio and vhost users see it) and preallocated
  // (a VM must fail at start, not at runtime, when the host runs out of hugepages).
  plan.objects.push_back(Opts("memory-backend-file")
                             .set("id", "ram0")
                             .set("size", std::to_string(spec.memory.size_mib) + "M")
                             .set("mem-path", config.hugepages_dir)
                             .set("share", "on")
                             .set("prealloc", "on"));
  plan.machine.set("memory-backend", "ram0");
}

DiskFormat format_of(const ArgvConfig& config, const std::string& path) {
  auto it = config.disk_formats.find(path);
  return it == config.disk_formats.end() ? DiskFormat::kRaw : it->second;
}

void add_disk(MachinePlan& plan, const ArgvConfig& config, const std::string& node,
              const std::string& device_id, const std::string& path, bool readonly,
              bool serial, int bootindex) {
  plan.backends.emplace_back("-blockdev",
                             Opts()
                                 .set("driver", std::string(disk_format_name(format_of(config, path))))
                                 .set("node-name", node)
                                 .set("read-only", readonly ? "on" : "off")
                                 .set("file.driver", "file")
                                 .set("file.filename", path));
  Opts device("virtio-blk-pci");
  device.set("drive", node).set("id", device_id);
  // The guest finds the disk as /dev/disk/by-id/virtio-<device_id> (first 20 characters).
  if (serial) device.set("serial", device_id);
  if (bootindex >= 0) device.set("bootindex", std::to_string(bootindex));
  plan.devices.push_back(std::move(device));
}

void add_disks(MachinePlan& plan, const ArgvConfig& config, const model::VmSpec& spec) {
  bool kernel_boot = !spec.boot.kernel.empty();
  if (!spec.image_path.empty())
    add_disk(plan, config, "drive-root", std::string(kRootDiskId), spec.image_path, false, false,
             kernel_boot ? -1 : 0);
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const auto& disk = spec.disks[i];
    add_disk(plan, config, "drive" + std::to_string(i), disk.device_id, disk.path, disk.readonly,
             true, -1);
  }
}

void add_nets(MachinePlan& plan, const model::VmSpec& spec) {
  for (size_t i = 0; i < spec.nets.size(); ++i) {
    const auto& net = spec.nets[i];
    std::string netdev = "netdev" + std::to_string(i);
    // script=no: the tap exists already; qemu must not run /etc/qemu-ifup as root.
    plan.backends.emplace_back("-netdev", Opts("tap")
                                              .set("id", netdev)
                                              .set("ifname", net.tap_name)
                                              .set("script", "no")
                                              .set("downscript", "no"));
    Opts device("virtio-net-pci");
    device.set("netdev", netdev).set("id", net.device_id);
    if (!net.mac.empty()) device.set("mac", net.mac);
    plan.devices.push_back(std::move(device));
  }
}

}  // namespace

std::string name_argument(std::string_view vm_id) {
  return Opts().set("guest", std::string(vm_id)).set("debug-threads", "on").render();
}

Result<std::vector<std::string>> build_argv(const ArgvConfig& config, const model::VmSpec& spec,
                                            const std::vector<model::AssignedGpu>& gpus,
                                            const RuntimeFiles& files, const std::string& vm_id) {
  if (vm_id.empty()) return fail(Code::kInvalidArgument, "vm id is empty");
  if (vm_id.find('\0') != std::string::npos)
    return fail(Code::kInvalidArgument, "vm id contains a NUL byte");
  FEOS_TRY(validate_spec(spec).map_error([&](const Error& e) { return e.context("vm " + vm_id); }));
  if (spec.memory.hugepages && config.hugepages_dir.empty())
    return fail(Code::kInvalidArgument,
                "vm " + vm_id + ": memory.hugepages: no hugepages mount configured");
  // A GPU must fail the start rather than be left out silently. Passthrough will add, per card,
  // a pcie-root-port and its vfio-pci functions to MachinePlan::devices, and pci-hole64-size /
  // phys-bits to plan.globals / plan.cpu.
  if (!gpus.empty())
    return fail(Code::kUnimplemented,
                "vm " + vm_id + ": gpus: GPU passthrough is not supported by this qemu adapter yet");
  if (spec.ignition && files.ignition_file.empty())
    return fail(Code::kInvalidArgument, "vm " + vm_id + ": ignition: no ignition file path given");

  MachinePlan plan;
  plan.cpu = Opts(config.accel == Accel::kKvm ? "host" : "max");
  add_memory(plan, config, spec);
  add_disks(plan, config, spec);
  add_nets(plan, spec);

  std::vector<std::string> argv{config.binary};
  auto arg = [&](std::string flag, std::string value) {
    argv.push_back(std::move(flag));
    argv.push_back(std::move(value));
  };
  arg("-name", name_argument(vm_id));
  arg("-machine", plan.machine.render());
  arg("-accel", std::string(accel_name(config.accel)));
  arg("-cpu", plan.cpu.render());
  arg("-smp", std::to_string(spec.cpus.boot_vcpus) + "," +
                  Opts().set("maxcpus", std::to_string(spec.cpus.max_vcpus)).render());
  arg("-m", std::to_string(spec.memory.size_mib) + "M");
  for (const auto& object : plan.objects) arg("-object", object.render());
  for (const auto& global : plan.globals) arg("-global", global.render());
  for (const char* flag : {"-nodefaults", "-no-user-config"}) argv.emplace_back(flag);
  arg("-display", "none");
  arg("-msg", "timestamp=on");
  argv.emplace_back("-S");
  arg("-pidfile", files.pid_file);
  arg("-chardev", Opts("socket")
                      .set("id", std::string(kQmpChardevId))
                      .set("path", files.qmp_socket)
                      .set("server", "on")
                      .set("wait", "off")
                      .render());
  arg("-mon", Opts().set("chardev", std::string(kQmpChardevId)).set("mode", "control").render());
  arg("-chardev", Opts("socket")
                      .set("id", std::string(kConsoleChardevId))
                      .set("path", files.console_socket)
                      .set("server", "on")
                      .set("wait", "off")
                      .render());
  arg("-serial", "chardev:" + std::string(kConsoleChardevId));
  if (!spec.boot.kernel.empty()) {
    arg("-kernel", spec.boot.kernel);
    if (!spec.boot.initramfs.empty()) arg("-initrd", spec.boot.initramfs);
    if (!spec.boot.cmdline.empty()) arg("-append", spec.boot.cmdline);
  }
  if (spec.ignition)
    arg("-fw_cfg",
        Opts().set("name", "opt/com.coreos/config").set("file", files.ignition_file).render());
  for (const auto& [flag, backend] : plan.backends) arg(flag, backend.render());
  for (const auto& device : plan.devices) arg("-device", device.render());
  return argv;
}

}  // namespace feos::vmm::qemu
