#include "pci/pci_ids.h"

#include <gtest/gtest.h>

#include "sysfs_tree.h"

namespace feos::pci {
namespace {

TEST(PciIdsTest, ParsesVendorsDevicesSubsystemsAndClasses) {
  const char* text =
      "# comment\n"
      "\n"
      "10de  NVIDIA Corporation\n"
      "\t2330  GH100[H100 SXM5 80GB]\n"
      "\t\t10de 16c1  H100 SXM5 80GB\n"
      "\t2335  GH100 [H200 SXM 141GB]\n"
      "1af4  Red Hat, Inc.\n"
      "\t1041  Virtio 1.0 network device\n"
      "# List of known device classes, subclasses and programming interfaces\n"
      "C 03  Display controller\n"
      "\t00  VGA compatible controller\n"
      "\t\t00  VGA controller\n"
      "\t02  3D controller\n"
      "C 06  Bridge\n"
      "\t00  Host bridge\n";
  PciIds ids = PciIds::parse(text);
  EXPECT_EQ(ids.vendor_count(), 2u);
  EXPECT_EQ(ids.device_count(), 3u);
  EXPECT_EQ(ids.vendor(0x10de), "NVIDIA Corporation");
  EXPECT_EQ(ids.device(0x10de, 0x2330), "GH100[H100 SXM5 80GB]");
  EXPECT_EQ(ids.device(0x10de, 0x2335), "GH100 [H200 SXM 141GB]");
  EXPECT_EQ(ids.subsystem(0x10de, 0x2330, 0x10de, 0x16c1), "H100 SXM5 80GB");
  EXPECT_EQ(ids.device(0x1af4, 0x1041), "Virtio 1.0 network device");
  EXPECT_FALSE(ids.device(0x1af4, 0x2330));
  EXPECT_FALSE(ids.vendor(0x8086));
  EXPECT_FALSE(ids.subsystem(0x10de, 0x2335, 0x10de, 0x16c1));
  EXPECT_EQ(ids.class_name(0x030200), "3D controller");
  EXPECT_EQ(ids.class_name(0x030000), "VGA controller");      // programming interface level
  EXPECT_EQ(ids.class_name(0x030001), "VGA compatible controller");
  EXPECT_EQ(ids.class_name(0x038000), "Display controller");  // unknown sub class: base class
  EXPECT_EQ(ids.class_name(0x060000), "Host bridge");
  EXPECT_FALSE(ids.class_name(0x120000));
  // Class codes do not leak into vendor lookups (C 03 is not vendor 0x0003).
  EXPECT_FALSE(ids.vendor(0x0003));
}

TEST(PciIdsTest, ToleratesJunkLines) {
  PciIds ids = PciIds::parse("10de  NVIDIA\n\tzzzz  bad\n\t2330\nxyz\n\t1234  after junk\nC zz  bad\n");
  EXPECT_EQ(ids.vendor(0x10de), "NVIDIA");
  EXPECT_EQ(ids.device_count(), 0u);
  EXPECT_TRUE(PciIds().vendor_count() == 0);
}

TEST(PciIdsTest, LoadsTheFixtureExcerpt) {
  auto fs = sys::make_posix_filesystem();
  auto ids = PciIds::load(*fs, test::fixtures_dir() + "/pci.ids");
  ASSERT_TRUE(ids) << ids.error().message;
  EXPECT_EQ(ids->device(0x10de, 0x2330), "GH100[H100 SXM5 80GB]");
  EXPECT_EQ(ids->subsystem(0x1af4, 0x1110, 0x1af4, 0x1100), "QEMU Virtual Machine");
  EXPECT_EQ(ids->vendor(0x8086), "Intel Corporation");
  EXPECT_EQ(ids->class_name(0x030200), "3D controller");
  EXPECT_EQ(ids->class_name(0x018000), "Mass storage controller");
}

TEST(PciIdsTest, LoadErrors) {
  auto fs = sys::make_posix_filesystem();
  test::TempDir tmp;
  auto missing = PciIds::load(*fs, tmp.path() + "/pci.ids");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_NE(missing.error().message.find(tmp.path() + "/pci.ids"), std::string::npos);

  auto none = PciIds::load_first(*fs, {tmp.path() + "/a", tmp.path() + "/b"});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Code::kNotFound);
  EXPECT_NE(none.error().message.find(tmp.path() + "/b"), std::string::npos);

  auto second = PciIds::load_first(*fs, {tmp.path() + "/a", test::fixtures_dir() + "/pci.ids"});
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->vendor(0x10de), "NVIDIA Corporation");
}

TEST(PciIdsTest, SystemDatabaseWhenInstalled) {
  auto fs = sys::make_posix_filesystem();
  auto ids = PciIds::load_first(*fs, default_pci_ids_paths());
  if (!ids) GTEST_SKIP() << ids.error().message;
  EXPECT_GT(ids->vendor_count(), 1000u);
  EXPECT_GT(ids->device_count(), 10000u);
  EXPECT_EQ(ids->vendor(0x10de), "NVIDIA Corporation");
  EXPECT_EQ(ids->class_name(0x030200), "3D controller");
}

}  // namespace
}  // namespace feos::pci
