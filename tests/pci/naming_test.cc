// PCI facts named for messages (class names, device descriptions) and the PCI-to-PCI bridge test.
#include "pci/naming.h"

#include <gtest/gtest.h>

namespace feos::pci {
namespace {

Device device(const char* bdf, uint32_t class_code, const char* driver = "") {
  Device d;
  d.address = *Address::parse(bdf);
  d.vendor_id = 0x8086;
  d.device_id = 0x1521;
  d.class_code = class_code;
  d.driver = driver;
  return d;
}

TEST(ClassNameTest, BuiltInBaseClassNamesWithoutADatabase) {
  EXPECT_EQ(class_name(0x020000, nullptr), "network controller");
  EXPECT_EQ(class_name(0x030200, nullptr), "display controller");
  EXPECT_EQ(class_name(0x068000, nullptr), "bridge");
  EXPECT_EQ(class_name(0x120000, nullptr), "processing accelerator");
  EXPECT_EQ(class_name(0x400000, nullptr), "coprocessor");
  EXPECT_EQ(class_name(0xff0000, nullptr), "class 0xff0000");
  EXPECT_EQ(class_name(0x1fabcdef, nullptr), "class 0xabcdef");  // only 24 bits are a class
}

TEST(ClassNameTest, MostSpecificDatabaseNameFirst) {
  const PciIds ids = PciIds::parse(
      "C 02  Network controller\n\t00  Ethernet controller\n"
      "C 03  Display controller\n\t00  VGA compatible controller\n\t\t00  VGA controller\n");
  EXPECT_EQ(class_name(0x030000, &ids), "VGA controller");
  EXPECT_EQ(class_name(0x020000, &ids), "Ethernet controller");
  EXPECT_EQ(class_name(0x028000, &ids), "Network controller");
  // Unknown to the database: the built-in name.
  EXPECT_EQ(class_name(0x010802, &ids), "mass storage controller");
}

TEST(DescribeDeviceTest, AddressIdClassAndDriver) {
  EXPECT_EQ(describe_device(device("0000:04:00.0", 0x020000, "igb"), nullptr),
            "0000:04:00.0 (8086:1521 network controller, driver igb)");
  EXPECT_EQ(describe_device(device("04:00.1", 0x020000), nullptr),
            "0000:04:00.1 (8086:1521 network controller, driver none)");
  const PciIds ids = PciIds::parse("C 02  Network controller\n\t00  Ethernet controller\n");
  EXPECT_EQ(describe_device(device("0000:04:00.0", 0x020000, "igb"), &ids),
            "0000:04:00.0 (8086:1521 Ethernet controller, driver igb)");
}

TEST(PciBridgeTest, OnlyPciToPciAndCardBusBridges) {
  for (uint32_t bridge : {0x060400u, 0x060401u, 0x060900u, 0x060700u}) {
    EXPECT_TRUE(device("0000:00:01.0", bridge).is_pci_bridge()) << std::hex << bridge;
  }
  // Base class 06 but endpoints for VFIO: host bridge, ISA bridge, NVSwitch ("other bridge").
  for (uint32_t endpoint : {0x060000u, 0x060100u, 0x068000u, 0x030200u, 0x020000u}) {
    EXPECT_FALSE(device("0000:05:00.0", endpoint).is_pci_bridge()) << std::hex << endpoint;
  }
}

}  // namespace
}  // namespace feos::pci
