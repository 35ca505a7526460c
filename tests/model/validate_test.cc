#include "model/validate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "model/field_path.h"
#include "model/limits.h"
#include "support/pci_literals.h"

namespace feos::model {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

VmSpec kernel_spec() {
  VmSpec spec;
  spec.cpus = {1, 2};
  spec.memory.size_mib = 256;
  spec.boot.kernel = "/guest/vmlinuz";
  return spec;
}

// `field` and what follows it: every message starts with the field path.
void expect_invalid(const VmSpec& spec, const std::string& message_start) {
  auto status = validate(spec);
  ASSERT_FALSE(status) << message_start;
  EXPECT_EQ(status.error().code, Code::kInvalidArgument);
  EXPECT_THAT(status.error().message, StartsWith(message_start));
}

// "/" and then `bytes - 1` more: an absolute path of exactly `bytes` bytes.
std::string path_of(size_t bytes) { return "/" + std::string(bytes - 1, 'p'); }

// One row per bound of model/limits.h: `set(spec, n)` puts a value of size n into the field.
struct LimitCase {
  std::string name;
  size_t limit;
  std::function<void(VmSpec&, size_t)> set;
  std::string field;
};

class Limits : public ::testing::TestWithParam<LimitCase> {};

// The limit itself is accepted; one more is refused, and the message names the field path.
TEST_P(Limits, LimitAcceptedAndOneMoreRefusedNamingTheField) {
  const LimitCase& c = GetParam();
  VmSpec at_limit = kernel_spec();
  c.set(at_limit, c.limit);
  auto accepted = validate(at_limit);
  EXPECT_TRUE(accepted) << accepted.error().message;

  VmSpec over = kernel_spec();
  c.set(over, c.limit + 1);
  auto refused = validate(over);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kInvalidArgument);
  EXPECT_THAT(refused.error().message, StartsWith(c.field + ": ")) << refused.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    EveryLimit, Limits,
    ::testing::Values(
        LimitCase{"Vcpus", kMaxVcpus, [](VmSpec& s, size_t n) { s.cpus = {1, uint32_t(n)}; },
                  "config.cpus.max_vcpus"},
        LimitCase{"BootVcpus", kMaxVcpus,
                  [](VmSpec& s, size_t n) { s.cpus = {uint32_t(n), uint32_t(n)}; },
                  "config.cpus.max_vcpus"},
        LimitCase{"MemoryMib", kMaxMemoryMib, [](VmSpec& s, size_t n) { s.memory.size_mib = n; },
                  "config.memory.size_mib"},
        LimitCase{"Disks", kMaxDisks,
                  [](VmSpec& s, size_t n) {
                    for (size_t i = 0; i < n; ++i)
                      s.disks.push_back({"d" + std::to_string(i), "/d" + std::to_string(i) + ".raw"});
                  },
                  "config.disks"},
        LimitCase{"Nics", kMaxNics,
                  [](VmSpec& s, size_t n) {
                    for (size_t i = 0; i < n; ++i)
                      s.nets.push_back({"n" + std::to_string(i), "tap" + std::to_string(i), ""});
                  },
                  "config.net"},
        LimitCase{"Gpus", kMaxGpus,
                  [](VmSpec& s, size_t n) {
                    s.gpus.assign(n, GpuSpec{.address = test::pci_address("0000:18:00.0")});
                  },
                  "config.gpus"},
        LimitCase{"ImagePath", kMaxHostPath, [](VmSpec& s, size_t n) { s.image_path = path_of(n); },
                  "config.image_ref"},
        LimitCase{"KernelPath", kMaxHostPath, [](VmSpec& s, size_t n) { s.boot.kernel = path_of(n); },
                  "config.boot.kernel"},
        LimitCase{"InitramfsPath", kMaxHostPath,
                  [](VmSpec& s, size_t n) { s.boot.initramfs = path_of(n); }, "config.boot.initramfs"},
        LimitCase{"DiskPath", kMaxHostPath,
                  [](VmSpec& s, size_t n) { s.disks = {{"data", path_of(n)}}; }, "config.disks[0].path"},
        LimitCase{"KernelCmdline", kMaxKernelCmdline,
                  [](VmSpec& s, size_t n) { s.boot.cmdline = std::string(n, 'x'); }, "config.boot.cmdline"},
        LimitCase{"DiskDeviceId", kMaxDeviceId,
                  [](VmSpec& s, size_t n) { s.disks = {{std::string(n, 'd'), "/d.raw"}}; },
                  "config.disks[0].device_id"},
        LimitCase{"NicDeviceId", kMaxDeviceId,
                  [](VmSpec& s, size_t n) { s.nets = {{std::string(n, 'n'), "tap0", ""}}; },
                  "config.net[0].device_id"},
        LimitCase{"TapName", kMaxTapName,
                  [](VmSpec& s, size_t n) { s.nets = {{"nic0", std::string(n, 't'), ""}}; },
                  "config.net[0].tap.tap_name"},
        LimitCase{"MacAddress", kMacAddressLength,
                  [](VmSpec& s, size_t n) {
                    s.nets = {{"nic0", "tap0", std::string("52:54:00:12:34:567").substr(0, n)}};
                  },
                  "config.net[0].mac_address"},
        LimitCase{"Ignition", kMaxIgnition, [](VmSpec& s, size_t n) { s.ignition = std::string(n, '{'); },
                  "config.ignition"}),
    [](const ::testing::TestParamInfo<LimitCase>& info) { return info.param.name; });

