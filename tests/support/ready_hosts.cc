// Ready-made hosts for tests and benchmarks, modelled on published lspci/IOMMU-group reports.
#include <charconv>
#include <cstdio>
#include <optional>
#include <set>

#include "support/host_builder.h"

namespace feos::test {
namespace {

std::string bdf(int domain, int bus, int dev, int fn) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", domain, bus, dev, fn);
  return buf;
}

// Hands out IOMMU group numbers in discovery order, skipping the ones a host pins explicitly.
class Groups {
 public:
  explicit Groups(std::set<int> reserved = {}) : reserved_(std::move(reserved)) {}
  int next() {
    while (reserved_.count(next_)) ++next_;
    return next_++;
  }

 private:
  std::set<int> reserved_;
  int next_ = 0;
};

constexpr uint16_t kNvidia = 0x10de, kIntel = 0x8086, kMellanox = 0x15b3, kSamsung = 0x144d;
constexpr uint16_t kBroadcom = 0x1000, kPlx = 0x10b5, kAspeed = 0x1a03;

// The BMC's VGA behind its PCIe-to-PCI bridge, as on most servers: the bridge and the VGA share a
// group because conventional PCI cannot isolate devices.
void add_bmc_vga(HostBuilder& b, int root_port_group, int group) {
  b.bridge("0000:00:1c.0", kIntel, 0x1bbc, 0x01).group(root_port_group).link(5, 1);
  b.device("0000:01:00.0", kAspeed, 0x1150, 0x060400).secondary(0x02).group(group).link(5, 1).reset_methods({});
  b.device("0000:02:00.0", kAspeed, 0x2000, 0x030000)
      .driver("ast")
      .subsystem(kAspeed, 0x2000)
      .revision(0x52)
      .group(group)
      .boot_vga(true)
      .conventional()
      .reset_methods({})
      .bar(0, 64 * kMiB, BarType::kMem32)
      .bar(1, 256 * kKiB, BarType::kMem32)
      .bar(2, 128, BarType::kIo)
      .drm(0, -1);
}

}  // namespace

