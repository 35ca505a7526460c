// Guest RAM on the command line (memory_backing.h): hugepages of 2 MiB and 1 GiB on one and two
// guest NUMA nodes, the preallocation threads, the start's progress lines, its longer wait, and
// the locked-memory limit. The goldens are the memory part of the argv: -machine, -m, -object, -numa.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gpu_fixtures.h"
#include "vmm/qemu/argv_builder.h"
#include "vmm/qemu/memory_backing.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Argv = std::vector<std::string>;
using namespace feos::vmm::qemu::testing;

const RuntimeFiles kFiles = runtime_files("/run/feos/vms/vm-1");


model::VmSpec spec_with(uint32_t vcpus, uint64_t memory_mib, model::HugepageSize page, bool hugepages = true) {
  model::VmSpec spec;
  spec.cpus = {vcpus, vcpus};
  spec.memory = {.size_mib = memory_mib, .hugepages = hugepages, .hugepage_size = page};
  spec.boot.kernel = "/guest/vmlinuz";
  return spec;
}

std::vector<int> cpu_range(int first, int count) {
  std::vector<int> cpus(count);
  for (int i = 0; i < count; ++i) cpus[i] = first + i;
  return cpus;
}

// A two-node host with 56 CPUs a node; hugetlbfs mounts as the adapter found them.
ArgvConfig config(bool guest_numa, uint64_t page_kib) {
  ArgvConfig c;
  c.binary = "/usr/bin/qemu-system-x86_64";
  c.accel = Accel::kTcg;
  c.hugepages_dir = page_kib == 2048 ? "/dev/hugepages" : "/dev/hugepages-1G";
  c.hugepage_kib = page_kib;
  c.guest_numa = guest_numa;
  c.host_node_cpus = {{0, cpu_range(0, 56)}, {1, cpu_range(56, 56)}};
  return c;
}

Argv memory_args(const Argv& argv) {
  Argv out;
  for (size_t i = 1; i + 1 < argv.size(); ++i)
    if (argv[i] == "-machine" || argv[i] == "-m" || argv[i] == "-object" || argv[i] == "-numa") {
      out.push_back(argv[i]);
      out.push_back(argv[i + 1]);
    }
  return out;
}

Argv memory_argv(const ArgvConfig& c, const model::VmSpec& spec, const std::vector<model::AssignedGpu>& gpus) {
  auto argv = build_argv(c, spec, {}, gpus, kFiles, "vm-1");
  EXPECT_TRUE(argv) << argv.error().to_string();
  return argv ? memory_args(*argv) : Argv{};
}

TEST(MemoryArgv, TwoMegHugepagesOnOneNode) {
  EXPECT_THAT(memory_argv(config(true, 2048), spec_with(8, 65536, model::HugepageSize::k2M), hgx_h100s_on_nodes(2)),
              ElementsAre("-machine", "q35", "-m", "65536M", "-object",
                          "memory-backend-file,id=ram-node0,size=65536M,mem-path=/dev/hugepages,share=on,"
                          "prealloc=on,prealloc-threads=8,host-nodes=0,policy=bind",
                          "-numa", "node,nodeid=0,cpus=0-7,memdev=ram-node0"));
}

TEST(MemoryArgv, TwoMegHugepagesOnTwoNodes) {
  EXPECT_THAT(memory_argv(config(true, 2048), spec_with(16, 131072, model::HugepageSize::k2M), hgx_h100s_on_nodes(8)),
              ElementsAre("-machine", "q35", "-m", "131072M", "-object",
                          "memory-backend-file,id=ram-node0,size=65536M,mem-path=/dev/hugepages,share=on,"
                          "prealloc=on,prealloc-threads=8,host-nodes=0,policy=bind",
                          "-object",
                          "memory-backend-file,id=ram-node1,size=65536M,mem-path=/dev/hugepages,share=on,"
                          "prealloc=on,prealloc-threads=8,host-nodes=1,policy=bind",
                          "-numa", "node,nodeid=0,cpus=0-7,memdev=ram-node0", "-numa",
                          "node,nodeid=1,cpus=8-15,memdev=ram-node1"));
}

TEST(MemoryArgv, OneGigHugepagesOnOneNode) {
  EXPECT_THAT(memory_argv(config(true, 1 << 20), spec_with(4, 8192, model::HugepageSize::k1G), hgx_h100s_on_nodes(1)),
              ElementsAre("-machine", "q35", "-m", "8192M", "-object",
                          "memory-backend-file,id=ram-node0,size=8192M,mem-path=/dev/hugepages-1G,share=on,"
                          "prealloc=on,prealloc-threads=4,host-nodes=0,policy=bind",
                          "-numa", "node,nodeid=0,cpus=0-3,memdev=ram-node0"));
}

