#pragma once
// A VmSpec with every field set to a non-default value, and a field-by-field comparison that
// stops compiling when a field is added to the model (so tests are extended with it).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/vm.h"
#include "support/pci_literals.h"

namespace feos::store::testing {

inline model::VmSpec full_spec() {
  model::VmSpec spec;
  spec.cpus = {.boot_vcpus = 4, .max_vcpus = 8};
  spec.memory = {.size_mib = 65536, .hugepages = true, .hugepage_size = model::HugepageSize::k1G};
  spec.image_ref = "ghcr.io/ironcore-dev/os-images/gardenlinux:1877.0";
  spec.image_path = "/var/lib/feos/images/3f2a/disk.raw";
  spec.image_format = model::DiskFormat::kRaw;
  spec.disks = {
      {.device_id = "data0", .path = "/var/lib/feos/disks/data0.qcow2", .readonly = false,
       .format = model::DiskFormat::kQcow2},
      {.device_id = "seed", .path = "/var/lib/feos/disks/s\xc3\xa9\"ed\n.raw", .readonly = true},
  };
  spec.nets = {
      {.device_id = "net0", .tap_name = "tap-vm1-0", .mac = "52:54:00:12:34:56"},
      {.device_id = "net1", .tap_name = "tap-vm1-1", .mac = "", .tap_created = true},
  };
  spec.ignition = std::string(R"({"ignition":{"version":"3.4.0"}})");
  spec.boot = {.kernel = "/boot/vmlinuz-6.1",
               .initramfs = "/boot/initrd.img-6.1",
               .cmdline = "console=ttyS0 root=/dev/vda1 quiet"};
  spec.gpus = {
      {.address = test::pci_address("0000:17:00.0"), .rombar = model::RomBar::kOff, .boot_vga = false},
      {.address = test::pci_address("0000:65:00.0"), .rombar = model::RomBar::kDefault, .boot_vga = true},
      {.address = test::pci_address("0000:b3:00.0"), .rombar = model::RomBar::kOn, .boot_vga = false},
  };
  spec.firmware = {.kind = model::FirmwareKind::kUefi, .secure_boot = true};
  spec.gpu_count = model::GpuCount{.count = 2, .model = "H200", .p2p = true};
  spec.gpu_p2p = {.mode = model::GpuP2pMode::kExplicit,
                  .cliques = {{test::pci_address("0000:17:00.0"), test::pci_address("0000:b3:00.0")}}};
  spec.guest_numa = model::GuestNumaMode::kOff;
  return spec;
}

// Resolved GPUs with every field set: a card with two functions and a group peer.
inline std::vector<model::AssignedGpu> full_assigned_gpus() {
  model::PassthroughFunction vga{.address = test::pci_address("0000:17:00.0"),
                                 .id = "10de:2684",
                                 .class_code = 0x030000,
                                 .iommu_group = pci::IommuGroup(41),
                                 .original_driver = "nvidia",
                                 .bars = {
                                     {.index = 0, .size = 16u << 20, .is_64bit = false,
                                      .prefetchable = false, .is_io = false},
                                     {.index = 1, .size = 256ull << 30, .is_64bit = true,
                                      .prefetchable = true, .is_io = false},
                                     {.index = 5, .size = 128, .is_64bit = false,
                                      .prefetchable = false, .is_io = true},
                                 }};
  model::PassthroughFunction audio{.address = test::pci_address("0000:17:00.1"),
                                   .id = "10de:22ba",
                                   .class_code = 0x040300,
                                   .iommu_group = pci::IommuGroup(41),
                                   .original_driver = "",
                                   .bars = {{.index = 0, .size = 16384}}};
  model::PassthroughFunction peer{.address = test::pci_address("0000:18:00.0"),
                                  .id = "8086:1521",
                                  .class_code = 0x020000,
                                  .iommu_group = pci::IommuGroup(41),
                                  .original_driver = "igb",
                                  .bars = {}};
  model::PassthroughFunction nvswitch{.address = test::pci_address("0000:05:00.0"),
                                      .id = "10de:22a3",
                                      .class_code = 0x068000,
                                      .iommu_group = pci::IommuGroup(114),
                                      .original_driver = "nvidia-nvswitch",
                                      .bars = {{.index = 0, .size = 32ull << 20, .is_64bit = true}}};
  model::AssignedGpu first{
      .request = {.address = test::pci_address("0000:17:00.0"), .rombar = model::RomBar::kOff, .boot_vga = true},
      .functions = {vga, audio},
      .group_peers = {peer},
      .numa_node = 1,
      .fabric = {nvswitch},
      .peer_path = {.pcie_root = "pci0000:15",
                    .pcie_switch = test::pci_address("0000:16:00.0"),
                    .nvlink = true,
                    .cap_slot = model::GpudirectSlot::kD4}};
  model::AssignedGpu second{.request = {.address = test::pci_address("0000:65:00.0")},
                            .functions = {vga},
                            .group_peers = {},
                            .numa_node = -1,
                            .fabric = {},
                            .peer_path = {.pcie_root = "pci0000:64", .pcie_switch = std::nullopt, .nvlink = false, .cap_slot = model::GpudirectSlot::kNone}};
  second.functions[0].address = test::pci_address("0000:65:00.0");
  return {first, second};
}

inline void expect_bars_equal(const std::vector<model::Bar>& a, const std::vector<model::Bar>& b,
                              const std::string& where) {
  ASSERT_EQ(a.size(), b.size()) << where;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto& [a_index, a_size, a_64, a_pref, a_io] = a[i];
    const auto& [b_index, b_size, b_64, b_pref, b_io] = b[i];
    EXPECT_EQ(a_index, b_index) << where << " bar " << i;
    EXPECT_EQ(a_size, b_size) << where << " bar " << i;
    EXPECT_EQ(a_64, b_64) << where << " bar " << i;
    EXPECT_EQ(a_pref, b_pref) << where << " bar " << i;
    EXPECT_EQ(a_io, b_io) << where << " bar " << i;
  }
}

