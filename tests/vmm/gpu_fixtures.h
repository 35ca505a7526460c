#pragma once
// GPUs as the host side resolves them, with the BARs of the real cards (see
// tests/support/ready_hosts.cc for the same devices as fake sysfs hosts).
#include <string>
#include <vector>

#include "model/gpu.h"
#include "support/pci_literals.h"
#include "vmm/qemu/mmio_layout.h"

namespace feos::vmm::qemu::testing {

inline model::Bar mem64_pref(int index, uint64_t size) { return {index, size, true, true, false}; }
inline model::Bar mem64(int index, uint64_t size) { return {index, size, true, false, false}; }
inline model::Bar mem32(int index, uint64_t size) { return {index, size, false, false, false}; }
inline model::Bar io(int index, uint64_t size) { return {index, size, false, false, true}; }

// NVIDIA H100 SXM5 (10de:2330, 3D controller): one function; BAR0 16 MiB 64-bit
// non-prefetchable, BAR1 128 GiB and BAR3 32 MiB 64-bit prefetchable.
inline model::AssignedGpu h100(const std::string& address, uint32_t group) {
  model::AssignedGpu gpu;
  gpu.request.address = test::pci_address(address);
  gpu.functions.push_back({test::pci_address(address), "10de:2330", 0x030200, pci::IommuGroup(group), "nvidia",
                           {mem64(0, 16 * kMiB), mem64_pref(1, 128 * kGiB),
                            mem64_pref(3, 32 * kMiB)}});
  return gpu;
}

// The eight H100s of an HGX board, function 0 each, IOMMU groups 40..47.
inline std::vector<model::AssignedGpu> hgx_h100s(size_t count) {
  static const char* kAddresses[] = {"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0",
                                     "0000:5d:00.0", "0000:9a:00.0", "0000:ab:00.0",
                                     "0000:ba:00.0", "0000:db:00.0"};
  std::vector<model::AssignedGpu> gpus;
  for (size_t i = 0; i < count && i < 8; ++i)
    gpus.push_back(h100(kAddresses[i], static_cast<uint32_t>(40 + i)));
  return gpus;
}

// The first `count` of an HGX board's H100s with their host NUMA nodes: 0-3 on 0, 4-7 on 1.
inline std::vector<model::AssignedGpu> hgx_h100s_on_nodes(size_t count) {
  auto gpus = hgx_h100s(count);
  for (size_t i = 0; i < gpus.size(); ++i) gpus[i].numa_node = i < 4 ? 0 : 1;
  return gpus;
}

// GeForce RTX 4090 (10de:2684, VGA) with its HDMI audio, USB-C xHCI and UCSI functions, all in
// slot 0000:01:00 and IOMMU group 2.
inline model::AssignedGpu rtx4090() {
  model::AssignedGpu gpu;
  gpu.request.address = test::pci_address("0000:01:00.0");
  gpu.functions = {
      {test::pci_address("0000:01:00.0"), "10de:2684", 0x030000, pci::IommuGroup(2), "nvidia",
       {mem32(0, 16 * kMiB), mem64_pref(1, 256 * kMiB), mem64_pref(3, 32 * kMiB), io(5, 128)}},
      {test::pci_address("0000:01:00.1"), "10de:22ba", 0x040300, pci::IommuGroup(2), "snd_hda_intel", {mem32(0, 16 * 1024)}},
      {test::pci_address("0000:01:00.2"), "10de:1ad8", 0x0c0330, pci::IommuGroup(2), "xhci_hcd",
       {mem64_pref(0, 256 * 1024), mem64_pref(3, 64 * 1024)}},
      {test::pci_address("0000:01:00.3"), "10de:1ad9", 0x0c8000, pci::IommuGroup(2), "nvidia-gpu", {mem32(0, 16 * 1024)}},
  };
  return gpu;
}

// A ConnectX-7 NIC (15b3:1021) that shares an IOMMU group with a GPU: BAR0 32 MiB 64-bit
// prefetchable.
inline model::PassthroughFunction connectx7(const std::string& address, uint32_t group) {
  return {test::pci_address(address), "15b3:1021", 0x020000, pci::IommuGroup(group), "mlx5_core", {mem64_pref(0, 32 * kMiB)}};
}

// An NVSwitch of an HGX H100/H200 board (10de:22a3, class 0x068000): BAR0 32 MiB 64-bit
// non-prefetchable; the board's four share one IOMMU group.
inline model::PassthroughFunction nvswitch(const std::string& address, uint32_t group) {
  return {test::pci_address(address), "10de:22a3", 0x068000, pci::IommuGroup(group), "nvidia-nvswitch",
          {mem64(0, 32 * kMiB)}};
}

}  // namespace feos::vmm::qemu::testing
