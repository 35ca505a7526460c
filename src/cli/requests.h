#pragma once
// Pure translation of command-line values into API request messages: no gRPC, no I/O except the
// injected Filesystem (for --ignition). Every error is INVALID_ARGUMENT and names the flag, so
// the CLI reports it as a usage error.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "feos/vm/vmm/api/v1/vm.pb.h"
#include "feosd/v1/passthrough.pb.h"
#include "sys/filesystem.h"

namespace feos::cli {

namespace v1 = ::feos::vm::vmm::api::v1;
namespace hostv1 = ::feosd::v1;

// Parses a plain decimal integer (digits only, no sign, no base prefix) within [min, max].
// INVALID_ARGUMENT "<flag>: ..." otherwise.
Result<uint64_t> parse_uint(std::string_view flag, std::string_view text, uint64_t min,
                            uint64_t max);

// Parses a duration in seconds: a finite decimal number > 0 ("2", "0.5").
// INVALID_ARGUMENT "<flag>: ..." otherwise.
Result<double> parse_seconds(std::string_view flag, std::string_view text);

// Parses a VM state name: "running", "RUNNING" or "VM_STATE_RUNNING" (any case).
// VM_STATE_UNSPECIFIED is not accepted. INVALID_ARGUMENT "<flag>: ..." otherwise.
Result<v1::VmState> parse_state(std::string_view flag, std::string_view text);

// `path` made absolute against `cwd` (an absolute directory) and lexically normalised; absolute
// paths are only normalised. The daemon runs in another directory, so relative paths must not
// reach it. Precondition: `path` is not empty.
std::string absolute_path(std::string_view path, std::string_view cwd);

// "PATH[,ro][,id=ID]" -> DiskConfig{path (absolute), readonly, device_id}. Options may come in any
// order, each at most once. INVALID_ARGUMENT "--disk: ..." for an empty path, an empty id or an
// unknown option.
Result<v1::DiskConfig> parse_disk_spec(std::string_view spec, std::string_view cwd);

// "NAME[,mac=MAC][,id=ID]" -> NetConfig{tap{tap_name}, mac_address, device_id}. MAC is six
// colon-separated hex octets. INVALID_ARGUMENT "--tap: ..." for a missing name, a malformed MAC,
// an empty id or an unknown option.
Result<v1::NetConfig> parse_tap_spec(std::string_view spec);

// "ADDR[,rombar=on|off][,boot-vga]" -> GpuConfig{address, rombar, boot_vga}. ADDR goes to the
// daemon as typed: it parses PCI addresses strictly and names the bad one. Options may come in
// any order, each at most once; without rombar= the daemon's default applies (ROM_BAR_DEFAULT).
// INVALID_ARGUMENT "--gpu: ..." for a missing address, an unknown option or a rombar value other
// than on/off.
Result<hostv1::GpuConfig> parse_gpu_spec(std::string_view spec);

// Raw values of `vm create`'s flags, as typed (numbers still text, so errors can quote them).
struct CreateArgs {
  std::optional<std::string> vm_id;          // --id
  std::string vcpus = "1";                   // --vcpus
  std::optional<std::string> max_vcpus;      // --max-vcpus
  std::string memory_mib = "512";            // --memory
  std::optional<std::string> hugepages;      // --hugepages [2M|1G]; "": the host's default size
  std::optional<std::string> image;          // --image (path or URL)
  std::optional<std::string> kernel;         // --kernel
  std::optional<std::string> initramfs;      // --initramfs
  std::optional<std::string> cmdline;        // --cmdline
  std::vector<std::string> disks;            // --disk, repeatable
  std::vector<std::string> taps;             // --tap, repeatable
  std::vector<std::string> gpus;             // --gpu, repeatable
  std::optional<std::string> gpu_count;      // --gpus N: more GPUs, picked by the daemon
  std::optional<std::string> gpu_model;      // --gpu-model (with --gpus)
  bool gpu_p2p = false;                      // --gpu-p2p (with --gpus)
  std::vector<std::string> gpu_cliques;      // --gpu-clique ADDR,ADDR[,...] (repeatable) or off
  std::optional<std::string> guest_numa;     // --guest-numa auto|off
  std::optional<std::string> ignition_file;  // --ignition (read here, content sent)
  std::optional<std::string> firmware;       // --firmware bios|uefi
  bool secure_boot = false;                  // --secure-boot (UEFI only)
};

// Builds the CreateVmRequest: numbers checked (vcpus >= 1 and fitting uint32, max-vcpus >= vcpus,
// memory >= 1 MiB and small enough that its size in bytes fits uint64),
// host paths (image without "scheme://", kernel, initramfs, disks) made absolute against `cwd`, the
// ignition file read through `fs`, each --gpu parsed in order, --gpus N (1..16) with its
// --gpu-model and --gpu-p2p (refused without --gpus), --gpu-clique (each a comma-separated group
// of GPU addresses, the daemon checks them; "off" alone: no clique), --guest-numa auto|off,
// --firmware bios|uefi (--secure-boot alone means uefi; with bios it is refused). `boot` is set only when --kernel,
// --initramfs or --cmdline is. Whether the config as a whole is bootable (image or kernel given,
// ...) is the daemon's call. INVALID_ARGUMENT naming the flag on any bad value or an unreadable
// ignition file.
Result<v1::CreateVmRequest> build_create_request(const CreateArgs& args, std::string_view cwd,
                                                 const sys::Filesystem& fs);

// Raw values of `vm events`' history flags; at most one of the three may be set (the proto's
// streaming_mode oneof; the parser enforces it).
struct EventsArgs {
  std::optional<std::string> vm_id;     // positional ID
  std::optional<std::string> tail;      // --tail N         -> tail_events
  std::optional<std::string> since_id;  // --since-id ID    -> tail_id
  std::optional<std::string> since_s;   // --since SECONDS  -> tail_seconds
};

// Builds the StreamVmEventsRequest. INVALID_ARGUMENT naming the flag for a bad number, an empty
// --since-id, or more than one history flag.
Result<v1::StreamVmEventsRequest> build_events_request(const EventsArgs& args);

}  // namespace feos::cli
