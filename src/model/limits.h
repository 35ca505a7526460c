#pragma once
// The one table of bounds on a VM spec. model::validate() enforces them; api/ and the CLI use the
// same names, so a limit is changed here and nowhere else. Lengths are bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace feos::model {

// --- CPUs and memory ---
// q35's CPU limit in QEMU 7.2.
inline constexpr uint32_t kMaxVcpus = 288;
// 16 TiB: far beyond any host, and keeps size_mib * 2^20 from overflowing.
inline constexpr uint64_t kMaxMemoryMib = uint64_t{16} << 20;

// --- device counts per VM ---
// Disks and NICs each: every one is a qemu device with its own PCI slot.
inline constexpr size_t kMaxDisks = 64;
inline constexpr size_t kMaxNics = 64;
// Whole GPUs: an HGX host has 8; 16 leaves room without letting a request plan thousands.
inline constexpr size_t kMaxGpus = 16;
// GPUDirect clique ids: the capability's 4-bit id field (QEMU x-nv-gpudirect-clique 0-15).
inline constexpr size_t kMaxGpudirectCliques = 16;
// A GPU model asked by name: "10de:2335" or a part of a pci.ids product name.
inline constexpr size_t kMaxGpuModelLength = 64;

// --- strings ---
// PATH_MAX is 4096 including the terminating NUL.
inline constexpr size_t kMaxHostPath = 4095;
// image_ref as the client gave it, before it is resolved to a path ("file://" plus a path).
inline constexpr size_t kMaxImageRef = 4096;
// x86 COMMAND_LINE_SIZE is 2048 bytes including the terminating NUL.
inline constexpr size_t kMaxKernelCmdline = 2047;
// Guest-visible device ids (disks, nets) follow QEMU's id rules, at most this long.
inline constexpr size_t kMaxDeviceId = 64;
// Device ids starting with this prefix are reserved for the adapter's own devices (the root disk).
inline constexpr std::string_view kReservedIdPrefix = "feos-";
// IFNAMSIZ is 16 including the NUL.
inline constexpr size_t kMaxTapName = 15;
// A MAC address as text: six hex octets separated by ':' ("52:54:00:12:34:56").
inline constexpr size_t kMacAddressLength = 17;
// A PCI address as text ("0000:17:00.0" is 12 bytes); longer text is refused before parsing.
inline constexpr size_t kMaxPciAddressText = 32;
// Ignition configs are JSON of a few KiB; 1 MiB bounds what every VM record stores.
inline constexpr size_t kMaxIgnition = size_t{1} << 20;

}  // namespace feos::model