TEST(Validate, AcceptsKernelOnlyAndImageOnly) {
  EXPECT_TRUE(validate(kernel_spec()));
  VmSpec image;
  image.image_path = "/images/root.qcow2";
  EXPECT_TRUE(validate(image));
}

TEST(Validate, NothingToBoot) {
  VmSpec spec;
  spec.image_ref = "file:///images/root.raw";  // not resolved: image_path is what boots
  expect_invalid(spec, "config: nothing to boot: set config.image_ref (a local disk image) or config.boot.kernel");
}

TEST(Validate, HostPathsMustBeAbsoluteAndNormalized) {
  for (const std::string& bad : std::vector<std::string>{"relative/vmlinuz", "/guest/../etc/shadow", "/guest/./vmlinuz",
                                                         "/guest//vmlinuz", "/guest/vmlinuz/", "/guest/vm\nlinuz",
                                                         std::string("/guest/vm\0linuz", 15), ""}) {
    auto spec = kernel_spec();
    spec.boot.kernel = bad;
    if (!bad.empty()) expect_invalid(spec, "config.boot.kernel: ");
    spec = kernel_spec();
    spec.disks.push_back({.device_id = "data", .path = bad});
    expect_invalid(spec, "config.disks[0].path: ");
    spec = kernel_spec();
    spec.image_path = bad;
    if (!bad.empty()) expect_invalid(spec, "config.image_ref: ");
  }
  EXPECT_TRUE(validate_host_path("/images/a b,c.qcow2", field::kImageRef));  // qemu's commas are escaped
  auto message = validate_host_path("/a/../b", field::kImageRef);
  ASSERT_FALSE(message);
  EXPECT_EQ(message.error().message,
            "config.image_ref: '/a/../b' is not a normalized path (empty, '.' or '..' component)");
}

TEST(Validate, Vcpus) {
  auto spec = kernel_spec();
  spec.cpus.boot_vcpus = 0;
  expect_invalid(spec, "config.cpus.boot_vcpus: must be at least 1");
  spec.cpus = {4, 2};
  expect_invalid(spec, "config.cpus.max_vcpus: 2 is less than config.cpus.boot_vcpus (4)");
}

TEST(Validate, ZeroMemory) {
  auto spec = kernel_spec();
  spec.memory.size_mib = 0;
  expect_invalid(spec, "config.memory.size_mib: must be at least 1");
}

