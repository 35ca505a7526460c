// Where a function hangs in the PCIe tree: parsed from sysfs device paths as the kernel writes
// them, and read from the fake kernel's trees (the same shape: nested device directories).
#include "pci/topology.h"

#include <gtest/gtest.h>

#include "support/fake_host.h"
#include "support/pci_literals.h"

namespace feos::pci {
namespace {

using test::pci_address;

TEST(Topology, AGpuUnderASwitchNamesItsUpstreamPort) {
  auto t = topology_from_device_path(
      "../../../devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:00.0/0000:18:00.0",
      pci_address("0000:18:00.0"));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->pcie_root, "pci0000:15");
  ASSERT_EQ(t->bridges.size(), 3u);
  EXPECT_EQ(t->bridges[0], pci_address("0000:15:01.0"));  // the root port
  ASSERT_TRUE(t->switch_upstream);
  EXPECT_EQ(*t->switch_upstream, pci_address("0000:16:00.0"));
}

TEST(Topology, UnderARootPortOrBehindAPciBridgeThereIsNoSwitch) {
  auto direct = topology_from_device_path("/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0",
                                          pci_address("0000:01:00.0"));
  ASSERT_TRUE(direct) << direct.error().to_string();
  EXPECT_EQ(direct->bridges.size(), 1u);
  EXPECT_FALSE(direct->switch_upstream);
  // A BMC's VGA behind its PCIe-to-PCI bridge on a root port.
  auto bmc = topology_from_device_path("../../../devices/pci0000:00/0000:00:1c.0/0000:01:00.0/0000:02:00.0",
                                       pci_address("0000:02:00.0"));
  ASSERT_TRUE(bmc) << bmc.error().to_string();
  EXPECT_FALSE(bmc->switch_upstream);
  // Root-complex integrated: no bridge at all.
  auto igpu = topology_from_device_path("../../../devices/pci0000:00/0000:00:02.0", pci_address("0000:00:02.0"));
  ASSERT_TRUE(igpu) << igpu.error().to_string();
  EXPECT_TRUE(igpu->bridges.empty());
  EXPECT_FALSE(igpu->switch_upstream);
}

// Measured inside a cloud VM with a passed-through H100 (10de:2330): the guest puts it straight on
// the root bus, no bridge above it.
TEST(Topology, AGpuOnAGuestsRootBusHasNoBridges) {
  auto t = topology_from_device_path("/sys/devices/pci0000:00/0000:00:06.0", pci_address("0000:00:06.0"));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->pcie_root, "pci0000:00");
  EXPECT_TRUE(t->bridges.empty());
  EXPECT_FALSE(t->switch_upstream);
}

TEST(Topology, TwoLevelsOfSwitchesNameTheNearest) {
  auto t = topology_from_device_path(
      "/sys/devices/pci0000:80/0000:80:01.0/0000:81:00.0/0000:82:00.0/0000:83:00.0/0000:84:10.0/0000:85:00.0",
      pci_address("0000:85:00.0"));
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(t->pcie_root, "pci0000:80");
  ASSERT_TRUE(t->switch_upstream);
  EXPECT_EQ(*t->switch_upstream, pci_address("0000:83:00.0"));
}

TEST(Topology, MalformedPathsAreRefusedNamingThePath) {
  const Address gpu = pci_address("0000:18:00.0");
  for (const char* path : {"../../../devices/platform/0000:18:00.0", "/sys/devices/pci0000:15/bogus/0000:18:00.0",
                           "/sys/devices/pci0000:15/0000:15:01.0/0000:19:00.0", "/sys/devices/pci0000:15"}) {
    SCOPED_TRACE(path);
    auto t = topology_from_device_path(path, gpu);
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().code, Code::kInvalidArgument);
    EXPECT_NE(t.error().message.find(path), std::string::npos) << t.error().message;
  }
}

TEST(Topology, ReadFromAnHgxTree) {
  auto host = test::FakeHost::create(test::hgx_h100_host());
  ASSERT_TRUE(host) << host.error().to_string();
  auto gpu = read_topology(host.value()->kernel(), host.value()->paths(), pci_address("0000:18:00.0"));
  ASSERT_TRUE(gpu) << gpu.error().to_string();
  EXPECT_EQ(gpu->pcie_root, "pci0000:15");
  ASSERT_TRUE(gpu->switch_upstream);
  EXPECT_EQ(*gpu->switch_upstream, pci_address("0000:16:00.0"));
  auto missing = read_topology(host.value()->kernel(), host.value()->paths(), pci_address("0000:77:00.0"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
}

}  // namespace
}  // namespace feos::pci
