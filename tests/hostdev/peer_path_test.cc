// Where each planned GPU reaches its peers (model::GpuPeerPath, peer_path.cc) and the inventory's
// GPUDirect clique domains: the PCIe host with L40S pairs under a switch per socket
// (pcie_2s4g_host), the HGX H100 board (NVLink), a GPU whose MSI-X sits at C8h.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "hostdev_fixture.h"

namespace feos::hostdev::testing {
namespace {

class PeerPathTest : public HostdevTest {
 protected:
  PeerPathTest() { use_in_memory_ledger(); }

  // Rewrites the standard capability list of `bdf`'s config space: the PCI Express capability at
  // 40h (as the builder writes it) followed by `more` (offset, id) in order.
  void set_capabilities(const std::string& bdf, const std::vector<std::pair<uint8_t, uint8_t>>& more) {
    const std::string path = paths().pci_device_attr(bdf, "config");
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    std::string bytes = text.str();
    ASSERT_EQ(bytes.size(), 4096u);
    ASSERT_EQ(bytes[0x34], '\x40');
    uint8_t at = 0x40;
    for (const auto& [offset, id] : more) {
      bytes[at + 1] = static_cast<char>(offset);
      bytes[offset] = static_cast<char>(id);
      bytes[offset + 1] = 0;
      at = offset;
    }
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  }
};

TEST_F(PeerPathTest, PcieHostGpusKnowTheirRootBusAndSwitch) {
  start(test::pcie_2s4g_host());
  auto gpus = host_->plan("vm-1", gpus_at({"0000:18:00.0", "0000:19:00.0", "0000:88:00.0"}));
  ASSERT_TRUE(gpus) << gpus.error().to_string();
  ASSERT_EQ(gpus->size(), 3u);
  const model::GpuPeerPath expected[] = {
      {.pcie_root = "pci0000:15", .pcie_switch = test::pci_address("0000:16:00.0"), .nvlink = false,
       .cap_slot = model::GpudirectSlot::kC8},
      {.pcie_root = "pci0000:15", .pcie_switch = test::pci_address("0000:16:00.0"), .nvlink = false,
       .cap_slot = model::GpudirectSlot::kC8},
      {.pcie_root = "pci0000:85", .pcie_switch = test::pci_address("0000:86:00.0"), .nvlink = false,
       .cap_slot = model::GpudirectSlot::kC8},
  };
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ((*gpus)[i].peer_path, expected[i]) << i;
}

TEST_F(PeerPathTest, TheCapabilitysPlaceFollowsTheConfigSpace) {
  start(test::pcie_2s4g_host());
  set_capabilities("0000:18:00.0", {{0xc8, 0x11}});                // MSI-X at C8h (Turing and newer)
  set_capabilities("0000:19:00.0", {{0xc8, 0x11}, {0xd4, 0x09}});  // and another at D4h
  auto gpus = host_->plan("vm-1", gpus_at({"0000:18:00.0", "0000:19:00.0", "0000:88:00.0"}));
  ASSERT_TRUE(gpus) << gpus.error().to_string();
  EXPECT_EQ((*gpus)[0].peer_path.cap_slot, model::GpudirectSlot::kD4);
  EXPECT_EQ((*gpus)[1].peer_path.cap_slot, model::GpudirectSlot::kNone);
  EXPECT_EQ((*gpus)[2].peer_path.cap_slot, model::GpudirectSlot::kC8);
  // Unreadable config space: unknown.
  std::ofstream(paths().pci_device_attr("0000:88:00.0", "config"), std::ios::trunc) << std::string(64, '\0');
  gpus = host_->plan("vm-1", gpus_at({"0000:88:00.0"}));
  ASSERT_TRUE(gpus) << gpus.error().to_string();
  EXPECT_EQ((*gpus)[0].peer_path.cap_slot, model::GpudirectSlot::kUnknown);
}

TEST_F(PeerPathTest, BoardGpusAreJoinedByNvlink) {
  start(test::hgx_h100_host());
  auto gpus = host_->plan("vm-1", gpus_at(hgx_gpus()));
  ASSERT_TRUE(gpus) << gpus.error().to_string();
  for (const auto& gpu : *gpus) {
    SCOPED_TRACE(gpu.request.address.to_string());
    EXPECT_TRUE(gpu.peer_path.nvlink);
    EXPECT_FALSE(gpu.peer_path.pcie_root.empty());
    EXPECT_EQ(model::p2p_domain(true, gpu.peer_path), "");
  }
}

TEST_F(PeerPathTest, InventoryShowsWhichGpusCouldFormAClique) {
  start(test::pcie_2s4g_host());
  auto inv = inventory_->inventory();
  ASSERT_TRUE(inv) << inv.error().to_string();
  std::map<std::string, std::pair<std::string, std::vector<pci::Address>>> got;
  for (const auto& d : inv->devices)
    if (!d.p2p_domain.empty() || !d.p2p_peers.empty())
      got[d.device.address.to_string()] = {d.p2p_domain, d.p2p_peers};
  const auto a = [](const char* text) { return test::pci_address(text); };
  EXPECT_EQ(got, (std::map<std::string, std::pair<std::string, std::vector<pci::Address>>>{
                     {"0000:18:00.0", {"pci0000:15", {a("0000:19:00.0")}}},
                     {"0000:19:00.0", {"pci0000:15", {a("0000:18:00.0")}}},
                     {"0000:88:00.0", {"pci0000:85", {a("0000:89:00.0")}}},
                     {"0000:89:00.0", {"pci0000:85", {a("0000:88:00.0")}}},
                 }));
}

TEST_F(PeerPathTest, InventoryGivesBoardGpusNoCliqueDomain) {
  start(test::hgx_h100_host());
  auto inv = inventory_->inventory();
  ASSERT_TRUE(inv) << inv.error().to_string();
  size_t gpus = 0;
  for (const auto& d : inv->devices) {
    if (!d.is_gpu) continue;
    ++gpus;
    EXPECT_EQ(d.p2p_domain, "") << d.device.address.to_string();
    EXPECT_TRUE(d.p2p_peers.empty()) << d.device.address.to_string();
  }
  EXPECT_GE(gpus, 8u);
}

}  // namespace
}  // namespace feos::hostdev::testing
