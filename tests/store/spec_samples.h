#pragma once
// A VmSpec with every field set to a non-default value, and a field-by-field comparison that
// stops compiling when a field is added to the model (so tests are extended with it).
#include <gtest/gtest.h>

#include "model/vm.h"

namespace feos::store::testing {

inline model::VmSpec full_spec() {
  model::VmSpec spec;
  spec.cpus = {.boot_vcpus = 4, .max_vcpus = 8};
  spec.memory = {.size_mib = 65536, .hugepages = true};
  spec.image_ref = "ghcr.io/ironcore-dev/os-images/gardenlinux:1877.0";
  spec.image_path = "/var/lib/feos/images/3f2a/disk.raw";
  spec.disks = {
      {.device_id = "data0", .path = "/var/lib/feos/disks/data0.qcow2", .readonly = false},
      {.device_id = "seed", .path = "/var/lib/feos/disks/s\xc3\xa9\"ed\n.raw", .readonly = true},
  };
  spec.nets = {
      {.device_id = "net0", .tap_name = "tap-vm1-0", .mac = "52:54:00:12:34:56"},
      {.device_id = "net1", .tap_name = "tap-vm1-1", .mac = ""},
  };
  spec.ignition = std::string(R"({"ignition":{"version":"3.4.0"}})");
  spec.boot = {.kernel = "/boot/vmlinuz-6.1",
               .initramfs = "/boot/initrd.img-6.1",
               .cmdline = "console=ttyS0 root=/dev/vda1 quiet"};
  return spec;
}

inline void expect_specs_equal(const model::VmSpec& a, const model::VmSpec& b) {
  const auto& [a_cpus, a_memory, a_image_ref, a_image_path, a_disks, a_nets, a_ignition,
               a_boot] = a;
  const auto& [b_cpus, b_memory, b_image_ref, b_image_path, b_disks, b_nets, b_ignition,
               b_boot] = b;
  EXPECT_EQ(a_cpus.boot_vcpus, b_cpus.boot_vcpus);
  EXPECT_EQ(a_cpus.max_vcpus, b_cpus.max_vcpus);
  EXPECT_EQ(a_memory.size_mib, b_memory.size_mib);
  EXPECT_EQ(a_memory.hugepages, b_memory.hugepages);
  EXPECT_EQ(a_image_ref, b_image_ref);
  EXPECT_EQ(a_image_path, b_image_path);
  ASSERT_EQ(a_disks.size(), b_disks.size());
  for (size_t i = 0; i < a_disks.size(); ++i) {
    const auto& [a_id, a_path, a_readonly] = a_disks[i];
    const auto& [b_id, b_path, b_readonly] = b_disks[i];
    EXPECT_EQ(a_id, b_id) << "disk " << i;
    EXPECT_EQ(a_path, b_path) << "disk " << i;
    EXPECT_EQ(a_readonly, b_readonly) << "disk " << i;
  }
  ASSERT_EQ(a_nets.size(), b_nets.size());
  for (size_t i = 0; i < a_nets.size(); ++i) {
    const auto& [a_id, a_tap, a_mac] = a_nets[i];
    const auto& [b_id, b_tap, b_mac] = b_nets[i];
    EXPECT_EQ(a_id, b_id) << "net " << i;
    EXPECT_EQ(a_tap, b_tap) << "net " << i;
    EXPECT_EQ(a_mac, b_mac) << "net " << i;
  }
  EXPECT_EQ(a_ignition, b_ignition);
  const auto& [a_kernel, a_initramfs, a_cmdline] = a_boot;
  const auto& [b_kernel, b_initramfs, b_cmdline] = b_boot;
  EXPECT_EQ(a_kernel, b_kernel);
  EXPECT_EQ(a_initramfs, b_initramfs);
  EXPECT_EQ(a_cmdline, b_cmdline);
}

}  // namespace feos::store::testing
