#pragma once
// Pure translation of a VmSpec into a qemu-system-x86_64 command line. Nothing here touches the
// filesystem or the host: everything the command line needs that is not in the spec (resolved
// accelerator, the checked image graph of the disks, runtime file paths, hugepages mount) is
// passed in, so the result is a deterministic function of the inputs and is tested with golden
// argv lists.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "model/gpu.h"
#include "model/vm.h"
#include "model/vm_plan.h"
#include "vmm/qemu/block_graph.h"
#include "vmm/qemu/firmware.h"
#include "vmm/qemu/runtime_dir.h"

namespace feos::vmm::qemu {

enum class Accel { kKvm, kTcg };

std::string_view accel_name(Accel accel);  // "kvm", "tcg"

// Host facts the builder needs, resolved by the adapter before building.
struct ArgvConfig {
  std::string binary = "qemu-system-x86_64";
  Accel accel = Accel::kTcg;
  // The hugetlbfs mount for guest RAM of the page size the VM asks for (hugepages.h) and that
  // size in KiB; required when spec.memory.hugepages.
  std::string hugepages_dir;
  uint64_t hugepage_kib = 0;
  // The CPUs of each host NUMA node guest RAM may be bound to: they cap the preallocation
  // threads of a backend bound there, and qemu starts on them (memory_backing.h); absent: not
  // capped, qemu starts anywhere.
  std::map<int, std::vector<int>> host_node_cpus;
  // The host CPU's physical address bits (/proc/cpuinfo "address sizes"); 0 = unknown. With kvm
  // the guest gets the host's bits (host-phys-bits=on), so a GPU layout that needs more is
  // refused before qemu starts.
  int host_phys_bits = 0;
  // The QEMU places the GPUDirect capability at D4h when a GPU's MSI-X holds C8h (QEMU 8.1 and
  // newer): such GPUs can then get a clique (gpudirect.h).
  bool gpudirect_d4 = false;
  // Mirror the host NUMA nodes of the VM's GPUs in the guest (guest_numa.h): on by default on a
  // host with more than one node, off with the daemon's --guest-numa=off.
  bool guest_numa = false;
  // The UEFI firmware the adapter found (firmware.h); required when spec.firmware is UEFI.
  std::optional<UefiFirmware> uefi;
  // Empty pcie-root-ports for disks and NICs attached while the VM runs (hotplug_ports.h).
  int hotplug_ports = 0;
};

// The value of `-name` for `vm_id` ("guest=<id>,debug-threads=on"). Adoption after a daemon
// restart finds exactly this argument in /proc/<pid>/cmdline.
std::string name_argument(std::string_view vm_id);

// What a restarted daemon reads back from the command lines build_argv() wrote
// (read_qemu_identity(), qemu_cmdline.h): the VM from `-name guest=<id>`, the runtime directory
// from `-pidfile`, the accelerator from `-accel` (accel_name()), and the host functions from the
// `host=` of each `-device vfio-pci,...`. Stable across releases: a daemon adopts the qemu an
// older one started.
inline constexpr std::string_view kNameFlag = "-name";
inline constexpr std::string_view kNameGuestKey = "guest";
inline constexpr std::string_view kPidfileFlag = "-pidfile";
inline constexpr std::string_view kAccelFlag = "-accel";
inline constexpr std::string_view kDeviceFlag = "-device";
inline constexpr std::string_view kVfioDriver = "vfio-pci";
inline constexpr std::string_view kVfioHostKey = "host";

// Internal ids of the adapter's fixed chardevs and devices (stable across releases: a daemon
// adopting a running qemu addresses them by these names).
inline constexpr std::string_view kQmpChardevId = "qmp0";
inline constexpr std::string_view kConsoleChardevId = "con0";
inline constexpr std::string_view kRootDiskId = "feos-root";

// qemu's seccomp filter, on for every VM: besides the default deny list, no obsolete system
// calls, no setuid/setgid and friends (qemu never needs to change identity: the launcher did),
// no fork/exec (nothing here spawns helpers: taps come with script=no,downscript=no), no
// scheduler/affinity/NUMA policy calls. Needs a qemu built with libseccomp (Debian's is).
inline constexpr std::string_view kSandbox =
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

// Builds the argv (argv[0] = config.binary) for `vm_id`:
//   q35 machine, no default devices or user config, `-sandbox` kSandbox, no display; kvm + `-cpu host` or tcg +
//   `-cpu max`; `-smp boot,maxcpus=max`; `-m <mib>M` (with hugepages or GPUs: a memory
//   backend, preallocated by several threads, from config.hugepages_dir with hugepages: see
//   memory_backing.h); vCPUs start stopped (`-S`: the adapter attaches
//   the console, then resumes with QMP `cont`, so no early output is lost); QMP and serial
//   console on unix sockets (server=on,wait=off); `-pidfile`; direct kernel boot when
//   spec.boot.kernel is set; root image (bootindex 0 unless booting a kernel) and extra disks as
//   virtio-blk, each over the explicit -blockdev graph of its image chain in `images` (node
//   drive-root, drive<i>; see blockdev_values()): qemu opens no file path of the spec itself;
//   taps as virtio-net-pci; ignition via fw_cfg opt/com.coreos/config.
// `gpus` are the VM's GPUs as the host side resolved them (spec.gpus are only the requests and are
// not read here). Each card gets its own pcie-root-port (id feos-gpu<i>-rp, chassis 1, slot
// 1..n) holding all its functions in guest slot 0 with their host function numbers
// (`vfio-pci,host=...,bus=feos-gpu<i>-rp,addr=0x0.<f>`, multifunction=on on function 0 of a
// multi-function card); each group peer gets a root port of its own (feos-gpu<i>-peer<j>-rp).
// Options: rombar=0 when the request says RomBar::kOff (default and kOn keep qemu's default,
// rombar=1: the guest sees the card's own option ROM); x-vga=on on a VGA-class function 0 of a
// boot_vga request; x-nv-gpudirect-clique=<id> on the NVIDIA display functions of the GPUs
// plan_gpudirect() puts in a clique (spec.gpu_p2p; gpudirect.h). The address space is
// sized from the BARs (see mmio_layout.h): `-global q35-pcihost.pci-hole64-size=<bytes>` when the
// 64-bit windows exceed q35's 32 GiB default, and the guest's physical address bits
// (tcg: `-cpu max,phys-bits=N`; kvm: `-cpu host,host-phys-bits=on`).
// UEFI (spec.firmware): config.uefi's code read-only as pflash0 and the VM's own variable store
// (files.uefi_vars) as pflash1, each a file node under a raw node (feos-fw-code, feos-fw-vars);
// a Secure Boot build gets `smm=on` and `-global driver=cfi.pflash01,property=secure,value=on`.
// With GPUs, OVMF's aperture is planned (plan_uefi_aperture): phys-bits reach its end, and
// `-fw_cfg name=opt/ovmf/X-PciMmio64Mb,string=<MiB>` when it exceeds OVMF's default.
// Preconditions: none (the spec is validated here with model::validate()).
// Errors: INTERNAL when `images` lacks the chain of a disk of `spec` (or has one too many);
// INVALID_ARGUMENT naming the field for a bad spec, or when vm_id is empty, hugepages are
// requested without config.hugepages_dir and hugepage_kib, or spec.ignition is set without files.ignition_file;
// INVALID_ARGUMENT naming gpus[i] for a malformed GPU (no functions, function 0 not first,
// functions of different slots, a repeated address, a function without an IOMMU group,
// a bad BAR), boot_vga on a card whose function 0 is not VGA-class or on more than one card, or an
// explicit clique plan_gpudirect() refuses (its errors); FAILED_PRECONDITION naming the numbers when the BARs do not fit below
// 4 GiB, or the layout (with UEFI: OVMF's aperture) needs more physical address bits than 52 or
// than config.host_phys_bits (kvm, when known; the message names each GPU's 64-bit window);
// INTERNAL when a UEFI spec comes without config.uefi, or Secure Boot with a build that does not
// require SMM.
Result<std::vector<std::string>> build_argv(const ArgvConfig& config, const model::VmSpec& spec,
                                            const BlockGraph& images,
                                            const std::vector<model::AssignedGpu>& gpus,
                                            const RuntimeFiles& files, const std::string& vm_id);

// build_argv()'s command line together with the guest address space it gives (RAM, the
// below-4-GiB windows, the 64-bit hole, phys-bits: mmio_layout.h's numbers; without GPUs q35's
// default hole) and the decisions behind them, one sentence each. The one function behind both a
// start and a dry run (Hypervisor::plan_start). Errors: build_argv()'s.
Result<model::LaunchPlan> build_launch(const ArgvConfig& config, const model::VmSpec& spec,
                                       const BlockGraph& images,
                                       const std::vector<model::AssignedGpu>& gpus,
                                       const RuntimeFiles& files, const std::string& vm_id);

}  // namespace feos::vmm::qemu
