// Guest NUMA nodes mirroring the host nodes of a VM's GPUs (guest_numa.h): the shares, the
// refusals, and the argv on an HGX H100 board (GPUs 0-3 on host node 0, 4-7 on node 1) with 1, 2,
// 4 and 8 GPUs: one guest node, and two.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gpu_fixtures.h"
#include "vmm/qemu/argv_builder.h"
#include "vmm/qemu/guest_numa.h"
#include "vmm/qemu/qemu_cmdline.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using Argv = std::vector<std::string>;
using namespace feos::vmm::qemu::testing;

const RuntimeFiles kFiles = runtime_files("/run/feos/vms/vm-1");


model::VmSpec spec_with(uint32_t boot, uint32_t max, uint64_t memory_mib) {
  model::VmSpec spec;
  spec.cpus = {boot, max};
  spec.memory.size_mib = memory_mib;
  spec.boot.kernel = "/guest/vmlinuz";
  return spec;
}

ArgvConfig config(bool guest_numa) {
  ArgvConfig c;
  c.binary = "/usr/bin/qemu-system-x86_64";
  c.accel = Accel::kTcg;
  c.hugepages_dir = "/mnt/huge";
  c.hugepage_kib = 2048;
  c.guest_numa = guest_numa;
  return c;
}

TEST(GuestNuma, OneNodeTakesEverything) {
  auto numa = plan_guest_numa(spec_with(4, 8, 65536), hgx_h100s_on_nodes(4));
  ASSERT_TRUE(numa) << numa.error().to_string();
  ASSERT_TRUE(numa->has_value());
  const auto& nodes = (*numa)->nodes;
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].host_node, 0);
  EXPECT_EQ(nodes[0].first_cpu, 0u);
  EXPECT_EQ(nodes[0].cpus, 8u);  // the hot-pluggable CPUs too
  EXPECT_EQ(nodes[0].memory_mib, 65536u);
  EXPECT_EQ(nodes[0].bus, "feos-numa0");
  EXPECT_EQ(nodes[0].bus_nr, 0x80);
  EXPECT_EQ((*numa)->gpu_bus, (std::vector<std::string>(4, "feos-numa0")));
}

TEST(GuestNuma, SharesFollowTheGpus) {
  // 3 GPUs on node 0, 1 on node 1: one vCPU each, the other 4 split 3:1; RAM 7500 + 2500 MiB.
  auto gpus = hgx_h100s_on_nodes(8);
  std::vector<model::AssignedGpu> four = {gpus[0], gpus[1], gpus[2], gpus[4]};
  auto numa = plan_guest_numa(spec_with(6, 6, 10000), four);
  ASSERT_TRUE(numa && numa->has_value());
  const auto& nodes = (*numa)->nodes;
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0].host_node, 0);
  EXPECT_EQ(cpu_range(nodes[0]), "0-3");
  EXPECT_EQ(nodes[0].memory_mib, 7500u);
  EXPECT_EQ(nodes[1].host_node, 1);
  EXPECT_EQ(cpu_range(nodes[1]), "4-5");
  EXPECT_EQ(nodes[1].memory_mib, 2500u);
  EXPECT_EQ(nodes[1].bus_nr, 0x90);
  EXPECT_EQ((*numa)->gpu_bus,
            (std::vector<std::string>{"feos-numa0", "feos-numa0", "feos-numa0", "feos-numa1"}));
  EXPECT_EQ(describe(nodes[1], 1, four),
            "guest node 1 = host node 1: vCPUs 4-5, 2500 MiB bound there, GPU(s) 0000:9a:00.0");
}

TEST(GuestNuma, UnevenMemoryKeeps2MiBStepsAndAddsUp) {
  auto numa = plan_guest_numa(spec_with(3, 3, 1001), hgx_h100s_on_nodes(8));
  ASSERT_TRUE(numa && numa->has_value());
  const auto& nodes = (*numa)->nodes;
  EXPECT_EQ(nodes[0].memory_mib + nodes[1].memory_mib, 1001u);
  EXPECT_EQ(nodes[1].memory_mib % 2, 0u);
  EXPECT_EQ(nodes[0].cpus + nodes[1].cpus, 3u);
}