TEST(Validate, HugepageSizeNeedsHugepagesAndWholePages) {
  auto spec = kernel_spec();
  spec.memory = {.size_mib = 3072, .hugepages = false, .hugepage_size = HugepageSize::k1G};
  expect_invalid(spec, "config.memory.hugepage_size: 1G needs config.memory.hugepages set");
  spec.memory.hugepages = true;
  EXPECT_TRUE(validate(spec));
  spec.memory.size_mib = 3000;
  expect_invalid(spec, "config.memory.size_mib: 3000 MiB is not a whole number of 1G hugepages");
  spec.memory.hugepage_size = HugepageSize::k2M;
  EXPECT_TRUE(validate(spec));
  spec.memory.size_mib = 3001;
  expect_invalid(spec, "config.memory.size_mib: 3001 MiB is not a whole number of 2M hugepages");
  spec.memory.hugepage_size = static_cast<HugepageSize>(7);
  expect_invalid(spec, "config.memory.hugepage_size: unknown size 7");
}

TEST(Validate, InitramfsOrCmdlineWithoutKernel) {
  VmSpec spec;
  spec.image_path = "/images/root.raw";
  spec.boot.initramfs = "/guest/initrd";
  expect_invalid(spec, "config.boot.initramfs: requires config.boot.kernel");
  spec.boot.initramfs.clear();
  spec.boot.cmdline = "console=ttyS0";
  expect_invalid(spec, "config.boot.cmdline: requires config.boot.kernel");
}

TEST(Validate, NulInPathAndIgnition) {
  auto spec = kernel_spec();
  spec.boot.kernel = std::string("/guest/vm\0linuz", 15);
  expect_invalid(spec, "config.boot.kernel: contains a control character (NUL, newline, ...)");
  spec = kernel_spec();
  spec.ignition = std::string("{\0}", 3);
  expect_invalid(spec, "config.ignition: contains a NUL byte");
}

TEST(Validate, DuplicateDeviceIdsAcrossDisksAndNets) {
  auto spec = kernel_spec();
  spec.disks = {{"data", "/d1.raw", false}, {"data", "/d2.raw", false}};
  expect_invalid(spec, "config.disks[1].device_id: duplicate device id 'data'");
  spec.disks.pop_back();
  spec.nets = {{"data", "tap0", ""}};
  expect_invalid(spec, "config.net[0].device_id: duplicate device id 'data'");
}

TEST(Validate, MalformedDeviceIds) {
  auto spec = kernel_spec();
  for (const char* id : {"", "1disk", "disk one", "disk,x", "feos-root"}) {
    spec.disks = {{id, "/d.raw", false}};
    expect_invalid(spec, "config.disks[0].device_id: ");
  }
  spec.disks = {{"Data_1.x-y", "/d.raw", false}};
  EXPECT_TRUE(validate(spec));
}

TEST(Validate, BadMacs) {
  auto spec = kernel_spec();
  for (const char* mac : {"52:54:00:12:34", "52:54:00:12:34:5g", "52-54-00-12-34-56", "52:54:00:12:34:567",
                          "52:54:00:12:3:456", "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "33:33:00:00:00:01",
                          "00:00:00:00:00:00"}) {
    spec.nets = {{"nic0", "tap0", mac}};
    expect_invalid(spec, "config.net[0].mac_address: ");
  }
  spec.nets = {{"nic0", "tap0", "52:54:00:AB:cd:EF"}};
  EXPECT_TRUE(validate(spec));
  spec.nets = {{"nic0", "tap0", ""}};  // qemu picks one
  EXPECT_TRUE(validate(spec));
}

TEST(Validate, MacTextIsSyntaxOnly) {
  EXPECT_TRUE(is_mac_text("52:54:00:ab:CD:ef"));
  EXPECT_TRUE(is_mac_text("01:00:5e:00:00:01"));  // multicast: written well, refused by validate_mac
  for (const char* bad : {"", "52:54:00:12:34", "52:54:00:12:34:56:", "52-54-00-12-34-56", "52:54:00:12:34:5g",
                          "52:54:00:12:3:456", "+2:54:00:12:34:56"})
    EXPECT_FALSE(is_mac_text(bad)) << bad;
}

TEST(Validate, KernelCommandLineAndInitramfsThatQemuWouldMisread) {
  auto spec = kernel_spec();
  spec.boot.initramfs = "/boot/initrd.img";
  spec.boot.cmdline = "console=ttyS0\n\x1b[2J";
  expect_invalid(spec, "config.boot.cmdline: contains a control character");
  spec.boot.cmdline = "console=ttyS0";
  spec.boot.initramfs = "/images/a,/etc/shadow";  // qemu's multiboot loader splits at ','
  expect_invalid(spec, "config.boot.initramfs: ");
}

