// GPUDirect P2P cliques (gpudirect.h): the planning rule, the per-VM override, and the argv on
// the simulated hosts: an HGX H100 board (NVLink through NVSwitches: no clique) and a PCIe host
// with NVIDIA L40S cards in pairs under PCIe switches, a switch per root bus, two switches per
// NUMA node (tests/support/ready_hosts.cc's pcie_2s4g_host, doubled), with 1, 2, 4 and 8 GPUs on
// one node and two.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gpu_fixtures.h"
#include "vmm/qemu/argv_builder.h"
#include "vmm/qemu/gpudirect.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using Argv = std::vector<std::string>;
using namespace feos::vmm::qemu::testing;

const RuntimeFiles kFiles = runtime_files("/run/feos/vms/vm-1");

// NVIDIA L40S (10de:26b9, 3D controller): BAR0 16 MiB, BAR1 64 GiB and BAR3 32 MiB 64-bit
// prefetchable; its config space leaves C8h free unless `slot` says otherwise.
model::AssignedGpu l40s(const std::string& address, uint32_t group, int node, const std::string& root,
                        const std::string& upstream, model::GpudirectSlot slot = model::GpudirectSlot::kC8) {
  model::AssignedGpu gpu;
  gpu.request.address = test::pci_address(address);
  gpu.functions.push_back({test::pci_address(address), "10de:26b9", 0x030200, pci::IommuGroup(group), "nvidia",
                           {mem32(0, 16 * kMiB), mem64_pref(1, 64 * kGiB), mem64_pref(3, 32 * kMiB)}});
  gpu.numa_node = node;
  gpu.peer_path = {.pcie_root = root, .pcie_switch = test::pci_address(upstream), .nvlink = false, .cap_slot = slot};
  return gpu;
}

// The PCIe host's eight L40S: on node 0 switches 0000:16:00.0 (root bus pci0000:15) and
// 0000:26:00.0 (pci0000:25), on node 1 0000:86:00.0 (pci0000:85) and 0000:96:00.0 (pci0000:95);
// two GPUs under each, on the switch's buses +2 and +3.
std::vector<model::AssignedGpu> pcie_host_gpus() {
  std::vector<model::AssignedGpu> gpus;
  const int roots[] = {0x15, 0x25, 0x85, 0x95};
  uint32_t group = 30;
  for (int r = 0; r < 4; ++r) {
    char root[16], upstream[16];
    std::snprintf(root, sizeof root, "pci0000:%02x", roots[r]);
    std::snprintf(upstream, sizeof upstream, "0000:%02x:00.0", roots[r] + 1);
    for (int g = 0; g < 2; ++g) {
      char address[16];
      std::snprintf(address, sizeof address, "0000:%02x:00.0", roots[r] + 3 + g);
      gpus.push_back(l40s(address, group++, r < 2 ? 0 : 1, root, upstream));
    }
  }
  return gpus;
}

// The GPUs of `all` by index.
std::vector<model::AssignedGpu> pick(const std::vector<model::AssignedGpu>& all, std::initializer_list<size_t> which) {
  std::vector<model::AssignedGpu> out;
  for (size_t i : which) out.push_back(all[i]);
  return out;
}

// The HGX H100 board's GPUs with their places: each under its own PCIe switch on its own root
// bus, 0-3 on node 0, 4-7 on node 1, joined by NVLink.
std::vector<model::AssignedGpu> board_gpus(size_t count) {
  auto gpus = hgx_h100s_on_nodes(count);
  for (size_t i = 0; i < gpus.size(); ++i) {
    const std::string bus = gpus[i].request.address.to_string().substr(5, 2);
    gpus[i].peer_path = {.pcie_root = "pci0000:" + bus, .pcie_switch = std::nullopt, .nvlink = true,
                         .cap_slot = model::GpudirectSlot::kD4};
  }
  return gpus;
}

model::VmSpec spec_for(const std::vector<model::AssignedGpu>& gpus) {
  model::VmSpec spec;
  spec.cpus = {4, 4};
  spec.memory.size_mib = 64 * 1024;
  spec.boot.kernel = "/guest/vmlinuz";
  for (const auto& gpu : gpus) spec.gpus.push_back(gpu.request);
  return spec;
}

ArgvConfig config(bool guest_numa = false) {
  ArgvConfig c;
  c.binary = "/usr/bin/qemu-system-x86_64";
  c.accel = Accel::kTcg;
  c.guest_numa = guest_numa;
  return c;
}

// The vfio-pci devices of an argv, in order.
Argv vfio_devices(const Argv& argv) {
  Argv out;
  for (const auto& arg : argv)
    if (arg.rfind("vfio-pci,", 0) == 0) out.push_back(arg);
  return out;
}