HostBuilder consumer_gpu_host() {
  HostBuilder b;
  b.device("0000:00:00.0", kIntel, 0xa700, 0x060000).subsystem(0x1043, 0x8882).revision(0x01).group(0)
      .conventional().reset_methods({});
  b.device("0000:00:02.0", kIntel, 0xa780, 0x030000)
      .driver("i915")
      .subsystem(0x1043, 0x8882)
      .revision(0x04)
      .group(1)
      .boot_vga(true)
      .reset_methods({"flr"})
      .bar(0, 16 * kMiB, BarType::kMem64)
      .bar(2, 256 * kMiB, BarType::kMem64Prefetch)
      .bar(4, 64, BarType::kIo)
      .drm(0, 128);
  // The PEG root port has no ACS on client CPUs, so it shares the card's group.
  b.bridge("0000:00:01.0", kIntel, 0xa70d, 0x01).group(2).link(16, 16);
  b.device("0000:01:00.0", kNvidia, 0x2684, 0x030000)
      .driver("nvidia")
      .subsystem(0x1043, 0x889c)
      .revision(0xa1)
      .group(2)
      .boot_vga(false)
      .reset_methods({"bus"})
      .link(2.5, 16, 16, 16)  // idles at 2.5 GT/s
      .bar(0, 16 * kMiB, BarType::kMem32)
      .bar(1, 256 * kMiB, BarType::kMem64Prefetch)
      .bar(3, 32 * kMiB, BarType::kMem64Prefetch)
      .bar(5, 128, BarType::kIo)
      .rom(512 * kKiB)
      .drm(1, 129);
  b.device("0000:01:00.1", kNvidia, 0x22ba, 0x040300)
      .driver("snd_hda_intel")
      .subsystem(0x1043, 0x889c)
      .revision(0xa1)
      .group(2)
      .reset_methods({"bus"})
      .link(2.5, 16, 16, 16)
      .bar(0, 16 * kKiB, BarType::kMem32);
  b.device("0000:01:00.2", kNvidia, 0x1ad8, 0x0c0330)
      .driver("xhci_hcd")
      .subsystem(0x1043, 0x889c)
      .revision(0xa1)
      .group(2)
      .reset_methods({"bus"})
      .link(2.5, 16, 16, 16)
      .bar(0, 256 * kKiB, BarType::kMem64Prefetch)
      .bar(3, 64 * kKiB, BarType::kMem64Prefetch);
  b.device("0000:01:00.3", kNvidia, 0x1ad9, 0x0c8000)
      .driver("nvidia-gpu")
      .subsystem(0x1043, 0x889c)
      .revision(0xa1)
      .group(2)
      .reset_methods({"bus"})
      .link(2.5, 16, 16, 16)
      .bar(0, 16 * kKiB, BarType::kMem32);
  b.bridge("0000:00:06.0", kIntel, 0xa74d, 0x02).group(3).link(16, 4);
  b.device("0000:00:14.0", kIntel, 0x7ae0, 0x0c0330).driver("xhci_hcd").subsystem(0x1043, 0x8882).revision(0x11)
      .group(4).reset_methods({}).bar(0, 64 * kKiB, BarType::kMem64);
  b.bridge("0000:00:1c.0", kIntel, 0x7ab8, 0x03).group(10).link(5, 1);
  b.device("0000:02:00.0", kSamsung, 0xa80a, 0x010802)
      .driver("nvme")
      .subsystem(kSamsung, 0xa801)
      .group(12)
      .link(16, 4)
      .bar(0, 16 * kKiB, BarType::kMem64);
  b.device("0000:03:00.0", kIntel, 0x125c, 0x020000)
      .driver("igc")
      .subsystem(0x1043, 0x87d2)
      .revision(0x04)
      .group(13)
      .link(5, 1)
      .bar(0, kMiB, BarType::kMem32)
      .bar(3, 16 * kKiB, BarType::kMem32);
  b.module("vfio_pci").dev_node("nvidia-modeset").dev_node("nvidia-uvm").dev_node("nvidia-uvm-tools");
  b.cpus_per_node(16);
  return b;
}