TEST(Validate, BadTapNames) {
  auto spec = kernel_spec();
  for (const char* tap : {"", "tap/0", "tap,0", "tap 0", "tap:0", ".."}) {
    spec.nets = {{"nic0", tap, ""}};
    expect_invalid(spec, "config.net[0].tap.tap_name: ");
  }
}

// A spec with GPUs 0000:{10..10+n-1}:00.0 by address.
VmSpec with_gpus(size_t n) {
  VmSpec spec = kernel_spec();
  for (size_t i = 0; i < n; ++i) spec.gpus.push_back({.address = pci::Address(0, static_cast<uint8_t>(0x10 + i), 0, 0)});
  return spec;
}

TEST(Validate, ExplicitGpuCliquesNameTheVmsGpus) {
  VmSpec spec = with_gpus(4);
  spec.gpu_p2p = {.mode = GpuP2pMode::kExplicit,
                  .cliques = {{test::pci_address("10:00.0"), test::pci_address("11:00.0")},
                              {test::pci_address("12:00.0"), test::pci_address("13:00.0")}}};
  EXPECT_TRUE(validate(spec));
  spec.gpu_p2p.cliques[1][1] = test::pci_address("14:00.0");
  expect_invalid(spec, "config.gpu_p2p.cliques[1]: 0000:14:00.0 is not one of the VM's GPUs (config.gpus)");
  spec.gpu_p2p.cliques[1][1] = test::pci_address("10:00.0");
  expect_invalid(spec, "config.gpu_p2p.cliques[1]: 0000:10:00.0 is in more than one clique");
  spec.gpu_p2p.cliques[1] = {test::pci_address("12:00.0")};
  expect_invalid(spec, "config.gpu_p2p.cliques[1]: a clique needs at least two GPUs (one GPU has no peer)");
  spec.gpu_p2p.cliques.clear();
  expect_invalid(spec, "config.gpu_p2p.cliques: mode explicit needs at least one clique");
  spec.gpu_p2p = {.mode = GpuP2pMode::kOff, .cliques = {{test::pci_address("10:00.0"), test::pci_address("11:00.0")}}};
  expect_invalid(spec, "config.gpu_p2p.cliques: given without mode explicit");
  spec.gpu_p2p.cliques.clear();
  EXPECT_TRUE(validate(spec));
}

TEST(Validate, AtMostSixteenGpuCliques) {
  VmSpec spec = with_gpus(kMaxGpus);
  spec.gpu_p2p.mode = GpuP2pMode::kExplicit;
  for (size_t i = 0; i < kMaxGpus; i += 2) spec.gpu_p2p.cliques.push_back({spec.gpus[i].address, spec.gpus[i + 1].address});
  EXPECT_TRUE(validate(spec));  // 8 cliques; 17 need 34 GPUs, more than a VM has
  spec.gpu_p2p.cliques.resize(kMaxGpudirectCliques + 1, spec.gpu_p2p.cliques.front());
  expect_invalid(spec, "config.gpu_p2p.cliques: 17 given, at most 16 (clique ids 0-15)");
}

TEST(Validate, UnknownTopologyModes) {
  VmSpec spec = with_gpus(2);
  spec.gpu_p2p.mode = static_cast<GpuP2pMode>(7);
  expect_invalid(spec, "config.gpu_p2p.mode: unknown mode 7");
  spec.gpu_p2p.mode = GpuP2pMode::kAuto;
  spec.guest_numa = static_cast<GuestNumaMode>(9);
  expect_invalid(spec, "config.guest_numa: unknown mode 9");
}

TEST(FieldPath, ListElementsInTheApiSpelling) {
  EXPECT_EQ(field::disk(1, "device_id"), "config.disks[1].device_id");
  EXPECT_EQ(field::net(0, "tap.tap_name"), "config.net[0].tap.tap_name");
  EXPECT_EQ(field::gpu(2, "address"), "config.gpus[2].address");
  EXPECT_EQ(field::disk(3), "config.disks[3]");
}

}  // namespace
}  // namespace feos::model