std::string vfio(size_t index, const std::string& host, const std::string& extra = "") {
  const std::string card = "feos-gpu" + std::to_string(index);
  return "vfio-pci,host=" + host + ",id=" + card + "-f0,bus=" + card + "-rp,addr=0x0.0" + extra;
}
std::string clique(int id) { return ",x-nv-gpudirect-clique=" + std::to_string(id); }

Argv build(const std::vector<model::AssignedGpu>& gpus, const model::VmSpec& spec, bool guest_numa = false) {
  auto argv = build_argv(config(guest_numa), spec, {}, gpus, kFiles, "vm-1");
  EXPECT_TRUE(argv) << argv.error().to_string();
  return argv ? *argv : Argv{};
}

// ---- the rule ---------------------------------------------------------------------------------

TEST(GpudirectPlan, OneGpuHasNoPeer) {
  auto plan = plan_gpudirect({}, pick(pcie_host_gpus(), {0}), false);
  ASSERT_TRUE(plan);
  EXPECT_THAT(plan->clique, ElementsAre(std::nullopt));
  EXPECT_TRUE(plan->decisions.empty());
}

TEST(GpudirectPlan, GpusOfOneSwitchShareACliqueAndIdsFollowTheFirstGpu) {
  // Given out of address order: the clique of the first GPU's root bus is 0.
  auto plan = plan_gpudirect({}, pick(pcie_host_gpus(), {5, 0, 4, 1}), false);
  ASSERT_TRUE(plan);
  EXPECT_THAT(plan->clique, ElementsAre(0, 1, 0, 1));
  EXPECT_THAT(plan->decisions,
              ElementsAre("GPUDirect clique 0: 0000:89:00.0, 0000:88:00.0 (under the PCIe switch at 0000:86:00.0)",
                          "GPUDirect clique 1: 0000:18:00.0, 0000:19:00.0 (under the PCIe switch at 0000:16:00.0)"));
}

TEST(GpudirectPlan, OneRootComplexWithoutASwitchIsOneClique) {
  auto gpus = pick(pcie_host_gpus(), {0, 1});
  for (auto& gpu : gpus) gpu.peer_path.pcie_switch.reset();  // both on root ports of pci0000:15
  auto plan = plan_gpudirect({}, gpus, false);
  ASSERT_TRUE(plan);
  EXPECT_THAT(plan->clique, ElementsAre(0, 0));
  EXPECT_THAT(plan->decisions,
              ElementsAre("GPUDirect clique 0: 0000:18:00.0, 0000:19:00.0 (on root bus pci0000:15 (one root complex))"));
}

TEST(GpudirectPlan, GpusOnTwoRootBusesGetNone) {
  auto plan = plan_gpudirect({}, pick(pcie_host_gpus(), {0, 2, 4, 6}), false);
  ASSERT_TRUE(plan);
  EXPECT_THAT(plan->clique, ElementsAre(std::nullopt, std::nullopt, std::nullopt, std::nullopt));
}

TEST(GpudirectPlan, NvlinkGpusNeedNone) {
  auto plan = plan_gpudirect({}, board_gpus(8), true);
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->clique, std::vector<std::optional<int>>(8, std::nullopt));
  ASSERT_EQ(plan->decisions.size(), 1u);
  EXPECT_THAT(plan->decisions[0], HasSubstr("are joined by NVLink through the board's NVSwitches: no clique needed"));
}

TEST(GpudirectPlan, OtherVendorsAndUnknownPlacesGetNone) {
  auto gpus = pick(pcie_host_gpus(), {0, 1, 2, 3});
  gpus[0].functions[0].id = "1002:740f";  // an AMD Instinct MI210 on the same switch
  gpus[2].peer_path = {};                 // a record from before places were known
  auto plan = plan_gpudirect({}, gpus, false);
  ASSERT_TRUE(plan);
  EXPECT_THAT(plan->clique, ElementsAre(std::nullopt, std::nullopt, std::nullopt, std::nullopt));
}