namespace {

// One datacenter GPU model of an HGX-shaped board: its ids and its large BAR1 (BAR0 16 MiB
// 32-bit, BAR3 32 MiB 64-bit prefetchable on every NVIDIA datacenter card here).
struct DatacenterGpu {
  uint16_t device = 0;
  uint16_t subsystem = 0;
  uint64_t bar1 = 0;
};

// An HGX-shaped server: `gpus` GPUs at the first entries of the bus and group tables below, the
// first half on NUMA node 0, each behind a root port and a Broadcom PEX89000 switch whose other
// downstream ports hold a ConnectX-7 (bus+1) and an NVMe (bus+2); with `nvswitches`, four
// NVSwitches 10de:22a3 in ONE group (114) behind their own root port and switch; the BMC's
// ASPEED boot VGA. Every other function is alone in its group.
HostBuilder hgx_board(const DatacenterGpu& model, int gpus, bool nvswitches) {
  const int gpu_bus[8] = {0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb};
  const int gpu_group[8] = {59, 50, 41, 15, 107, 98, 89, 79};
  constexpr int kNvSwitchGroup = 114;
  Groups groups({59, 50, 41, 15, 107, 98, 89, 79, kNvSwitchGroup});
  HostBuilder b;
  b.device("0000:00:00.0", kIntel, 0x09a2, 0x088000).revision(0x20).group(groups.next()).conventional()
      .reset_methods({});
  // NVSwitch baseboard: root port -> Broadcom switch -> four NVSwitches, which share one group.
  if (nvswitches) {
    b.bridge("0000:00:01.0", kIntel, 0x352a, 0x03).group(groups.next()).numa(0).link(16, 4);
    b.bridge("0000:03:00.0", kBroadcom, 0xc030, 0x04).group(groups.next()).numa(0).link(16, 4);
    for (int k = 0; k < 4; ++k) {
      b.bridge(bdf(0, 0x04, k, 0), kBroadcom, 0xc030, static_cast<uint8_t>(0x05 + k)).group(groups.next())
          .numa(0).link(16, 2);
      b.device(bdf(0, 0x05 + k, 0, 0), kNvidia, 0x22a3, 0x068000)
          .driver("nvidia-nvswitch")
          .subsystem(kNvidia, 0x1796)
          .revision(0xa1)
          .group(kNvSwitchGroup)
          .numa(0)
          .link(16, 2)
          .reset_methods({"bus"})
          .bar(0, 32 * kMiB, BarType::kMem64);
    }
  }
  add_bmc_vga(b, groups.next(), groups.next());
  for (int i = 0; i < gpus; ++i) {
    const int gb = gpu_bus[i], rb = gb - 3, node = i < gpus / 2 ? 0 : 1;
    b.bridge(bdf(0, rb, 1, 0), kIntel, 0x352a, static_cast<uint8_t>(rb + 1)).group(groups.next()).numa(node)
        .link(32, 16);
    b.bridge(bdf(0, rb + 1, 0, 0), kBroadcom, 0xc030, static_cast<uint8_t>(rb + 2)).group(groups.next())
        .numa(node).link(32, 16);
    for (int port = 0; port < 3; ++port)
      b.bridge(bdf(0, rb + 2, port, 0), kBroadcom, 0xc030, static_cast<uint8_t>(gb + port)).group(groups.next())
          .numa(node).link(32, port == 2 ? 4 : 16);
    b.device(bdf(0, gb, 0, 0), kNvidia, model.device, 0x030200)
        .driver("nvidia")
        .subsystem(kNvidia, model.subsystem)
        .revision(0xa1)
        .group(gpu_group[i])
        .numa(node)
        .link(32, 16)
        .bar(0, 16 * kMiB, BarType::kMem32)
        .bar(1, model.bar1, BarType::kMem64Prefetch)
        .bar(3, 32 * kMiB, BarType::kMem64Prefetch);
    b.device(bdf(0, gb + 1, 0, 0), kMellanox, 0x1021, 0x020000)
        .driver("mlx5_core")
        .subsystem(kMellanox, 0x0041)
        .group(groups.next())
        .numa(node)
        .link(32, 16)
        .bar(0, 32 * kMiB, BarType::kMem64Prefetch)
        .rom(kMiB);
    b.device(bdf(0, gb + 2, 0, 0), kSamsung, 0xa826, 0x010802)
        .driver("nvme")
        .subsystem(kSamsung, 0xa812)
        .group(groups.next())
        .numa(node)
        .link(32, 4)
        .bar(0, 32 * kKiB, BarType::kMem64);
  }
  b.module("vfio_pci").dev_node("nvidia-uvm").dev_node("nvidia-uvm-tools");
  b.cpus_per_node(56);
  return b;
}

}  // namespace

HostBuilder hgx_h100_host() {
  return hgx_board({.device = 0x2330, .subsystem = 0x16c1, .bar1 = 128 * kGiB}, 8, true);
}

// H200 SXM 141 GB: 10de:2335 (subsystem 10de:18be as reported by lspci on HGX H200 boards).
HostBuilder hgx_h200_host() {
  return hgx_board({.device = 0x2335, .subsystem = 0x18be, .bar1 = 256 * kGiB}, 8, true);
}

HostBuilder without_nvswitches(HostBuilder host) {
  for (int k = 0; k < 4; ++k) host.remove_function(bdf(0, 0x05 + k, 0, 0));
  return host;
}

// Four cards with a 512 GiB BAR1 under B200-like ids (10de:2901, subsystem 10de:1999): the size is
// chosen to test the address-space plan one step beyond the H200, not taken from a datasheet.
// Its CPU reports 43 address bits (as AMD EPYC 7003 does with memory encryption on), so one VM
// holds all four cards under SeaBIOS but only three under OVMF, whose aperture is aligned to its size.
HostBuilder bar512_host() {
  return hgx_board({.device = 0x2901, .subsystem = 0x1999, .bar1 = 512 * kGiB}, 4, false)
      .cpu_address_bits(43);
}