inline void expect_functions_equal(const std::vector<model::PassthroughFunction>& a,
                                   const std::vector<model::PassthroughFunction>& b,
                                   const std::string& where) {
  ASSERT_EQ(a.size(), b.size()) << where;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto& [a_address, a_id, a_class, a_group, a_driver, a_bars] = a[i];
    const auto& [b_address, b_id, b_class, b_group, b_driver, b_bars] = b[i];
    const std::string here = where + "[" + std::to_string(i) + "]";
    EXPECT_EQ(a_address, b_address) << here;
    EXPECT_EQ(a_id, b_id) << here;
    EXPECT_EQ(a_class, b_class) << here;
    EXPECT_EQ(a_group, b_group) << here;
    EXPECT_EQ(a_driver, b_driver) << here;
    expect_bars_equal(a_bars, b_bars, here);
  }
}

inline void expect_gpu_specs_equal(const std::vector<model::GpuSpec>& a,
                                   const std::vector<model::GpuSpec>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const auto& [a_address, a_rombar, a_boot_vga] = a[i];
    const auto& [b_address, b_rombar, b_boot_vga] = b[i];
    EXPECT_EQ(a_address, b_address) << "gpu " << i;
    EXPECT_EQ(a_rombar, b_rombar) << "gpu " << i;
    EXPECT_EQ(a_boot_vga, b_boot_vga) << "gpu " << i;
  }
}

inline void expect_assigned_gpus_equal(const std::vector<model::AssignedGpu>& a,
                                       const std::vector<model::AssignedGpu>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const auto& [a_request, a_functions, a_peers, a_numa, a_fabric, a_peer_path] = a[i];
    const auto& [b_request, b_functions, b_peers, b_numa, b_fabric, b_peer_path] = b[i];
    EXPECT_EQ(a_peer_path, b_peer_path) << "gpu " << i;
    expect_gpu_specs_equal({a_request}, {b_request});
    expect_functions_equal(a_functions, b_functions, "gpus[" + std::to_string(i) + "].functions");
    expect_functions_equal(a_peers, b_peers, "gpus[" + std::to_string(i) + "].group_peers");
    expect_functions_equal(a_fabric, b_fabric, "gpus[" + std::to_string(i) + "].fabric");
    EXPECT_EQ(a_numa, b_numa) << "gpu " << i;
  }
}