TEST(GpudirectPlan, TheCapabilityNeedsRoomInTheConfigSpace) {
  // Turing and newer: MSI-X at C8h. QEMU before 8.1 puts the capability only there.
  auto gpus = pick(pcie_host_gpus(), {0, 1});
  for (auto& gpu : gpus) gpu.peer_path.cap_slot = model::GpudirectSlot::kD4;
  auto old_qemu = plan_gpudirect({}, gpus, false);
  ASSERT_TRUE(old_qemu);
  EXPECT_THAT(old_qemu->clique, ElementsAre(std::nullopt, std::nullopt));
  EXPECT_THAT(old_qemu->decisions,
              Contains("GPUDirect: 0000:18:00.0 gets no clique: its MSI-X capability holds C8h and this QEMU "
                       "places the GPUDirect capability only there (QEMU 8.1 and newer fall back to D4h)"));
  auto new_qemu = plan_gpudirect({}, gpus, true);
  ASSERT_TRUE(new_qemu);
  EXPECT_THAT(new_qemu->clique, ElementsAre(0, 0));
  gpus[1].peer_path.cap_slot = model::GpudirectSlot::kNone;
  auto full = plan_gpudirect({}, gpus, true);
  ASSERT_TRUE(full);
  EXPECT_THAT(full->clique, ElementsAre(std::nullopt, std::nullopt));  // a clique of one is none
}

TEST(GpudirectPlan, SixteenIdsAtMost) {
  std::vector<model::AssignedGpu> gpus;
  for (int bus = 0; bus < 17; ++bus) {
    char root[16], upstream[16], a[16], b[16];
    std::snprintf(root, sizeof root, "pci0000:%02x", 0x10 * (bus % 16) + bus / 16);
    std::snprintf(upstream, sizeof upstream, "0000:%02x:00.0", 0x10 * (bus % 16) + bus / 16 + 1);
    std::snprintf(a, sizeof a, "0001:%02x:00.0", 2 * bus);
    std::snprintf(b, sizeof b, "0001:%02x:00.0", 2 * bus + 1);
    gpus.push_back(l40s(a, 100 + 2 * bus, 0, root, upstream));
    gpus.push_back(l40s(b, 101 + 2 * bus, 0, root, upstream));
  }
  auto plan = plan_gpudirect({}, gpus, false);
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->clique[31], 15);
  EXPECT_EQ(plan->clique[32], std::nullopt);
  EXPECT_THAT(plan->decisions.back(), HasSubstr("get no clique: all 16 ids are taken"));
}

TEST(GpudirectPlan, OffGivesNone) {
  auto plan = plan_gpudirect({.mode = model::GpuP2pMode::kOff, .cliques = {}}, pick(pcie_host_gpus(), {0, 1}), false);
  ASSERT_TRUE(plan);
  EXPECT_THAT(plan->clique, ElementsAre(std::nullopt, std::nullopt));
  EXPECT_THAT(plan->decisions, ElementsAre("GPUDirect cliques: none (gpu_p2p off)"));
}

TEST(GpudirectPlan, ExplicitCliquesAreTheClientsInTheirOrder) {
  auto gpus = pick(pcie_host_gpus(), {0, 1, 4, 5});
  model::GpuP2pSpec p2p{.mode = model::GpuP2pMode::kExplicit,
                        .cliques = {{gpus[1].request.address, gpus[2].request.address},
                                    {gpus[0].request.address, gpus[3].request.address}}};
  auto plan = plan_gpudirect(p2p, gpus, false);
  ASSERT_TRUE(plan);
  EXPECT_THAT(plan->clique, ElementsAre(1, 0, 0, 1));
  EXPECT_THAT(plan->decisions, ElementsAre("GPUDirect clique 0: 0000:19:00.0, 0000:88:00.0 (gpu_p2p explicit)",
                                           "GPUDirect clique 1: 0000:18:00.0, 0000:89:00.0 (gpu_p2p explicit)"));
}

TEST(GpudirectPlan, ExplicitCliquesOnOtherVendorsAreRefusedNamingTheDevice) {
  auto gpus = pick(pcie_host_gpus(), {0, 1});
  gpus[1].functions[0].id = "1002:740f";
  model::GpuP2pSpec p2p{.mode = model::GpuP2pMode::kExplicit,
                        .cliques = {{gpus[0].request.address, gpus[1].request.address}}};
  auto plan = plan_gpudirect(p2p, gpus, false);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, Code::kInvalidArgument);
  EXPECT_EQ(plan.error().message,
            "config.gpu_p2p.cliques[0]: 0000:19:00.0 (1002:740f) is not an NVIDIA GPU: GPUDirect cliques are "
            "NVIDIA's (QEMU refuses x-nv-gpudirect-clique on other devices)");
}