// Two sockets, each with one Broadcom PEX88000 switch (1000:c010, Gen4, with ACS) behind a root
// port, holding two NVIDIA L40S (10de:26b9, subsystem 10de:1851; BAR0 16 MiB, BAR1 64 GiB 64-bit
// prefetchable, BAR3 32 MiB) and a ConnectX-6 Dx (15b3:101d). L40S cards have no display outputs:
// one function each.
HostBuilder pcie_2s4g_host() {
  Groups groups;
  HostBuilder b;
  b.device("0000:00:00.0", kIntel, 0x09a2, 0x088000).revision(0x20).group(groups.next()).conventional()
      .reset_methods({});
  add_bmc_vga(b, groups.next(), groups.next());
  const int root_bus[2] = {0x15, 0x85};
  for (int node = 0; node < 2; ++node) {
    const int rb = root_bus[node];
    b.bridge(bdf(0, rb, 1, 0), kIntel, 0x352a, static_cast<uint8_t>(rb + 1)).group(groups.next()).numa(node)
        .link(16, 16);
    b.bridge(bdf(0, rb + 1, 0, 0), kBroadcom, 0xc010, static_cast<uint8_t>(rb + 2)).group(groups.next())
        .numa(node).link(16, 16);
    for (int port = 0; port < 3; ++port)
      b.bridge(bdf(0, rb + 2, port, 0), kBroadcom, 0xc010, static_cast<uint8_t>(rb + 3 + port))
          .group(groups.next()).numa(node).link(16, 16);
    for (int gpu = 0; gpu < 2; ++gpu)
      b.device(bdf(0, rb + 3 + gpu, 0, 0), kNvidia, 0x26b9, 0x030200)
          .driver("nvidia")
          .subsystem(kNvidia, 0x1851)
          .revision(0xa1)
          .group(groups.next())
          .numa(node)
          .link(16, 16)
          .bar(0, 16 * kMiB, BarType::kMem32)
          .bar(1, 64 * kGiB, BarType::kMem64Prefetch)
          .bar(3, 32 * kMiB, BarType::kMem64Prefetch);
    b.device(bdf(0, rb + 5, 0, 0), kMellanox, 0x101d, 0x020000)
        .driver("mlx5_core")
        .subsystem(kMellanox, 0x0016)
        .group(groups.next())
        .numa(node)
        .link(16, 16)
        .bar(0, 32 * kMiB, BarType::kMem64Prefetch);
  }
  b.module("vfio_pci").dev_node("nvidia-uvm").dev_node("nvidia-uvm-tools");
  b.cpus_per_node(48);
  return b;
}

HostBuilder shared_group_host() {
  HostBuilder b;
  b.device("0000:00:00.0", kIntel, 0x3e0f, 0x060000).group(0).conventional().reset_methods({});
  b.bridge("0000:00:01.0", kIntel, 0x1901, 0x01).group(1).link(8, 16);
  // A PEX8747 without ACS: its ports and everything below them form one group.
  b.bridge("0000:01:00.0", kPlx, 0x8747, 0x02).group(20).link(8, 16);
  b.bridge("0000:02:08.0", kPlx, 0x8747, 0x03).group(20).link(8, 16);
  b.bridge("0000:02:10.0", kPlx, 0x8747, 0x04).group(20).link(5, 4);
  auto t4 = [&](const std::string& where, int group) {
    b.device(where, kNvidia, 0x1eb8, 0x030200)
        .driver("nvidia")
        .subsystem(kNvidia, 0x12a2)
        .revision(0xa1)
        .group(group)
        .link(8, 16)
        .bar(0, 16 * kMiB, BarType::kMem32)
        .bar(1, 256 * kMiB, BarType::kMem64Prefetch)
        .bar(3, 32 * kMiB, BarType::kMem64Prefetch);
  };
  t4("0000:03:00.0", 20);
  for (int fn = 0; fn < 2; ++fn)
    b.device(bdf(0, 0x04, 0, fn), kIntel, 0x1521, 0x020000)
        .driver("igb")
        .subsystem(kIntel, 0x0001)
        .revision(0x01)
        .group(20)
        .link(5, 4)
        .bar(0, kMiB, BarType::kMem32)
        .bar(2, 32, BarType::kIo)
        .bar(3, 16 * kKiB, BarType::kMem32);
  b.bridge("0000:00:03.0", kIntel, 0x1905, 0x06).group(2).link(8, 16);
  t4("0000:06:00.0", 21);
  b.module("vfio_pci");
  return b;
}

