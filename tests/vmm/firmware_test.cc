#include "vmm/qemu/firmware.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/temp_dir.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::HasSubstr;

// A variable store as OVMF's build writes it (the layout of Debian's OVMF_VARS_4M.fd): a firmware
// volume header of 72 bytes with a correct checksum, then a formatted, healthy variable store.
std::string vars_store(size_t size = 540672) {
  std::string b(size, '\xff');
  std::fill(b.begin(), b.begin() + 0x60, '\0');
  auto put16 = [&](size_t at, uint16_t v) { b[at] = char(v & 0xff), b[at + 1] = char(v >> 8); };
  for (int i = 0; i < 8; ++i) b[32 + i] = char((uint64_t{size} >> (8 * i)) & 0xff);  // FvLength
  b.replace(40, 4, "_FVH");
  put16(48, 72);  // HeaderLength
  put16(52, 0);
  b[0x48 + 20] = '\x5a';  // formatted
  b[0x48 + 21] = '\xfe';  // healthy
  uint16_t sum = 0;
  for (size_t at = 0; at < 72; at += 2)
    sum = uint16_t(sum + (uint8_t(b[at]) | uint8_t(b[at + 1]) << 8));
  put16(50, uint16_t(0x10000 - sum));  // Checksum: the header's 16-bit words sum to 0
  return b;
}

std::string descriptor(const std::string& code, const std::string& vars, const std::string& features,
                       const std::string& machines = R"(["pc-i440fx-*", "pc-q35-*"])") {
  return R"({"description": "test", "interface-types": ["uefi"],
    "mapping": {"device": "flash", "executable": {"filename": ")" + code + R"(", "format": "raw"},
                "nvram-template": {"filename": ")" + vars + R"(", "format": "raw"}},
    "targets": [{"architecture": "x86_64", "machines": )" + machines + R"(}],
    "features": )" + features + R"(, "tags": []})";
}

class FirmwareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* dir : {"etc", "share", "ovmf"}) std::filesystem::create_directories(root_ / dir);
    write("ovmf/CODE.fd", "code");
    write("ovmf/CODE.secboot.fd", "code");
    write("ovmf/VARS.fd", vars_store());
    write("ovmf/VARS.ms.fd", vars_store());
  }
  void write(const std::string& name, const std::string& data) { std::ofstream(root_ / name) << data; }
  std::string path(const std::string& name) const { return (root_ / name).string(); }
  std::vector<std::string> dirs() const { return {path("etc"), path("share")}; }
  // Debian's three descriptors, with paths in the test tree.
  void debian_descriptors() {
    write("share/40-edk2-x86_64-secure-enrolled.json",
          descriptor(path("ovmf/CODE.secboot.fd"), path("ovmf/VARS.ms.fd"),
                     R"(["acpi-s3", "enrolled-keys", "requires-smm", "secure-boot"])", R"(["pc-q35-*"])"));
    write("share/50-edk2-x86_64-secure.json",
          descriptor(path("ovmf/CODE.secboot.fd"), path("ovmf/VARS.fd"), R"(["requires-smm", "secure-boot"])",
                     R"(["pc-q35-*"])"));
    write("share/60-edk2-x86_64.json", descriptor(path("ovmf/CODE.fd"), path("ovmf/VARS.fd"), R"(["acpi-s3"])"));
  }

  test::TempDir temp_;
  std::filesystem::path root_ = temp_.path();
  std::unique_ptr<sys::Filesystem> fs_ = sys::make_posix_filesystem();
};

TEST_F(FirmwareTest, PlainUefiIsTheFirstDescriptorThatNeedsNoSmm) {
  debian_descriptors();
  auto found = find_uefi_firmware(*fs_, dirs(), false);
  ASSERT_TRUE(found) << found.error().to_string();
  EXPECT_EQ(found->descriptor, path("share/60-edk2-x86_64.json"));
  EXPECT_EQ(found->code, path("ovmf/CODE.fd"));
  EXPECT_EQ(found->vars_template, path("ovmf/VARS.fd"));
  EXPECT_EQ(found->vars_size, 540672u);
  EXPECT_FALSE(found->requires_smm);
}

TEST_F(FirmwareTest, SecureBootNeedsEnrolledKeysAndSmm) {
  debian_descriptors();
  auto found = find_uefi_firmware(*fs_, dirs(), true);
  ASSERT_TRUE(found) << found.error().to_string();
  EXPECT_EQ(found->descriptor, path("share/40-edk2-x86_64-secure-enrolled.json"));
  EXPECT_EQ(found->vars_template, path("ovmf/VARS.ms.fd"));
  EXPECT_TRUE(found->requires_smm);
  // Without the enrolled-keys build, Secure Boot would be off in the guest: not offered.
  std::filesystem::remove(root_ / "share/40-edk2-x86_64-secure-enrolled.json");
  auto none = find_uefi_firmware(*fs_, dirs(), true);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Code::kFailedPrecondition);
  EXPECT_THAT(none.error().message, HasSubstr("offers UEFI with Secure Boot and enrolled keys"));
}