TEST(GpudirectPlan, ExplicitCliqueWithoutRoomIsRefused) {
  auto gpus = pick(pcie_host_gpus(), {0, 1});
  gpus[0].peer_path.cap_slot = model::GpudirectSlot::kD4;
  model::GpuP2pSpec p2p{.mode = model::GpuP2pMode::kExplicit,
                        .cliques = {{gpus[0].request.address, gpus[1].request.address}}};
  auto plan = plan_gpudirect(p2p, gpus, false);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code, Code::kFailedPrecondition);
  EXPECT_THAT(plan.error().message, HasSubstr("config.gpu_p2p.cliques[0]: 0000:18:00.0 cannot carry a clique"));
  EXPECT_TRUE(plan_gpudirect(p2p, gpus, true));
}

// ---- argv on the simulated hosts --------------------------------------------------------------

TEST(GpudirectArgv, TwoL40sUnderOneSwitch) {
  // The whole command line once: the clique is an option of the GPU's vfio-pci device and nothing
  // else changes. Hole: 2 x 128 GiB windows + 64 GiB slack = 320 GiB; RAM ends at 66 GiB, the
  // hole at 386 GiB < 512 GiB: the 40-bit floor.
  const auto gpus = pick(pcie_host_gpus(), {0, 1});
  EXPECT_THAT(build(gpus, spec_for(gpus)),
              ElementsAreArray(Argv{
                  "/usr/bin/qemu-system-x86_64", "-name", "guest=vm-1,debug-threads=on", "-machine",
                  "q35,memory-backend=ram0", "-accel", "tcg", "-cpu", "max,phys-bits=40", "-smp", "4,maxcpus=4",
                  "-m", "65536M", "-object", "memory-backend-ram,id=ram0,size=65536M,prealloc=on,prealloc-threads=4",
                  "-global", "q35-pcihost.pci-hole64-size=343597383680", "-nodefaults", "-no-user-config",
                  "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
                  "-display", "none", "-msg", "timestamp=on", "-S", "-pidfile", "/run/feos/vms/vm-1/qemu.pid",
                  "-chardev", "socket,id=qmp0,path=/run/feos/vms/vm-1/qmp.sock,server=on,wait=off",
                  "-mon", "chardev=qmp0,mode=control",
                  "-chardev", "socket,id=con0,path=/run/feos/vms/vm-1/console.sock,server=on,wait=off",
                  "-serial", "chardev:con0", "-kernel", "/guest/vmlinuz",
                  "-device", "pcie-root-port,id=feos-gpu0-rp,bus=pcie.0,chassis=1,slot=1,io-reserve=0",
                  "-device", vfio(0, "0000:18:00.0", clique(0)),
                  "-device", "pcie-root-port,id=feos-gpu1-rp,bus=pcie.0,chassis=1,slot=2,io-reserve=0",
                  "-device", vfio(1, "0000:19:00.0", clique(0))}));
}

TEST(GpudirectArgv, PcieHostOneNode) {
  const auto all = pcie_host_gpus();
  for (bool numa : {false, true}) {
    SCOPED_TRACE(numa ? "guest NUMA" : "no guest NUMA");
    auto one = pick(all, {0});
    EXPECT_THAT(vfio_devices(build(one, spec_for(one), numa)), ElementsAre(vfio(0, "0000:18:00.0")));
    auto two = pick(all, {0, 1});
    EXPECT_THAT(vfio_devices(build(two, spec_for(two), numa)),
                ElementsAre(vfio(0, "0000:18:00.0", clique(0)), vfio(1, "0000:19:00.0", clique(0))));
    auto four = pick(all, {0, 1, 2, 3});
    EXPECT_THAT(vfio_devices(build(four, spec_for(four), numa)),
                ElementsAre(vfio(0, "0000:18:00.0", clique(0)), vfio(1, "0000:19:00.0", clique(0)),
                            vfio(2, "0000:28:00.0", clique(1)), vfio(3, "0000:29:00.0", clique(1))));
  }
}

TEST(GpudirectArgv, PcieHostTwoNodes) {
  const auto all = pcie_host_gpus();
  for (bool numa : {false, true}) {
    SCOPED_TRACE(numa ? "guest NUMA" : "no guest NUMA");
    // One GPU per node: different root buses, no clique.
    auto two = pick(all, {0, 4});
    EXPECT_THAT(vfio_devices(build(two, spec_for(two), numa)),
                ElementsAre(vfio(0, "0000:18:00.0"), vfio(1, "0000:88:00.0")));
    auto four = pick(all, {0, 1, 4, 5});
    EXPECT_THAT(vfio_devices(build(four, spec_for(four), numa)),
                ElementsAre(vfio(0, "0000:18:00.0", clique(0)), vfio(1, "0000:19:00.0", clique(0)),
                            vfio(2, "0000:88:00.0", clique(1)), vfio(3, "0000:89:00.0", clique(1))));
    auto eight = all;
    EXPECT_THAT(vfio_devices(build(eight, spec_for(eight), numa)),
                ElementsAre(vfio(0, "0000:18:00.0", clique(0)), vfio(1, "0000:19:00.0", clique(0)),
                            vfio(2, "0000:28:00.0", clique(1)), vfio(3, "0000:29:00.0", clique(1)),
                            vfio(4, "0000:88:00.0", clique(2)), vfio(5, "0000:89:00.0", clique(2)),
                            vfio(6, "0000:98:00.0", clique(3)), vfio(7, "0000:99:00.0", clique(3))));
  }
  // With guest NUMA the root ports of node 1's GPUs hang off its expander bus; the cliques stay.
  auto argv = build(all, spec_for(all), true);
  EXPECT_THAT(argv, Contains("pcie-root-port,id=feos-gpu7-rp,bus=feos-numa1,chassis=1,slot=8,io-reserve=0"));
}