TEST(GuestNuma, GpusWithoutANodeAddNone) {
  auto gpus = hgx_h100s(2);  // numa_node -1
  auto numa = plan_guest_numa(spec_with(2, 2, 4096), gpus);
  ASSERT_TRUE(numa);
  EXPECT_FALSE(numa->has_value());
  gpus[1].numa_node = 1;
  numa = plan_guest_numa(spec_with(2, 2, 4096), gpus);
  ASSERT_TRUE(numa && numa->has_value());
  EXPECT_EQ((*numa)->gpu_bus, (std::vector<std::string>{"pcie.0", "feos-numa0"}));
}

TEST(GuestNuma, FewerVcpusThanNodesGoToTheNodesWithTheMostGpus) {
  // One vCPU, GPUs 3:1 over two nodes: the vCPU on the node with three; the other node has RAM
  // and its GPU, no vCPU (hot-pluggable ones join it, the last node).
  auto gpus = hgx_h100s_on_nodes(8);
  std::vector<model::AssignedGpu> four = {gpus[0], gpus[4], gpus[5], gpus[6]};
  auto numa = plan_guest_numa(spec_with(1, 1, 4096), four);
  ASSERT_TRUE(numa && numa->has_value());
  EXPECT_EQ((*numa)->nodes[0].cpus, 0u);
  EXPECT_EQ(cpu_range((*numa)->nodes[1]), "0");
  EXPECT_EQ(describe((*numa)->nodes[0], 0, four),
            "guest node 0 = host node 0: no vCPUs, 1024 MiB bound there, GPU(s) 0000:18:00.0");
  numa = plan_guest_numa(spec_with(1, 4, 4096), hgx_h100s_on_nodes(8));  // a tie: the lower node
  ASSERT_TRUE(numa && numa->has_value());
  EXPECT_EQ(cpu_range((*numa)->nodes[0]), "0");
  EXPECT_EQ(cpu_range((*numa)->nodes[1]), "1-3");
  auto argv = build_argv(config(true), spec_with(1, 1, 4096), {}, four, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ::testing::Contains("node,nodeid=0,memdev=ram-node0"));
  EXPECT_THAT(*argv, ::testing::Contains("node,nodeid=1,cpus=0,memdev=ram-node1"));
}

TEST(GuestNuma, AHostNodeWithoutRoomIsRefusedUpFrontNamingIt) {
  auto numa = plan_guest_numa(spec_with(8, 8, 16384), hgx_h100s_on_nodes(8));
  ASSERT_TRUE(numa && numa->has_value());
  std::map<int, HostNodeMemory> host = {{0, {true, 8192, "8192 MiB free + 0 MiB page cache + 0 MiB reclaimable slab"}},
                                        {1, {true, 4000, "4000 MiB free + 0 MiB page cache + 0 MiB reclaimable slab"}}};
  auto refused = check_host_nodes(**numa, false, host);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(refused.error().message,
            "guest NUMA node 1 needs 8192 MiB bound to host node 1 (the node of its GPUs), which has 4000 MiB "
            "(4000 MiB free + 0 MiB page cache + 0 MiB reclaimable slab); give the VM less memory, free memory "
            "on that node, or start feosd with --guest-numa=off");
  host[1] = {true, 8192, "enough"};
  EXPECT_TRUE(check_host_nodes(**numa, false, host));
  host[1] = {};  // unknown: not checked
  EXPECT_TRUE(check_host_nodes(**numa, false, host));
  host[1] = {true, 100, "50 free hugepages of 2048 kB"};
  auto hugepages = check_host_nodes(**numa, true, host);
  ASSERT_FALSE(hugepages);
  EXPECT_THAT(hugepages.error().message, HasSubstr("needs 8192 MiB of hugepages bound to host node 1"));
}

