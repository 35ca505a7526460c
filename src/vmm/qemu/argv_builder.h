#pragma once
// Pure translation of a VmSpec into a qemu-system-x86_64 command line. Nothing here touches the
// filesystem or the host: everything the command line needs that is not in the spec (resolved
// accelerator, detected disk formats, runtime file paths, hugepages mount) is passed in, so the
// result is a deterministic function of the inputs and is tested with golden argv lists.
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "model/gpu.h"
#include "model/vm.h"

namespace feos::vmm::qemu {

enum class Accel { kKvm, kTcg };
enum class DiskFormat { kRaw, kQcow2 };

std::string_view accel_name(Accel accel);  // "kvm", "tcg"
std::string_view disk_format_name(DiskFormat format);  // "raw", "qcow2"

// Host facts the builder needs, resolved by the adapter before building.
struct ArgvConfig {
  std::string binary = "qemu-system-x86_64";
  Accel accel = Accel::kTcg;
  // hugetlbfs mount for guest RAM (HostPaths::hugepages()); required when spec.memory.hugepages.
  std::string hugepages_dir;
  // Detected format per host image path (root image and extra disks); absent paths are raw.
  std::map<std::string, DiskFormat> disk_formats;
};

// Per-VM files in the runtime directory (see runtime_files()).
struct RuntimeFiles {
  std::string qmp_socket;
  std::string console_socket;
  std::string pid_file;
  std::string ignition_file;  // written by the adapter when spec.ignition is set
  std::string qemu_log;       // qemu's stdout+stderr (not on the command line)
  std::string console_log;    // everything the guest wrote to its serial port
};

// The fixed file names inside `runtime_dir`: qmp.sock, console.sock, qemu.pid, ignition.json,
// qemu.log, console.log.
RuntimeFiles runtime_files(const std::string& runtime_dir);

// The value of `-name` for `vm_id` ("guest=<id>,debug-threads=on"). Adoption after a daemon
// restart finds exactly this argument in /proc/<pid>/cmdline.
std::string name_argument(std::string_view vm_id);

// Internal ids of the adapter's fixed chardevs and devices (stable across releases: a daemon
// adopting a running qemu addresses them by these names).
inline constexpr std::string_view kQmpChardevId = "qmp0";
inline constexpr std::string_view kConsoleChardevId = "con0";
inline constexpr std::string_view kRootDiskId = "feos-root";

// Builds the argv (argv[0] = config.binary) for `vm_id`:
//   q35 machine, no default devices or user config, no display; kvm + `-cpu host` or tcg +
//   `-cpu max`; `-smp boot,maxcpus=max`; `-m <mib>M` (with hugepages: a shared, preallocated
//   memory-backend-file in config.hugepages_dir); vCPUs start stopped (`-S`: the adapter attaches
//   the console, then resumes with QMP `cont`, so no early output is lost); QMP and serial
//   console on unix sockets (server=on,wait=off); `-pidfile`; direct kernel boot when
//   spec.boot.kernel is set; root image (bootindex 0 unless booting a kernel) and extra disks as
//   virtio-blk over -blockdev; taps as virtio-net-pci; ignition via fw_cfg opt/com.coreos/config.
// Preconditions: none (the spec is validated here with validate_spec()).
// `gpus` are the VM's GPUs as the host side resolved them (spec.gpus are only the requests and are
// not read here).
// Errors: INVALID_ARGUMENT naming the field for a bad spec, or when vm_id is empty, hugepages are
// requested without config.hugepages_dir, or spec.ignition is set without files.ignition_file;
// UNIMPLEMENTED when `gpus` is not empty (vfio-pci devices are not built yet).
Result<std::vector<std::string>> build_argv(const ArgvConfig& config, const model::VmSpec& spec,
                                            const std::vector<model::AssignedGpu>& gpus,
                                            const RuntimeFiles& files, const std::string& vm_id);

}  // namespace feos::vmm::qemu
