#pragma once
// Domain types of GPU passthrough: what a client asks for (GpuSpec) and what the host side
// resolved and holds for a VM (AssignedGpu). The QEMU argv builder consumes AssignedGpu only, so
// every GPU is resolved to concrete functions and IOMMU groups before an argv is built.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pci/address.h"
#include "pci/iommu_group.h"

namespace feos::model {

enum class RomBar { kDefault, kOn, kOff };  // kDefault: the hypervisor's choice (on for GPUs)

// One GPU of a VM, by the host PCIe address of its display/3D function (normally function 0); the
// card's other functions travel with it.
struct GpuSpec {
  pci::Address address;  // parsed from the request (api) or the stored record (store)
  RomBar rombar = RomBar::kDefault;
  bool boot_vga = false;  // the GPU is the guest's primary display (x-vga); allows the host boot VGA
};

// GPUs by count (feosd extension): feosd picks free GPUs by host topology at create and records
// them as GpuSpecs, so every later start takes the same ones.
struct GpuCount {
  uint32_t count = 0;  // 1..kMaxGpus
  // "10de:2335" (vendor:device), or a case-insensitive part of the product name ("H200"); empty:
  // any GPU.
  std::string model;
  bool p2p = false;  // the guest wants peer-to-peer: GPUs under one PCIe switch first
  friend bool operator==(const GpuCount&, const GpuCount&) = default;
};

struct Bar {
  int index = 0;        // BAR register 0-5
  uint64_t size = 0;    // bytes
  bool is_64bit = false;
  bool prefetchable = false;
  bool is_io = false;   // I/O port BAR (not MMIO)
};

// One host PCI function passed to a VM.
struct PassthroughFunction {
  pci::Address address;         // 0000:17:00.1
  std::string id;               // "10de:2330"
  uint32_t class_code = 0;      // 0x030200
  std::optional<pci::IommuGroup> iommu_group;  // absent: none (the host side requires one)
  std::string original_driver;  // driver before vfio-pci took it; empty when it was unbound
  std::vector<Bar> bars;        // present BARs
};

// Where the NVIDIA GPUDirect P2P capability (8 bytes of vendor capability that tell the guest driver
// which GPUs can reach each other, docs/topology.md) can sit in a GPU's standard config space: the
// spec's place C8h, else the revised spec's D4h (Turing and newer have MSI-X at C8h), else none.
enum class GpudirectSlot { kUnknown, kC8, kD4, kNone };

// Where a GPU reaches other GPUs on the host: what the guest's GPUDirect cliques are planned from
// (docs/topology.md). hostdev fills it when it resolves the GPU; records written before it existed
// have the defaults, which give no clique.
struct GpuPeerPath {
  std::string pcie_root;                    // the root bus ("pci0000:15"); "" when unknown
  std::optional<pci::Address> pcie_switch;  // the upstream port of the PCIe switch above it
  bool nvlink = false;  // an HGX board GPU: the NVSwitches join it to the board's other GPUs
  GpudirectSlot cap_slot = GpudirectSlot::kUnknown;  // read from its function 0's config space
  friend bool operator==(const GpuPeerPath&, const GpuPeerPath&) = default;
};

// The key of the GPUs that can form one GPUDirect clique with `path`'s GPU: NVIDIA GPUs on one
// root bus (under one PCIe switch, or on root ports of one root complex) reach each other over
// PCIe. "" when it forms none: not NVIDIA, place unknown, or joined by NVLink (which needs no
// clique).
inline std::string p2p_domain(bool nvidia, const GpuPeerPath& path) {
  if (!nvidia || path.nvlink) return {};
  return path.pcie_root;
}

// A GPU as the host side resolved it: every function of its slot, plus endpoints outside the slot
// that share its IOMMU groups (only when the operator's policy allows them).
struct AssignedGpu {
  GpuSpec request;
  std::vector<PassthroughFunction> functions;    // the card's slot, function 0 first
  std::vector<PassthroughFunction> group_peers;  // other endpoints of its groups, passed along
  int numa_node = -1;
  // The NVSwitches of an HGX board (every function of their IOMMU groups), passed because the VM
  // takes every GPU of the board (policy nvswitch_mode full-passthrough). They belong to the
  // board, not to one GPU: set only on the VM's FIRST GPU of that board, empty on every other.
  // Each is a device of its own in the guest (its own root port), like a group peer.
  std::vector<PassthroughFunction> fabric;
  GpuPeerPath peer_path;
};

// Every host function `gpu` passes: its card's functions, its group peers, its fabric.
inline std::vector<const PassthroughFunction*> passed_functions(const AssignedGpu& gpu) {
  std::vector<const PassthroughFunction*> out;
  for (const auto* list : {&gpu.functions, &gpu.group_peers, &gpu.fabric})
    for (const auto& function : *list) out.push_back(&function);
  return out;
}

}  // namespace feos::model
