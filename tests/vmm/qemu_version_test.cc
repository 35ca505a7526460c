// The qemu version feosd asks for at start (qemu_version.h): QEMU 8.1 and newer can place the
// GPUDirect clique capability at D4h, so Turing and newer GPUs get cliques only with them.
#include "vmm/qemu/qemu_version.h"

#include <gtest/gtest.h>

namespace feos::vmm::qemu {
namespace {

TEST(QemuVersion, ParsesWhatQemuPrints) {
  auto debian = parse_qemu_version(
      "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)\nCopyright (c) 2003-2022 Fabrice Bellard\n");
  ASSERT_TRUE(debian);
  EXPECT_EQ(debian->major, 7);
  EXPECT_EQ(debian->minor, 2);
  EXPECT_EQ(debian->micro, 19);
  EXPECT_FALSE(debian->at_least(8, 1));
  auto newer = parse_qemu_version("QEMU emulator version 8.1.0\n");
  ASSERT_TRUE(newer);
  EXPECT_TRUE(newer->at_least(8, 1));
  EXPECT_TRUE(parse_qemu_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)")->at_least(8, 1));
  EXPECT_FALSE(parse_qemu_version("QEMU emulator version 8.0.5")->at_least(8, 1));
  EXPECT_FALSE(parse_qemu_version("qemu-img version 7.2.19"));
  EXPECT_FALSE(parse_qemu_version("QEMU emulator version x.y"));
  EXPECT_FALSE(parse_qemu_version(""));
}

// The real binary (installed by scripts/install-deps) answers with its version.
TEST(QemuVersion, ProbesTheRealBinary) {
  auto version = probe_qemu_version("/usr/bin/qemu-system-x86_64");
  ASSERT_TRUE(version) << version.error().to_string();
  EXPECT_GE(version->major, 7);
}

TEST(QemuVersion, ABinaryThatPrintsNoVersionIsAnError) {
  auto missing = probe_qemu_version("/nonexistent/qemu");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  auto other = probe_qemu_version("/bin/true");
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, Code::kInternal);
  EXPECT_NE(other.error().message.find("/bin/true -version: no version"), std::string::npos);
}

}  // namespace
}  // namespace feos::vmm::qemu