HostBuilder large_host(int devices, int gpus) {
  HostBuilder b;
  Groups groups;
  int count = 0;
  auto add = [&](const std::string& where, uint16_t vendor, uint16_t device, uint32_t cls) {
    ++count;
    return b.device(where, vendor, device, cls);
  };
  auto bridge = [&](const std::string& where, uint16_t vendor, uint16_t device, int secondary) {
    ++count;
    return b.bridge(where, vendor, device, static_cast<uint8_t>(secondary));
  };
  add("0000:00:00.0", kIntel, 0x09a2, 0x060000).group(groups.next()).conventional().reset_methods({});
  add("0000:00:14.0", kIntel, 0xa1af, 0x0c0330).driver("xhci_hcd").group(groups.next()).reset_methods({})
      .bar(0, 64 * kKiB, BarType::kMem64);
  add("0000:00:16.0", kIntel, 0xa1ba, 0x078000).driver("mei_me").group(groups.next()).reset_methods({})
      .bar(0, 4 * kKiB, BarType::kMem64);
  add("0000:00:17.0", kIntel, 0xa182, 0x010601).driver("ahci").group(groups.next()).reset_methods({})
      .bar(5, 2 * kKiB, BarType::kMem32);
  const int pch = groups.next();  // the PCH's functions 1f.x share a group
  add("0000:00:1f.0", kIntel, 0xa1cb, 0x060100).group(pch).reset_methods({});
  add("0000:00:1f.4", kIntel, 0xa1a3, 0x0c0500).driver("i801_smbus").group(pch).reset_methods({})
      .bar(0, 256, BarType::kMem64);
  add("0000:00:1f.5", kIntel, 0xa1a4, 0x0c8000).group(pch).reset_methods({});
  {
    const int rp = groups.next(), vga = groups.next();
    add_bmc_vga(b, rp, vga);
    count += 3;
  }

  // Units of PCIe devices, each behind its own root port on its own root bus.
  int domain = 0, bus = 0x10, unit = 0;
  auto take_buses = [&](int n) {
    if (bus + n > 0xf0) {  // buses fe/ff of domain 0 hold the uncore filler
      ++domain;
      bus = 0x00;
    }
    int first = bus;
    bus += n;
    return first;
  };
  auto node_of = [&](int first_bus) { return (domain % 2 == 0 && first_bus < 0x80) ? 0 : 1; };
  constexpr int kGpuTray = 6, kNicUnit = 18, kNvmeUnit = 2;
  int trays = 0;
  for (;; ++unit) {
    const int remaining = devices - count;
    // GPU tray, NIC with VFs, NVMe, NVMe, NIC with VFs; with `gpus`, the trays first.
    const int kind = gpus < 0 ? unit % 5 : trays < gpus ? 0 : 1 + unit % 4;
    if (kind == 0) ++trays;
    const int size = kind == 0 ? kGpuTray : (kind == 1 || kind == 4) ? kNicUnit : kNvmeUnit;
    if (remaining < size) break;
    if (kind == 0) {
      const int rb = take_buses(5), node = node_of(rb);
      bridge(bdf(domain, rb, 1, 0), kIntel, 0x352a, rb + 1).group(groups.next()).numa(node).link(32, 16);
      bridge(bdf(domain, rb + 1, 0, 0), kBroadcom, 0xc030, rb + 2).group(groups.next()).numa(node).link(32, 16);
      bridge(bdf(domain, rb + 2, 0, 0), kBroadcom, 0xc030, rb + 3).group(groups.next()).numa(node).link(32, 16);
      bridge(bdf(domain, rb + 2, 1, 0), kBroadcom, 0xc030, rb + 4).group(groups.next()).numa(node).link(32, 16);
      add(bdf(domain, rb + 3, 0, 0), kNvidia, 0x2331, 0x030200)
          .driver("nvidia").subsystem(kNvidia, 0x1626).revision(0xa1).group(groups.next()).numa(node).link(32, 16)
          .bar(0, 16 * kMiB, BarType::kMem32).bar(1, 128 * kGiB, BarType::kMem64Prefetch)
          .bar(3, 32 * kMiB, BarType::kMem64Prefetch);
      add(bdf(domain, rb + 4, 0, 0), kMellanox, 0x1021, 0x020000)
          .driver("mlx5_core").group(groups.next()).numa(node).link(32, 16)
          .bar(0, 32 * kMiB, BarType::kMem64Prefetch);
    } else if (kind == 1 || kind == 4) {
      const int rb = take_buses(2), node = node_of(rb);
      bridge(bdf(domain, rb, 1, 0), kIntel, 0x352a, rb + 1).group(groups.next()).numa(node).link(16, 16);
      const std::string pf = bdf(domain, rb + 1, 0, 0);
      add(pf, kMellanox, 0x101d, 0x020000).driver("mlx5_core").group(groups.next()).numa(node).link(16, 16)
          .bar(0, 32 * kMiB, BarType::kMem64Prefetch);
      for (int vf = 1; vf <= kNicUnit - 2; ++vf)  // ARI: VFs continue the PF's function numbers
        add(bdf(domain, rb + 1, vf / 8, vf % 8), kMellanox, 0x101e, 0x020000)
            .driver("mlx5_core").physfn(pf).group(groups.next()).numa(node).link(16, 16).reset_methods({"flr"})
            .bar(0, kMiB, BarType::kMem64Prefetch);
    } else {
      const int rb = take_buses(2), node = node_of(rb);
      bridge(bdf(domain, rb, 1, 0), kIntel, 0x352a, rb + 1).group(groups.next()).numa(node).link(16, 4);
      add(bdf(domain, rb + 1, 0, 0), kSamsung, 0xa824, 0x010802).driver("nvme").subsystem(kSamsung, 0xa809)
          .group(groups.next()).numa(node).link(16, 4).bar(0, 32 * kKiB, BarType::kMem64);
    }
  }
  // The rest: uncore functions on buses fe/ff, as Xeons have hundreds of (no driver, class 0880).
  for (int i = 0; count < devices && i < 512; ++i)
    add(bdf(0, 0xfe + i / 256, (i / 8) % 32, i % 8), kIntel, 0x3450 + static_cast<uint16_t>(i % 32), 0x088000)
        .group(groups.next()).numa(i < 256 ? 0 : 1).conventional().reset_methods({});
  b.module("vfio_pci");
  return b;
}