// The argv with guest NUMA is the argv without it plus, after -m, a bound RAM backend and a -numa
// node per guest node; before the first GPU root port, an expander bus per node; each GPU's root
// port on its node's bus.
Argv expected_with_numa(Argv plain, const Argv& objects, const Argv& buses,
                        const std::vector<std::string>& gpu_bus) {
  // The plain GPU VM's one preallocated backend (memory_backing.h) gives way to the nodes'.
  auto ram0 = std::find_if(plain.begin(), plain.end(), [](const std::string& a) {
    return a.rfind("memory-backend-ram,id=ram0,", 0) == 0 || a.rfind("memory-backend-file,id=ram0,", 0) == 0;
  });
  if (ram0 != plain.end()) plain.erase(ram0 - 1, ram0 + 1);
  for (auto& a : plain)
    if (a.rfind("q35", 0) == 0)
      if (size_t at = a.find(",memory-backend=ram0"); at != std::string::npos) a.erase(at, 20);
  auto m = std::find(plain.begin(), plain.end(), "-m");
  plain.insert(m + 2, objects.begin(), objects.end());
  auto first_port = std::find_if(plain.begin(), plain.end(),
                                 [](const std::string& a) { return a.rfind("pcie-root-port,", 0) == 0; });
  const auto at = first_port - plain.begin() - 1;  // its -device
  plain.insert(plain.begin() + at, buses.begin(), buses.end());
  for (size_t i = 0; i < gpu_bus.size(); ++i) {
    const std::string port = "pcie-root-port,id=feos-gpu" + std::to_string(i) + "-rp,bus=pcie.0,";
    for (auto& a : plain)
      if (a.rfind(port, 0) == 0) a.replace(0, port.size(), "pcie-root-port,id=feos-gpu" + std::to_string(i) + "-rp,bus=" + gpu_bus[i] + ",");
  }
  return plain;
}

TEST(GuestNumaArgv, OneGpuOnNodeZero) {
  const auto spec = spec_with(2, 4, 65536);
  auto plain = build_argv(config(false), spec, {}, hgx_h100s_on_nodes(1), kFiles, "vm-1");
  auto numa = build_argv(config(true), spec, {}, hgx_h100s_on_nodes(1), kFiles, "vm-1");
  ASSERT_TRUE(plain && numa) << (plain ? numa.error().to_string() : plain.error().to_string());
  EXPECT_THAT(*numa, ElementsAreArray(expected_with_numa(
                         *plain,
                         {"-object", "memory-backend-ram,id=ram-node0,size=65536M,prealloc=on,prealloc-threads=4,host-nodes=0,policy=bind",
                          "-numa", "node,nodeid=0,cpus=0-3,memdev=ram-node0"},
                         {"-device", "pxb-pcie,id=feos-numa0,bus_nr=128,numa_node=0,bus=pcie.0"}, {"feos-numa0"})));
}

TEST(GuestNumaArgv, TwoGpusOfOneNodeWithHugepages) {
  auto spec = spec_with(4, 4, 131072);
  spec.memory.hugepages = true;
  auto plain = build_argv(config(false), spec, {}, hgx_h100s_on_nodes(2), kFiles, "vm-1");
  auto numa = build_argv(config(true), spec, {}, hgx_h100s_on_nodes(2), kFiles, "vm-1");
  ASSERT_TRUE(plain && numa);
  // Without NUMA the hugepage backend is the machine's; with it, the node's.
  EXPECT_THAT(*plain, ::testing::Contains("q35,memory-backend=ram0"));
  EXPECT_THAT(*numa, ElementsAreArray(expected_with_numa(
                         *plain,
                         {"-object",
                          "memory-backend-file,id=ram-node0,size=131072M,mem-path=/mnt/huge,share=on,prealloc=on,"
                          "prealloc-threads=4,host-nodes=0,policy=bind",
                          "-numa", "node,nodeid=0,cpus=0-3,memdev=ram-node0"},
                         {"-device", "pxb-pcie,id=feos-numa0,bus_nr=128,numa_node=0,bus=pcie.0"},
                         {"feos-numa0", "feos-numa0"})));
}

