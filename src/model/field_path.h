#pragma once
// The one style of field path in messages about a VM spec: the field as the client wrote it in
// the API request, e.g. "config.disks[1].device_id", "config.net[0].tap.tap_name",
// "config.gpus[0].address". api/, vmm/ and model::validate() build their paths here. Plain C
// strings, so that `field::kImageRef + std::string(": ...")` and string parameters take them.
#include <cstddef>
#include <string>
#include <string_view>

namespace feos::model::field {

inline constexpr const char* kConfig = "config";
inline constexpr const char* kCpusBootVcpus = "config.cpus.boot_vcpus";
inline constexpr const char* kCpusMaxVcpus = "config.cpus.max_vcpus";
inline constexpr const char* kMemorySizeMib = "config.memory.size_mib";
inline constexpr const char* kMemoryHugepages = "config.memory.hugepages";
inline constexpr const char* kMemoryHugepageSize = "config.memory.hugepage_size";
inline constexpr const char* kImageRef = "config.image_ref";
inline constexpr const char* kBootKernel = "config.boot.kernel";
inline constexpr const char* kBootInitramfs = "config.boot.initramfs";
inline constexpr const char* kBootCmdline = "config.boot.cmdline";
inline constexpr const char* kIgnition = "config.ignition";
inline constexpr const char* kDisks = "config.disks";
inline constexpr const char* kNets = "config.net";
inline constexpr const char* kGpus = "config.gpus";
inline constexpr const char* kGpuCount = "config.gpu_count.count";
inline constexpr const char* kGpuModel = "config.gpu_count.model";
inline constexpr const char* kFirmwareKind = "config.firmware.kind";
inline constexpr const char* kFirmwareSecureBoot = "config.firmware.secure_boot";
inline constexpr const char* kGpuP2pMode = "config.gpu_p2p.mode";
inline constexpr const char* kGpuP2pCliques = "config.gpu_p2p.cliques";
inline constexpr const char* kGuestNuma = "config.guest_numa";

// "<list>[<index>]", then ".<leaf>" when a leaf is given: element(kDisks, 1, "path").
inline std::string element(std::string_view list, size_t index, std::string_view leaf = {}) {
  std::string path = std::string(list) + "[" + std::to_string(index) + "]";
  if (!leaf.empty()) path += "." + std::string(leaf);
  return path;
}

// "config.disks[i]", "config.disks[i].<leaf>".
inline std::string disk(size_t index, std::string_view leaf = {}) { return element(kDisks, index, leaf); }
// "config.net[i]", "config.net[i].<leaf>" (the API's list is named "net").
inline std::string net(size_t index, std::string_view leaf = {}) { return element(kNets, index, leaf); }
// "config.gpus[i]", "config.gpus[i].<leaf>".
inline std::string gpu(size_t index, std::string_view leaf = {}) { return element(kGpus, index, leaf); }

}  // namespace feos::model::field