Result<HostBuilder> host_by_name(std::string_view name) {
  if (name == "consumer") return consumer_gpu_host();
  if (name == "hgx-h100") return hgx_h100_host();
  if (name == "hgx-h200") return hgx_h200_host();
  if (name == "bar512") return bar512_host();
  if (name == "pcie-2s4g") return pcie_2s4g_host();
  if (name == "shared-group") return shared_group_host();
  if (name.substr(0, 6) == "large:") {
    // large:<devices>[:<gpus>]
    std::string_view rest = name.substr(6);
    auto number = [&](std::string_view digits, int max) -> std::optional<int> {
      int n = 0;
      auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
      if (digits.empty() || ec != std::errc() || ptr != digits.data() + digits.size() || n < 0 || n > max)
        return std::nullopt;
      return n;
    };
    const size_t colon = rest.find(':');
    auto n = number(rest.substr(0, colon), 100000);
    auto g = colon == std::string_view::npos ? std::optional<int>(-1) : number(rest.substr(colon + 1), 1000);
    if (n && *n >= 1 && g) return large_host(*n, *g);
  }
  return fail(Code::kInvalidArgument,
              "unknown host '" + std::string(name) +
                  "' (expected consumer, hgx-h100, hgx-h200, bar512, pcie-2s4g, shared-group or "
                  "large:<1-100000>[:<gpus>])");
}

}  // namespace feos::test