TEST(GpudirectArgv, HgxBoardGetsNoCliqueOnOneNodeOrTwo) {
  for (size_t count : {1, 2, 4, 8}) {
    SCOPED_TRACE(std::to_string(count) + " GPUs");
    const auto gpus = board_gpus(count);
    for (bool numa : {false, true}) {
      auto launch = build_launch(config(numa), spec_for(gpus), {}, gpus, kFiles, "vm-1");
      ASSERT_TRUE(launch) << launch.error().to_string();
      for (const auto& arg : launch->argv) EXPECT_THAT(arg, ::testing::Not(HasSubstr("gpudirect")));
      if (count > 1) {
        EXPECT_THAT(launch->decisions, Contains(HasSubstr("joined by NVLink through the board's NVSwitches")));
      }
    }
  }
}

TEST(GpudirectArgv, OverrideOffAndExplicit) {
  const auto gpus = pick(pcie_host_gpus(), {0, 1, 4, 5});
  auto off = spec_for(gpus);
  off.gpu_p2p.mode = model::GpuP2pMode::kOff;
  EXPECT_THAT(vfio_devices(build(gpus, off)),
              ElementsAre(vfio(0, "0000:18:00.0"), vfio(1, "0000:19:00.0"), vfio(2, "0000:88:00.0"),
                          vfio(3, "0000:89:00.0")));
  // The client's one clique across both nodes (its call: the host topology would give two).
  auto explicit_spec = spec_for(gpus);
  explicit_spec.gpu_p2p = {.mode = model::GpuP2pMode::kExplicit,
                           .cliques = {{gpus[0].request.address, gpus[1].request.address, gpus[2].request.address,
                                        gpus[3].request.address}}};
  EXPECT_THAT(vfio_devices(build(gpus, explicit_spec, true)),
              ElementsAre(vfio(0, "0000:18:00.0", clique(0)), vfio(1, "0000:19:00.0", clique(0)),
                          vfio(2, "0000:88:00.0", clique(0)), vfio(3, "0000:89:00.0", clique(0))));
}

TEST(GpudirectArgv, OnlyTheDisplayFunctionOfAMultiFunctionCardCarriesIt) {
  auto first = rtx4090();
  auto second = rtx4090();
  for (auto& function : second.functions)
    function.address = pci::Address(0, 0x02, function.address.device(), function.address.function());
  second.request.address = second.functions[0].address;
  for (auto* gpu : {&first, &second})
    gpu->peer_path = {.pcie_root = "pci0000:00", .pcie_switch = std::nullopt, .nvlink = false,
                      .cap_slot = model::GpudirectSlot::kC8};
  const std::vector<model::AssignedGpu> gpus{first, second};
  Argv devices = vfio_devices(build(gpus, spec_for(gpus)));
  ASSERT_EQ(devices.size(), 8u);
  for (size_t i = 0; i < devices.size(); ++i)
    EXPECT_EQ(devices[i].find("x-nv-gpudirect-clique=0") != std::string::npos, i % 4 == 0) << devices[i];
}

TEST(GpudirectArgv, ExplicitCliquesAreValidatedAgainstTheSpec) {
  const auto gpus = pick(pcie_host_gpus(), {0, 1});
  auto spec = spec_for(gpus);
  spec.gpu_p2p = {.mode = model::GpuP2pMode::kExplicit,
                  .cliques = {{gpus[0].request.address, test::pci_address("0000:77:00.0")}}};
  auto argv = build_argv(config(), spec, {}, gpus, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().message,
            "vm vm-1: config.gpu_p2p.cliques[0]: 0000:77:00.0 is not one of the VM's GPUs (config.gpus)");
}

}  // namespace
}  // namespace feos::vmm::qemu