TEST(GuestNumaArgv, FourGpusOfOneNode) {
  const auto spec = spec_with(16, 16, 512 * 1024);
  auto plain = build_argv(config(false), spec, {}, hgx_h100s_on_nodes(4), kFiles, "vm-1");
  auto numa = build_argv(config(true), spec, {}, hgx_h100s_on_nodes(4), kFiles, "vm-1");
  ASSERT_TRUE(plain && numa);
  EXPECT_THAT(*numa, ElementsAreArray(expected_with_numa(
                         *plain,
                         {"-object", "memory-backend-ram,id=ram-node0,size=524288M,prealloc=on,prealloc-threads=16,host-nodes=0,policy=bind",
                          "-numa", "node,nodeid=0,cpus=0-15,memdev=ram-node0"},
                         {"-device", "pxb-pcie,id=feos-numa0,bus_nr=128,numa_node=0,bus=pcie.0"},
                         std::vector<std::string>(4, "feos-numa0"))));
}

TEST(GuestNumaArgv, EightGpusOnTwoNodes) {
  const auto spec = spec_with(32, 32, 1024 * 1024);
  auto plain = build_argv(config(false), spec, {}, hgx_h100s_on_nodes(8), kFiles, "vm-1");
  auto launch = build_launch(config(true), spec, {}, hgx_h100s_on_nodes(8), kFiles, "vm-1");
  ASSERT_TRUE(plain && launch);
  std::vector<std::string> bus(4, "feos-numa0");
  bus.resize(8, "feos-numa1");
  EXPECT_THAT(launch->argv, ElementsAreArray(expected_with_numa(
                                *plain,
                                {"-object", "memory-backend-ram,id=ram-node0,size=524288M,prealloc=on,prealloc-threads=16,host-nodes=0,policy=bind",
                                 "-object", "memory-backend-ram,id=ram-node1,size=524288M,prealloc=on,prealloc-threads=16,host-nodes=1,policy=bind",
                                 "-numa", "node,nodeid=0,cpus=0-15,memdev=ram-node0",
                                 "-numa", "node,nodeid=1,cpus=16-31,memdev=ram-node1"},
                                {"-device", "pxb-pcie,id=feos-numa0,bus_nr=128,numa_node=0,bus=pcie.0",
                                 "-device", "pxb-pcie,id=feos-numa1,bus_nr=144,numa_node=1,bus=pcie.0"},
                                bus)));
  EXPECT_THAT(launch->decisions,
              ::testing::Contains("NUMA: guest node 1 = host node 1: vCPUs 16-31, 524288 MiB bound there, GPU(s) "
                                  "0000:9a:00.0, 0000:ab:00.0, 0000:ba:00.0, 0000:db:00.0"));
}

TEST(GuestNumaArgv, ARestartedDaemonReadsEachVcpusHostNodeBack) {
  auto argv = build_argv(config(true), spec_with(6, 8, 8192), {}, hgx_h100s_on_nodes(8), kFiles, "vm-1");
  ASSERT_TRUE(argv);
  auto identity = read_qemu_identity(*argv);
  ASSERT_TRUE(identity);
  // 6 vCPUs over two equal nodes: 0-2 on node 0, 3-5 and the two hot-pluggable ones on node 1.
  EXPECT_EQ(identity->vcpu_host_nodes,
            (std::map<int, int>{{0, 0}, {1, 0}, {2, 0}, {3, 1}, {4, 1}, {5, 1}, {6, 1}, {7, 1}}));
  auto plain = build_argv(config(false), spec_with(6, 8, 8192), {}, hgx_h100s_on_nodes(8), kFiles, "vm-1");
  ASSERT_TRUE(plain);
  EXPECT_TRUE(read_qemu_identity(*plain)->vcpu_host_nodes.empty());
}

TEST(GuestNumaArgv, OffLeavesTheArgvAlone) {
  const auto spec = spec_with(2, 2, 4096);
  auto off = build_argv(config(false), spec, {}, hgx_h100s_on_nodes(8), kFiles, "vm-1");
  ASSERT_TRUE(off);
  for (const auto& a : *off) {
    EXPECT_EQ(a.find("pxb-pcie"), std::string::npos);
    EXPECT_NE(a, "-numa");
  }
}

}  // namespace
}  // namespace feos::vmm::qemu