TEST_F(FirmwareTest, AFileInEtcHidesTheSameNameInShare) {
  debian_descriptors();
  write("etc/60-edk2-x86_64.json", "");  // the spec's way to disable a descriptor
  write("etc/70-site.json", descriptor(path("ovmf/CODE.fd"), path("ovmf/VARS.ms.fd"), "[]"));
  auto found = find_uefi_firmware(*fs_, dirs(), false);
  ASSERT_TRUE(found) << found.error().to_string();
  EXPECT_EQ(found->descriptor, path("etc/70-site.json"));
}

TEST_F(FirmwareTest, DescriptorsForOtherMachinesOrArchitecturesDoNotCount) {
  write("share/10-i440fx-only.json", descriptor(path("ovmf/CODE.fd"), path("ovmf/VARS.fd"), "[]", R"(["pc-i440fx-*"])"));
  write("share/20-broken.json", "{not json");
  auto none = find_uefi_firmware(*fs_, dirs(), false);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(none.error().message,
            "UEFI firmware: no QEMU firmware descriptor in " + path("etc") + ", " + path("share") +
                " offers UEFI without SMM for x86_64 q35 (Debian's ovmf package installs them); not valid JSON: " +
                path("share/20-broken.json"));
}

TEST_F(FirmwareTest, AMissingFirmwareFileIsNamed) {
  write("share/60-edk2-x86_64.json", descriptor(path("ovmf/gone.fd"), path("ovmf/VARS.fd"), "[]"));
  auto found = find_uefi_firmware(*fs_, dirs(), false);
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(found.error().message, "UEFI firmware: " + path("share/60-edk2-x86_64.json") + " names " +
                                       path("ovmf/gone.fd") + ", which does not exist (reinstall Debian's ovmf package)");
}

TEST(UefiVars, AStoreAsOvmfWritesItPasses) {
  UefiFirmware firmware{.descriptor = "/t/60.json", .code = "/t/CODE.fd", .vars_template = "/t/VARS.fd", .vars_size = 540672};
  EXPECT_TRUE(check_uefi_vars(vars_store(), firmware, "/run/vm/uefi-vars.fd"));
}

TEST(UefiVars, DebiansTemplatesPassWhenInstalled) {
  auto fs = sys::make_posix_filesystem();
  auto found = find_uefi_firmware(*fs, kFirmwareDescriptorDirs, false);
  if (!found) GTEST_SKIP() << found.error().message;
  auto bytes = fs->read_file(found->vars_template);
  ASSERT_TRUE(bytes);
  EXPECT_TRUE(check_uefi_vars(*bytes, *found, found->vars_template));
}

TEST(UefiVars, EachKindOfDamageIsNamed) {
  UefiFirmware firmware{.descriptor = "/t/60.json", .code = "/t/CODE.fd", .vars_template = "/t/VARS.fd", .vars_size = 540672};
  auto message = [&](const std::string& bytes) {
    auto checked = check_uefi_vars(bytes, firmware, "/run/vm/uefi-vars.fd");
    EXPECT_FALSE(checked);
    if (checked) return std::string();
    EXPECT_EQ(checked.error().code, Code::kFailedPrecondition);
    return checked.error().message;
  };
  EXPECT_EQ(message(vars_store(131072)),
            "UEFI variable store /run/vm/uefi-vars.fd: 131072 bytes, the firmware's template has 540672; "
            "delete the VM, or replace the file by a copy of /t/VARS.fd (its variables are lost)");
  std::string bytes = vars_store();
  bytes[40] = 'X';
  EXPECT_THAT(message(bytes), HasSubstr("no firmware volume header (signature _FVH)"));
  bytes = vars_store();
  bytes[16] ^= 1;  // a header byte changes, the checksum no longer holds
  EXPECT_THAT(message(bytes), HasSubstr("header checksum is wrong"));
  bytes = vars_store();
  bytes[0x48 + 21] = '\x00';
  EXPECT_THAT(message(bytes), HasSubstr("not formatted and healthy"));
  bytes = vars_store();
  bytes[33] ^= 1;  // FvLength
  EXPECT_THAT(message(bytes), HasSubstr("length is not the file's size"));
  EXPECT_THAT(message(std::string(540672, '\0')), HasSubstr("_FVH"));
}

}  // namespace
}  // namespace feos::vmm::qemu
