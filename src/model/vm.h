#pragma once
// Domain types of a VM, shared by core/, store/ and vmm/. No protobuf here: api/ converts.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/gpu.h"

namespace feos::model {

struct CpuSpec {
  uint32_t boot_vcpus = 1;
  uint32_t max_vcpus = 1;  // >= boot_vcpus
};

// The page size of hugepage-backed guest RAM (feosd extension): the host's default hugepage size
// (/proc/meminfo "Hugepagesize:", FeOS's plain `hugepages`), or one named.
enum class HugepageSize {
  kHostDefault = 0,
  k2M = 1,
  k1G = 2,
};
std::string_view hugepage_size_name(HugepageSize size);  // "2M", "1G", "" for kHostDefault
uint64_t hugepage_size_kib(HugepageSize size);           // 2048, 1048576, 0 for kHostDefault

struct MemorySpec {
  uint64_t size_mib = 512;
  bool hugepages = false;  // back guest RAM with hugetlbfs (a mount of the page size below)
  HugepageSize hugepage_size = HugepageSize::kHostDefault;  // only with hugepages
};

// Direct kernel boot (our extension of FeOS's config): no image service needed.
struct BootSpec {
  std::string kernel;     // host path of a kernel image (bzImage / vmlinux)
  std::string initramfs;  // host path, optional
  std::string cmdline;    // kernel command line, optional
};

// How a disk image is opened. Recorded when the VM is created and never guessed again at start: a
// guest that writes a qcow2 header onto its raw disk must not get it opened as qcow2 (with a
// backing file of its choosing) the next time.
enum class DiskFormat {
  kUnknown = 0,  // not recorded (VMs created before formats were): detected at start
  kRaw = 1,
  kQcow2 = 2,
};
std::string_view disk_format_name(DiskFormat format);  // "raw", "qcow2", "" for kUnknown

struct DiskSpec {
  std::string device_id;  // guest-visible id; unique within the VM
  std::string path;       // host path of a disk image (raw or qcow2)
  bool readonly = false;
  DiskFormat format = DiskFormat::kUnknown;  // recorded at create
};

struct NetSpec {
  std::string device_id;  // unique within the VM
  std::string tap_name;   // host tap interface (created by a live attach when missing)
  std::string mac;        // "52:54:00:12:34:56"; empty = hypervisor picks
  // feosd created the tap at a live attach; it removes it when the NIC leaves (detach, delete).
  // Never taken from a request.
  bool tap_created = false;
};

// The guest's firmware (feosd extension). BIOS is SeaBIOS, FeOS's behaviour; UEFI is OVMF, found
// through QEMU's firmware descriptors, with a variable store of the VM's own.
enum class FirmwareKind {
  kBios = 0,
  kUefi = 1,
};
std::string_view firmware_name(FirmwareKind kind);  // "bios", "uefi"

struct FirmwareSpec {
  FirmwareKind kind = FirmwareKind::kBios;
  bool secure_boot = false;  // UEFI only: a Secure Boot build with Microsoft's keys enrolled
};

// The VM's NVIDIA GPUDirect P2P cliques (feosd extension): by host topology (auto, the default),
// none, or the client's own groups of its GPUs (docs/topology.md).
enum class GpuP2pMode { kAuto = 0, kOff = 1, kExplicit = 2 };
struct GpuP2pSpec {
  GpuP2pMode mode = GpuP2pMode::kAuto;
  // kExplicit: each a group of the VM's GPUs (by address, at least two) that gets one clique id,
  // in list order from 0. Empty otherwise.
  std::vector<std::vector<pci::Address>> cliques;
  friend bool operator==(const GpuP2pSpec&, const GpuP2pSpec&) = default;
};

// Guest NUMA for one VM (feosd extension): the daemon's --guest-numa (default), or on (auto: on a
// host with more than one node) or off for this VM.
enum class GuestNumaMode { kDefault = 0, kAuto = 1, kOff = 2 };
std::string_view guest_numa_name(GuestNumaMode mode);  // "default", "auto", "off"

// Whether `image_ref` names an image in a registry ("registry/name:tag", "...@sha256:..."), to be
// pulled by feosd's image store, rather than a local file: not empty, not an absolute path, no URL
// scheme. Its syntax is the image store's to check. For such a ref, image_path is the store's.
bool names_registry_image(std::string_view image_ref);

struct VmSpec {
  CpuSpec cpus;
  MemorySpec memory;
  std::string image_ref;  // as the client gave it (FeOS field)
  std::string image_path; // resolved local root disk image; empty when booting a kernel only
  DiskFormat image_format = DiskFormat::kUnknown;  // image_path's, recorded at create
  std::vector<DiskSpec> disks;
  std::vector<NetSpec> nets;
  std::optional<std::string> ignition;  // passed to the guest via fw_cfg opt/com.coreos/config
  BootSpec boot;
  std::vector<GpuSpec> gpus;  // whole GPUs by host PCIe address (feosd extension)
  FirmwareSpec firmware;
  // GPUs by count (feosd extension). Resolved at create: the GPUs picked are appended to `gpus`
  // and this stays as the record of what was asked.
  std::optional<GpuCount> gpu_count;
  GpuP2pSpec gpu_p2p;
  GuestNumaMode guest_numa = GuestNumaMode::kDefault;
};

// Values equal FeOS's VmState enum numbers.
enum class VmState {
  kUnspecified = 0,
  kCreating = 1,
  kCreated = 2,
  kRunning = 3,
  kPaused = 4,
  kStopped = 5,
  kCrashed = 6,
};

std::string_view state_name(VmState state);  // "running", "stopped", ...

struct VmRecord {
  std::string id;
  VmSpec spec;
  VmState state = VmState::kCreating;
  std::string state_reason;  // why the VM is in its state ("guest powered off", ...)
  int pid = 0;               // hypervisor process while running/paused, else 0
  // What the host side resolved for spec.gpus when it last prepared them; the ownership ledger
  // (store) says whether the host still holds them for this VM.
  std::vector<AssignedGpu> gpus;
  int64_t created_unix_ms = 0;
  int64_t updated_unix_ms = 0;
};

struct VmEvent {
  int64_t id = 0;  // increasing across all VMs; the API's event id
  std::string vm_id;
  std::string component_id;  // "vm" for state changes
  VmState state = VmState::kUnspecified;
  std::string reason;
  int64_t unix_ms = 0;
};

}  // namespace feos::model
