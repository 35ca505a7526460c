#include "vmm/spec_validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace feos::vmm {
namespace {

using ::testing::HasSubstr;

model::VmSpec kernel_spec() {
  model::VmSpec spec;
  spec.cpus = {1, 2};
  spec.memory.size_mib = 256;
  spec.boot.kernel = "/guest/vmlinuz";
  return spec;
}

void expect_invalid(const model::VmSpec& spec, const std::string& field) {
  auto status = validate_spec(spec);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, Code::kInvalidArgument);
  EXPECT_THAT(status.error().message, HasSubstr(field)) << status.error().message;
}

TEST(ValidateSpec, AcceptsKernelOnlyAndImageOnly) {
  EXPECT_TRUE(validate_spec(kernel_spec()));
  model::VmSpec image;
  image.image_path = "/images/root.qcow2";
  EXPECT_TRUE(validate_spec(image));
}

TEST(ValidateSpec, HostPathsMustBeAbsoluteAndNormalized) {
  for (const std::string& bad : std::vector<std::string>{"relative/vmlinuz", "/guest/../etc/shadow", "/guest/./vmlinuz", "/guest//vmlinuz",
                          "/guest/vmlinuz/", "/guest/vm\nlinuz", std::string("/guest/vm\0linuz", 15),
                          "/" + std::string(5000, 'a')}) {
    auto spec = kernel_spec();
    spec.boot.kernel = bad;
    expect_invalid(spec, "boot.kernel");
    spec = kernel_spec();
    spec.disks.push_back({.device_id = "data", .path = bad});
    expect_invalid(spec, "disks[0].path");
  }
  EXPECT_TRUE(validate_host_path("/images/a b,c.qcow2", "image_ref"));  // qemu's commas are escaped
  auto message = validate_host_path("/a/../b", "image_ref");
  ASSERT_FALSE(message);
  EXPECT_EQ(message.error().message,
            "image_ref: '/a/../b' is not a normalized path (empty, '.' or '..' component)");
}

TEST(ValidateSpec, ZeroBootVcpus) {
  auto spec = kernel_spec();
  spec.cpus.boot_vcpus = 0;
  expect_invalid(spec, "cpus.boot_vcpus");
}

TEST(ValidateSpec, BootAboveMax) {
  auto spec = kernel_spec();
  spec.cpus = {4, 2};
  expect_invalid(spec, "cpus.max_vcpus: 2 is less than cpus.boot_vcpus (4)");
}

TEST(ValidateSpec, TooManyVcpus) {
  auto spec = kernel_spec();
  spec.cpus = {1, kMaxVcpus + 1};
  expect_invalid(spec, "cpus.max_vcpus");
  spec.cpus = {kMaxVcpus, kMaxVcpus};
  EXPECT_TRUE(validate_spec(spec));
}

TEST(ValidateSpec, ZeroAndHugeMemory) {
  auto spec = kernel_spec();
  spec.memory.size_mib = 0;
  expect_invalid(spec, "memory.size_mib");
  spec.memory.size_mib = kMaxMemoryMib + 1;
  expect_invalid(spec, "memory.size_mib");
}

TEST(ValidateSpec, NeitherImageNorKernel) {
  model::VmSpec spec;
  expect_invalid(spec, "image_ref: a root disk image or boot.kernel is required");
}

TEST(ValidateSpec, InitramfsOrCmdlineWithoutKernel) {
  model::VmSpec spec;
  spec.image_path = "/images/root.raw";
  spec.boot.initramfs = "/guest/initrd";
  expect_invalid(spec, "boot.initramfs");
  spec.boot.initramfs.clear();
  spec.boot.cmdline = "console=ttyS0";
  expect_invalid(spec, "boot.cmdline");
}

TEST(ValidateSpec, CmdlineTooLong) {
  auto spec = kernel_spec();
  spec.boot.cmdline = std::string(kMaxKernelCmdline, 'x');
  EXPECT_TRUE(validate_spec(spec));
  spec.boot.cmdline += "x";
  expect_invalid(spec, "boot.cmdline");
}

TEST(ValidateSpec, NulInPath) {
  auto spec = kernel_spec();
  spec.boot.kernel = std::string("/guest/vm\0linuz", 15);
  expect_invalid(spec, "boot.kernel: contains a control character (NUL, newline, ...)");
}

TEST(ValidateSpec, DuplicateDeviceIdsAcrossDisksAndNets) {
  auto spec = kernel_spec();
  spec.disks = {{"data", "/d1.raw", false}, {"data", "/d2.raw", false}};
  expect_invalid(spec, "disks[1].device_id: duplicate device id 'data'");
  spec.disks.pop_back();
  spec.nets = {{"data", "tap0", ""}};
  expect_invalid(spec, "net[0].device_id: duplicate device id 'data'");
}

TEST(ValidateSpec, MalformedDeviceIds) {
  auto spec = kernel_spec();
  for (const char* id : {"", "1disk", "disk one", "disk,x", "feos-root"}) {
    spec.disks = {{id, "/d.raw", false}};
    expect_invalid(spec, "disks[0].device_id");
  }
  spec.disks = {{std::string(kMaxDeviceIdLength + 1, 'a'), "/d.raw", false}};
  expect_invalid(spec, "disks[0].device_id");
  spec.disks = {{"Data_1.x-y", "/d.raw", false}};
  EXPECT_TRUE(validate_spec(spec));
}

TEST(ValidateSpec, DiskWithoutPath) {
  auto spec = kernel_spec();
  spec.disks = {{"data", "", false}};
  expect_invalid(spec, "disks[0].path");
}

TEST(ValidateSpec, BadMacs) {
  auto spec = kernel_spec();
  for (const char* mac : {"52:54:00:12:34", "52:54:00:12:34:5g", "52-54-00-12-34-56",
                          "52:54:00:12:34:567", "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff",
                          "33:33:00:00:00:01", "00:00:00:00:00:00"}) {
    spec.nets = {{"nic0", "tap0", mac}};
    expect_invalid(spec, "net[0].mac_address");
  }
  spec.nets = {{"nic0", "tap0", "52:54:00:AB:cd:EF"}};
  EXPECT_TRUE(validate_spec(spec));
  spec.nets = {{"nic0", "tap0", ""}};  // qemu picks one
  EXPECT_TRUE(validate_spec(spec));
}

TEST(ValidateSpec, KernelCommandLineAndInitramfsThatQemuWouldMisread) {
  auto spec = kernel_spec();
  spec.boot.initramfs = "/boot/initrd.img";
  spec.boot.cmdline = "console=ttyS0\n\x1b[2J";
  expect_invalid(spec, "boot.cmdline");
  spec.boot.cmdline = "console=ttyS0";
  spec.boot.initramfs = "/images/a,/etc/shadow";  // qemu's multiboot loader splits at ','
  expect_invalid(spec, "boot.initramfs");
}

TEST(ValidateSpec, BadTapNames) {
  auto spec = kernel_spec();
  for (const char* tap : {"", "tap-name-too-long", "tap/0", "tap,0", "tap 0", ".."}) {
    spec.nets = {{"nic0", tap, ""}};
    expect_invalid(spec, "net[0].tap_name");
  }
}

}  // namespace
}  // namespace feos::vmm