inline void expect_specs_equal(const model::VmSpec& a, const model::VmSpec& b) {
  const auto& [a_cpus, a_memory, a_image_ref, a_image_path, a_image_format, a_disks, a_nets,
               a_ignition, a_boot, a_gpus, a_firmware, a_gpu_count, a_gpu_p2p, a_guest_numa] = a;
  const auto& [b_cpus, b_memory, b_image_ref, b_image_path, b_image_format, b_disks, b_nets,
               b_ignition, b_boot, b_gpus, b_firmware, b_gpu_count, b_gpu_p2p, b_guest_numa] = b;
  EXPECT_EQ(a_gpu_p2p, b_gpu_p2p);
  EXPECT_EQ(a_guest_numa, b_guest_numa);
  EXPECT_EQ(a_cpus.boot_vcpus, b_cpus.boot_vcpus);
  EXPECT_EQ(a_cpus.max_vcpus, b_cpus.max_vcpus);
  EXPECT_EQ(a_memory.size_mib, b_memory.size_mib);
  EXPECT_EQ(a_memory.hugepages, b_memory.hugepages);
  EXPECT_EQ(a_memory.hugepage_size, b_memory.hugepage_size);
  EXPECT_EQ(a_image_ref, b_image_ref);
  EXPECT_EQ(a_image_path, b_image_path);
  EXPECT_EQ(a_image_format, b_image_format);
  ASSERT_EQ(a_disks.size(), b_disks.size());
  for (size_t i = 0; i < a_disks.size(); ++i) {
    const auto& [a_id, a_path, a_readonly, a_format] = a_disks[i];
    const auto& [b_id, b_path, b_readonly, b_format] = b_disks[i];
    EXPECT_EQ(a_id, b_id) << "disk " << i;
    EXPECT_EQ(a_path, b_path) << "disk " << i;
    EXPECT_EQ(a_readonly, b_readonly) << "disk " << i;
    EXPECT_EQ(a_format, b_format) << "disk " << i;
  }
  ASSERT_EQ(a_nets.size(), b_nets.size());
  for (size_t i = 0; i < a_nets.size(); ++i) {
    const auto& [a_id, a_tap, a_mac, a_created] = a_nets[i];
    const auto& [b_id, b_tap, b_mac, b_created] = b_nets[i];
    EXPECT_EQ(a_id, b_id) << "net " << i;
    EXPECT_EQ(a_tap, b_tap) << "net " << i;
    EXPECT_EQ(a_mac, b_mac) << "net " << i;
    EXPECT_EQ(a_created, b_created) << "net " << i;
  }
  EXPECT_EQ(a_ignition, b_ignition);
  const auto& [a_kernel, a_initramfs, a_cmdline] = a_boot;
  const auto& [b_kernel, b_initramfs, b_cmdline] = b_boot;
  EXPECT_EQ(a_kernel, b_kernel);
  EXPECT_EQ(a_initramfs, b_initramfs);
  EXPECT_EQ(a_cmdline, b_cmdline);
  expect_gpu_specs_equal(a_gpus, b_gpus);
  const auto& [a_kind, a_secure_boot] = a_firmware;
  const auto& [b_kind, b_secure_boot] = b_firmware;
  EXPECT_EQ(a_kind, b_kind);
  EXPECT_EQ(a_secure_boot, b_secure_boot);
  ASSERT_EQ(a_gpu_count.has_value(), b_gpu_count.has_value());
  if (a_gpu_count) {
    const auto& [a_count, a_model, a_p2p] = *a_gpu_count;
    const auto& [b_count, b_model, b_p2p] = *b_gpu_count;
    EXPECT_EQ(a_count, b_count);
    EXPECT_EQ(a_model, b_model);
    EXPECT_EQ(a_p2p, b_p2p);
  }
}

}  // namespace feos::store::testing
