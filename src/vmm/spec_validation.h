#pragma once
// Pure checks of a VmSpec's values, shared by every hypervisor adapter. No filesystem access:
// adapters add their own existence checks (Hypervisor::validate).
#include <string_view>

#include "common/error.h"
#include "model/vm.h"

namespace feos::vmm {

// Guest-visible device ids (disks, nets) follow QEMU's id rules: 1..64 characters, a letter first,
// then letters, digits, '-', '.', '_'. Ids starting with this prefix are reserved for the
// adapter's own devices (the root disk).
inline constexpr std::string_view kReservedIdPrefix = "feos-";
inline constexpr size_t kMaxDeviceIdLength = 64;
// q35's CPU limit in QEMU 7.2.
inline constexpr uint32_t kMaxVcpus = 288;
// 16 TiB: far beyond any host, and keeps size_mib * 2^20 from overflowing.
inline constexpr uint64_t kMaxMemoryMib = uint64_t{16} << 20;
// x86 COMMAND_LINE_SIZE is 2048 bytes including the terminating NUL.
inline constexpr size_t kMaxKernelCmdline = 2047;
// PATH_MAX is 4096 including the terminating NUL.
inline constexpr size_t kMaxHostPath = 4095;

// Checks every value of `spec`: vCPU counts (1 <= boot <= max <= kMaxVcpus), memory size,
// a root image or a kernel to boot, unique well-formed device ids, tap names (1..15 characters,
// no '/', ',', ':' or whitespace), MAC addresses (6 colon-separated hex octets, unicast), no NUL
// bytes in anything that becomes a command-line argument, host paths as validate_host_path().
// Errors: INVALID_ARGUMENT whose message names the field, e.g. "disks[1].device_id: ...".
Status validate_spec(const model::VmSpec& spec);

// A host file path from a request, before anything looks at the filesystem: absolute, at most
// kMaxHostPath bytes, no control characters, every component a plain name (no empty, "." or ".."
// component, no trailing '/'). INVALID_ARGUMENT naming `field` otherwise.
Status validate_host_path(std::string_view path, std::string_view field);

// "52:54:00:12:34:56" style (either case): INVALID_ARGUMENT naming `field` otherwise, when the
// multicast bit of the first octet is set (broadcast included), or for 00:00:00:00:00:00.
Status validate_mac(std::string_view mac, std::string_view field);

// QEMU-compatible device id (see above). INVALID_ARGUMENT naming `field`.
Status validate_device_id(std::string_view id, std::string_view field);

}  // namespace feos::vmm