TEST(MemoryArgv, OneGigHugepagesOnTwoNodesSplitInWholePages) {
  // 3 GPUs on node 0, 1 on node 1: 3/4 of 10 GiB is 7.5 GiB, which 1 GiB pages cannot hold.
  auto gpus = hgx_h100s_on_nodes(8);
  std::vector<model::AssignedGpu> four = {gpus[0], gpus[1], gpus[2], gpus[4]};
  EXPECT_THAT(memory_argv(config(true, 1 << 20), spec_with(4, 10240, model::HugepageSize::k1G), four),
              ElementsAre("-machine", "q35", "-m", "10240M", "-object",
                          "memory-backend-file,id=ram-node0,size=8192M,mem-path=/dev/hugepages-1G,share=on,"
                          "prealloc=on,prealloc-threads=3,host-nodes=0,policy=bind",
                          "-object",
                          "memory-backend-file,id=ram-node1,size=2048M,mem-path=/dev/hugepages-1G,share=on,"
                          "prealloc=on,prealloc-threads=1,host-nodes=1,policy=bind",
                          "-numa", "node,nodeid=0,cpus=0-2,memdev=ram-node0", "-numa",
                          "node,nodeid=1,cpus=3,memdev=ram-node1"));
}

TEST(MemoryArgv, WithoutNumaOneBackendIsTheMachines) {
  // Hugepages without GPUs: preallocated (fail at start, not at runtime), by every vCPU's thread.
  EXPECT_THAT(memory_argv(config(false, 1 << 20), spec_with(6, 4096, model::HugepageSize::k1G), {}),
              ElementsAre("-machine", "q35,memory-backend=ram0", "-m", "4096M", "-object",
                          "memory-backend-file,id=ram0,size=4096M,mem-path=/dev/hugepages-1G,share=on,"
                          "prealloc=on,prealloc-threads=6"));
  // A GPU VM without hugepages: VFIO pins it all anyway, so qemu's threads touch it first.
  EXPECT_THAT(memory_argv(config(false, 0), spec_with(2, 4096, model::HugepageSize::kHostDefault, false), hgx_h100s_on_nodes(1)),
              ElementsAre("-machine", "q35,memory-backend=ram0", "-m", "4096M", "-object",
                          "memory-backend-ram,id=ram0,size=4096M,prealloc=on,prealloc-threads=2"));
  // Neither: qemu's own RAM, its pages come as the guest touches them (FeOS's behaviour).
  EXPECT_THAT(memory_argv(config(false, 0), spec_with(2, 4096, model::HugepageSize::kHostDefault, false), {}),
              ElementsAre("-machine", "q35", "-m", "4096M"));
}

TEST(MemoryArgv, ThreadsNeverMoreThanTheHostNodesCpus) {
  auto c = config(true, 2048);
  c.host_node_cpus = {{0, {0, 1, 2, 3}}};
  auto plan = plan_memory(c, spec_with(64, 65536, model::HugepageSize::k2M),
                          *plan_guest_numa(spec_with(64, 65536, model::HugepageSize::k2M), hgx_h100s_on_nodes(1)).value(),
                          true);
  ASSERT_EQ(plan.backends.size(), 1u);
  EXPECT_EQ(plan.backends[0].prealloc_threads, 4u);
}

TEST(MemoryArgv, ANodeShareOfWholeHugepagesOrRefused) {
  // 1 GiB pages: a VM of 1536 MiB is refused by model::validate(); two nodes need 2 GiB at least.
  auto refused = build_argv(config(true, 1 << 20), spec_with(2, 1024, model::HugepageSize::k1G), {}, hgx_h100s_on_nodes(8),
                            kFiles, "vm-1");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kInvalidArgument);
  EXPECT_EQ(refused.error().message,
            "vm vm-1: guest NUMA: config.memory.size_mib: 1024 MiB cannot be split over 2 NUMA nodes");
  auto uneven = build_argv(config(true, 1 << 20), spec_with(2, 1536, model::HugepageSize::k1G), {}, hgx_h100s_on_nodes(1),
                           kFiles, "vm-1");
  ASSERT_FALSE(uneven);
  EXPECT_EQ(uneven.error().message,
            "vm vm-1: config.memory.size_mib: 1536 MiB is not a whole number of 1G hugepages");
}

TEST(MemoryProgress, SaysWhatIsPreallocatedWhereAndWithHowMany) {
  auto lines = [](const ArgvConfig& c, const model::VmSpec& spec, const std::vector<model::AssignedGpu>& gpus) {
    auto launch = build_launch(c, spec, {}, gpus, kFiles, "vm-1");
    EXPECT_TRUE(launch) << launch.error().to_string();
    std::optional<GuestNuma> numa;
    if (c.guest_numa) numa = *plan_guest_numa(spec, gpus, numa_step_mib(c, spec)).value();
    return describe_memory(plan_memory(c, spec, numa, !gpus.empty()));
  };
  EXPECT_THAT(lines(config(true, 2048), spec_with(16, 131072, model::HugepageSize::k2M), hgx_h100s_on_nodes(8)),
              ElementsAre("preallocating 64 GiB on host node 0 (2 MiB pages, 8 threads on host CPUs 0-111; VFIO pins "
                          "it for the GPUs)",
                          "preallocating 64 GiB on host node 1 (2 MiB pages, 8 threads on host CPUs 0-111; VFIO pins "
                          "it for the GPUs)"));
  EXPECT_THAT(lines(config(false, 0), spec_with(1, 512, model::HugepageSize::kHostDefault, false), hgx_h100s_on_nodes(1)),
              ElementsAre("preallocating 512 MiB (4 KiB pages, 1 thread; VFIO pins it for the GPUs)"));
  EXPECT_THAT(lines(config(false, 1 << 20), spec_with(2, 2048, model::HugepageSize::k1G), {}),
              ElementsAre("preallocating 2 GiB (1 GiB pages, 2 threads)"));
  EXPECT_THAT(lines(config(false, 0), spec_with(2, 2048, model::HugepageSize::kHostDefault, false), {}), IsEmpty());
  // The launch plan (a dry run) says the same.
  auto launch = build_launch(config(true, 2048), spec_with(8, 65536, model::HugepageSize::k2M), {}, hgx_h100s_on_nodes(1),
                             kFiles, "vm-1");
  ASSERT_TRUE(launch);
  EXPECT_THAT(launch->decisions,
              ::testing::Contains("memory: preallocating 64 GiB on host node 0 (2 MiB pages, 8 threads on host CPUs "
                                  "0-55; VFIO pins it for the GPUs)"));
}

TEST(MemoryArgv, QemuStartsOnTheCpusOfTheNodesItsRamIsBoundTo) {
  const auto spec = spec_with(16, 131072, model::HugepageSize::k2M);
  auto launch_cpus = [&](const ArgvConfig& c, int gpus) {
    return plan_memory(c, spec, *plan_guest_numa(spec, hgx_h100s_on_nodes(gpus), numa_step_mib(c, spec)).value(), true)
        .launch_cpus;
  };
  EXPECT_EQ(launch_cpus(config(true, 2048), 1), cpu_range(0, 56));    // GPUs on node 0 only
  EXPECT_EQ(launch_cpus(config(true, 2048), 8), cpu_range(0, 112));   // both nodes
  auto unknown = config(true, 2048);
  unknown.host_node_cpus.erase(1);  // node 1's CPU list unreadable: anywhere, not node 0 alone
  EXPECT_THAT(launch_cpus(unknown, 8), IsEmpty());
  EXPECT_EQ(launch_cpus(unknown, 1), cpu_range(0, 56));
  // Not bound to a node (no guest NUMA): anywhere.
  EXPECT_THAT(plan_memory(config(false, 2048), spec, std::nullopt, true).launch_cpus, IsEmpty());
}

TEST(MemoryProgress, ABigGuestGetsLongerToStart) {
  MemoryPlan plan;
  EXPECT_EQ(memory_start_allowance(plan), std::chrono::milliseconds(0));
  plan.backends = {{.id = "ram-node0", .size_mib = 256 * 1024, .host_node = 0, .prealloc_threads = 8},
                   {.id = "ram-node1", .size_mib = 256 * 1024 + 1, .host_node = 1, .prealloc_threads = 8}};
  EXPECT_EQ(memory_start_allowance(plan), std::chrono::seconds(2 * 513));  // 512 GiB and a part
  plan.backends[0].prealloc_threads = plan.backends[1].prealloc_threads = 0;
  EXPECT_EQ(memory_start_allowance(plan), std::chrono::milliseconds(0));  // qemu touches nothing
}

TEST(Memlock, GuestRamPlusOneGibWithGpusElseInherited) {
  auto spec = spec_with(4, 64 * 1024, model::HugepageSize::kHostDefault, false);
  EXPECT_EQ(memlock_bytes(spec, {}), 0u);
  EXPECT_EQ(memlock_bytes(spec, hgx_h100s_on_nodes(1)), uint64_t{65} << 30);
  // Every group shares qemu's one VFIO container: RAM counts once, however many GPUs.
  EXPECT_EQ(memlock_bytes(spec, hgx_h100s_on_nodes(8)), uint64_t{65} << 30);
  // Hugepages are pinned as well and count against the limit the same way.
  spec = spec_with(4, 512 * 1024, model::HugepageSize::k1G);
  EXPECT_EQ(memlock_bytes(spec, hgx_h100s_on_nodes(8)), uint64_t{513} << 30);
}

TEST(Memlock, SizesAsPeopleWriteThem) {
  EXPECT_EQ(size_text(4), "4 KiB");
  EXPECT_EQ(size_text(2048), "2 MiB");
  EXPECT_EQ(size_text(1 << 20), "1 GiB");
  EXPECT_EQ(size_text(3 * 1024 + 512), "3584 KiB");
}

}  // namespace
}  // namespace feos::vmm::qemu
