#include "vmm/qemu/argv_builder.h"

#include <algorithm>
#include <chrono>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gpu_fixtures.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using Argv = std::vector<std::string>;
using namespace feos::vmm::qemu::testing;

const RuntimeFiles kFiles = runtime_files("/run/feos/vms/vm-1");

ArgvConfig tcg_config() {
  ArgvConfig config;
  config.binary = "/usr/bin/qemu-system-x86_64";
  config.accel = Accel::kTcg;
  config.hugepages_dir = "/mnt/huge";
  config.hugepage_kib = 2048;
  return config;
}

model::VmSpec kernel_spec() {
  model::VmSpec spec;
  spec.cpus = {1, 2};
  spec.memory.size_mib = 256;
  spec.boot.kernel = "/guest/vmlinuz";
  spec.boot.initramfs = "/guest/initramfs.cpio";
  spec.boot.cmdline = "console=ttyS0 quiet";
  return spec;
}

// The part every VM shares after -m; `machine`, `accel`, `cpu` vary.
Argv head(const std::string& machine, const std::string& accel, const std::string& cpu,
          const std::string& smp, const std::string& mem) {
  return {"/usr/bin/qemu-system-x86_64", "-name", "guest=vm-1,debug-threads=on", "-machine",
          machine, "-accel", accel, "-cpu", cpu, "-smp", smp, "-m", mem};
}

// A GPU VM's RAM: preallocated by one thread per vCPU before VFIO pins it (memory_backing.h).
Argv gpu_ram(const std::string& size, int threads = 1) {
  return {"-object", "memory-backend-ram,id=ram0,size=" + size + ",prealloc=on,prealloc-threads=" +
                         std::to_string(threads)};
}

const Argv kCommon = {
    "-nodefaults", "-no-user-config",
    "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
    "-display", "none", "-msg", "timestamp=on", "-S",
    "-pidfile", "/run/feos/vms/vm-1/qemu.pid",
    "-chardev", "socket,id=qmp0,path=/run/feos/vms/vm-1/qmp.sock,server=on,wait=off",
    "-mon", "chardev=qmp0,mode=control",
    "-chardev", "socket,id=con0,path=/run/feos/vms/vm-1/console.sock,server=on,wait=off",
    "-serial", "chardev:con0"};

Argv concat(std::initializer_list<Argv> parts) {
  Argv out;
  for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

TEST(ArgvBuilder, RuntimeFileNames) {
  EXPECT_EQ(kFiles.qmp_socket, "/run/feos/vms/vm-1/qmp.sock");
  EXPECT_EQ(kFiles.console_socket, "/run/feos/vms/vm-1/console.sock");
  EXPECT_EQ(kFiles.pid_file, "/run/feos/vms/vm-1/qemu.pid");
  EXPECT_EQ(kFiles.ignition_file, "/run/feos/vms/vm-1/ignition.json");
  EXPECT_EQ(kFiles.qemu_log, "/run/feos/vms/vm-1/qemu.log");
  EXPECT_EQ(kFiles.console_log, "/run/feos/vms/vm-1/console.log");
}

TEST(ArgvBuilder, MinimalKernelBootTcg) {
  auto argv = build_argv(tcg_config(), kernel_spec(), {}, {}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat(
                         {head("q35", "tcg", "max", "1,maxcpus=2", "256M"), kCommon,
                          {"-kernel", "/guest/vmlinuz", "-initrd", "/guest/initramfs.cpio",
                           "-append", "console=ttyS0 quiet"}})));
}

TEST(ArgvBuilder, KvmUsesHostCpu) {
  auto config = tcg_config();
  config.accel = Accel::kKvm;
  auto spec = kernel_spec();
  spec.boot.initramfs.clear();
  spec.boot.cmdline.clear();
  spec.cpus = {4, 4};
  spec.memory.size_mib = 4096;
  auto argv = build_argv(config, spec, {}, {}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat({head("q35", "kvm", "host", "4,maxcpus=4", "4096M"),
                                              kCommon, {"-kernel", "/guest/vmlinuz"}})));
}

// Each disk of `spec` as a chain of one image at the spec's path (what check_spec_files() gives
// for a raw image or a qcow2 image without backing file or data file).
BlockGraph single_images(const model::VmSpec& spec) {
  auto image = [](const std::string& path, model::DiskFormat format) {
    bool qcow2 = format == model::DiskFormat::kQcow2;
    return ImageChain{{path, qcow2 ? format : model::DiskFormat::kRaw, ""}};
  };
  BlockGraph graph;
  if (!spec.image_path.empty()) graph.root = image(spec.image_path, spec.image_format);
  for (const auto& disk : spec.disks) graph.disks.push_back(image(disk.path, disk.format));
  return graph;
}

TEST(ArgvBuilder, DisksNetsAndIgnition) {
  auto config = tcg_config();
  model::VmSpec spec;
  spec.cpus = {2, 4};
  spec.memory.size_mib = 1024;
  spec.image_path = "/images/root.qcow2";
  spec.image_format = model::DiskFormat::kQcow2;
  spec.disks = {{"data", "/images/data.raw", false, model::DiskFormat::kRaw},
                {"seed", "/images/seed,v1.iso", true}};  // format not recorded: raw
  spec.nets = {{"nic0", "tap-vm1", "52:54:00:12:34:56"}, {"nic1", "tap-vm1b", ""}};
  spec.ignition = R"({"ignition":{"version":"3.4.0"}})";
  auto argv = build_argv(config, spec, single_images(spec), {}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(
      *argv,
      ElementsAreArray(concat(
          {head("q35", "tcg", "max", "2,maxcpus=4", "1024M"), kCommon,
           {"-fw_cfg", "name=opt/com.coreos/config,file=/run/feos/vms/vm-1/ignition.json",
            "-blockdev",
            "driver=file,node-name=drive-root-file,filename=/images/root.qcow2,read-only=off",
            "-blockdev",
            R"({"driver":"qcow2","node-name":"drive-root","file":"drive-root-file",)"
            R"("backing":null,"read-only":false})",
            "-blockdev",
            "driver=file,node-name=drive0-file,filename=/images/data.raw,read-only=off",
            "-blockdev",
            R"({"driver":"raw","node-name":"drive0","file":"drive0-file","read-only":false})",
            "-blockdev",
            "driver=file,node-name=drive1-file,filename=/images/seed,,v1.iso,read-only=on",
            "-blockdev",
            R"({"driver":"raw","node-name":"drive1","file":"drive1-file","read-only":true})",
            "-netdev", "tap,id=netdev0,ifname=tap-vm1,script=no,downscript=no",
            "-netdev", "tap,id=netdev1,ifname=tap-vm1b,script=no,downscript=no",
            "-device", "virtio-blk-pci,drive=drive-root,id=feos-root,bootindex=0",
            "-device", "virtio-blk-pci,drive=drive0,id=data,serial=data",
            "-device", "virtio-blk-pci,drive=drive1,id=seed,serial=seed",
            "-device", "virtio-net-pci,netdev=netdev0,id=nic0,mac=52:54:00:12:34:56",
            "-device", "virtio-net-pci,netdev=netdev1,id=nic1"}})));
}

// A qcow2 -> qcow2 -> raw chain whose top has an external data file, and a read-only disk whose
// qcow2 image has a data file: every file a node of its own, linked by node name, bottom first.
TEST(ArgvBuilder, ImageChainsAreExplicitBlockGraphs) {
  auto spec = kernel_spec();
  spec.image_path = "/images/vm.qcow2";
  spec.image_format = model::DiskFormat::kQcow2;
  spec.disks = {{"seed", "/images/seed.qcow2", true, model::DiskFormat::kQcow2}};
  BlockGraph graph;
  graph.root = {{"/images/store/vm.qcow2", model::DiskFormat::kQcow2, "/images/store/vm.data"},
                {"/images/base/os.qcow2", model::DiskFormat::kQcow2, ""},
                {"/images/base/os.raw", model::DiskFormat::kRaw, ""}};
  graph.disks = {{{"/images/seed.qcow2", model::DiskFormat::kQcow2, "/images/seed,1.data"}}};
  auto argv = build_argv(tcg_config(), spec, graph, {}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(
      *argv,
      ElementsAreArray(concat(
          {head("q35", "tcg", "max", "1,maxcpus=2", "256M"), kCommon,
           {"-kernel", "/guest/vmlinuz", "-initrd", "/guest/initramfs.cpio", "-append",
            "console=ttyS0 quiet",
            "-blockdev",
            "driver=file,node-name=drive-root-b2-file,filename=/images/base/os.raw,read-only=on",
            "-blockdev",
            R"({"driver":"raw","node-name":"drive-root-b2","file":"drive-root-b2-file",)"
            R"("read-only":true})",
            "-blockdev",
            "driver=file,node-name=drive-root-b1-file,filename=/images/base/os.qcow2,read-only=on",
            "-blockdev",
            R"({"driver":"qcow2","node-name":"drive-root-b1","file":"drive-root-b1-file",)"
            R"("backing":"drive-root-b2","read-only":true})",
            "-blockdev",
            "driver=file,node-name=drive-root-file,filename=/images/store/vm.qcow2,read-only=off",
            "-blockdev",
            "driver=file,node-name=drive-root-data,filename=/images/store/vm.data,read-only=off",
            "-blockdev",
            R"({"driver":"qcow2","node-name":"drive-root","file":"drive-root-file",)"
            R"("data-file":"drive-root-data","backing":"drive-root-b1","read-only":false})",
            "-blockdev",
            "driver=file,node-name=drive0-file,filename=/images/seed.qcow2,read-only=on",
            "-blockdev",
            "driver=file,node-name=drive0-data,filename=/images/seed,,1.data,read-only=on",
            "-blockdev",
            R"({"driver":"qcow2","node-name":"drive0","file":"drive0-file",)"
            R"("data-file":"drive0-data","backing":null,"read-only":true})",
            "-device", "virtio-blk-pci,drive=drive-root,id=feos-root",
            "-device", "virtio-blk-pci,drive=drive0,id=seed,serial=seed"}})));
  // qemu gets the graph's resolved paths only: the spec's own path is on no option.
  for (const auto& arg : *argv) EXPECT_THAT(arg, ::testing::Not(HasSubstr("/images/vm.qcow2")));
}

TEST(ArgvBuilder, EveryDiskNeedsItsCheckedImageChain) {
  auto spec = kernel_spec();
  spec.image_path = "/images/root.raw";
  spec.disks = {{"data", "/images/data.raw", false}};
  auto graph = single_images(spec);
  ASSERT_TRUE(build_argv(tcg_config(), spec, graph, {}, kFiles, "vm-1"));

  auto without_root = graph;
  without_root.root.clear();
  auto argv = build_argv(tcg_config(), spec, without_root, {}, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kInternal);
  EXPECT_EQ(argv.error().message,
            "vm vm-1: config.image_ref: the checked image chain does not match the spec");

  auto without_disk = graph;
  without_disk.disks.clear();
  argv = build_argv(tcg_config(), spec, without_disk, {}, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().message, "vm vm-1: config.disks: 0 checked image chains for 1 disks");

  auto empty_chain = graph;
  empty_chain.disks[0].clear();
  argv = build_argv(tcg_config(), spec, empty_chain, {}, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().message, "vm vm-1: config.disks[0].path: no checked image chain");
}

TEST(ArgvBuilder, RootDiskHasNoBootindexWithKernelBoot) {
  auto spec = kernel_spec();
  spec.image_path = "/images/root.raw";
  auto argv = build_argv(tcg_config(), spec, single_images(spec), {}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ::testing::Contains("virtio-blk-pci,drive=drive-root,id=feos-root"));
}

TEST(ArgvBuilder, Hugepages) {
  auto spec = kernel_spec();
  spec.memory = {2048, true};
  auto argv = build_argv(tcg_config(), spec, {}, {}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat(
                         {head("q35,memory-backend=ram0", "tcg", "max", "1,maxcpus=2", "2048M"),
                          {"-object",
                           "memory-backend-file,id=ram0,size=2048M,mem-path=/mnt/huge,"
                           "share=on,prealloc=on,prealloc-threads=1"},
                          kCommon,
                          {"-kernel", "/guest/vmlinuz", "-initrd", "/guest/initramfs.cpio",
                           "-append", "console=ttyS0 quiet"}})));
}

TEST(ArgvBuilder, HugepagesWithoutMountIsRejected) {
  auto config = tcg_config();
  config.hugepages_dir.clear();
  auto spec = kernel_spec();
  spec.memory.hugepages = true;
  auto argv = build_argv(config, spec, {}, {}, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kInvalidArgument);
  EXPECT_THAT(argv.error().message, HasSubstr("vm vm-1: config.memory.hugepages: "));
}

TEST(ArgvBuilder, CommasInIdsAndPathsAreEscaped) {
  auto spec = kernel_spec();
  auto files = runtime_files("/run/a,b");
  auto argv = build_argv(tcg_config(), spec, {}, {}, files, "odd,id");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_EQ((*argv)[2], "guest=odd,,id,debug-threads=on");
  EXPECT_EQ(name_argument("odd,id"), "guest=odd,,id,debug-threads=on");
  EXPECT_THAT(*argv, ::testing::Contains("socket,id=qmp0,path=/run/a,,b/qmp.sock,server=on,wait=off"));
  // Plain-string options are passed verbatim.
  EXPECT_THAT(*argv, ::testing::Contains("/run/a,b/qemu.pid"));
}

TEST(ArgvBuilder, NoRebootOrDaemonize) {
  auto argv = build_argv(tcg_config(), kernel_spec(), {}, {}, kFiles, "vm-1");
  ASSERT_TRUE(argv);
  for (const char* flag : {"-no-reboot", "-daemonize", "-no-shutdown"})
    EXPECT_THAT(*argv, ::testing::Not(::testing::Contains(flag)));
}

struct InvalidCase {
  const char* name;
  void (*mutate)(model::VmSpec&);
  const char* field;
};

class ArgvBuilderInvalid : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(ArgvBuilderInvalid, NamesTheField) {
  auto spec = kernel_spec();
  GetParam().mutate(spec);
  auto argv = build_argv(tcg_config(), spec, {}, {}, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kInvalidArgument);
  EXPECT_THAT(argv.error().message, HasSubstr("vm vm-1: "));
  EXPECT_THAT(argv.error().message, HasSubstr(GetParam().field)) << argv.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Validation, ArgvBuilderInvalid,
    ::testing::Values(
        InvalidCase{"ZeroVcpus", [](model::VmSpec& s) { s.cpus = {0, 1}; }, "vm vm-1: config.cpus.boot_vcpus: "},
        InvalidCase{"BootAboveMax", [](model::VmSpec& s) { s.cpus = {3, 2}; }, "vm vm-1: config.cpus.max_vcpus: "},
        InvalidCase{"ZeroMemory", [](model::VmSpec& s) { s.memory.size_mib = 0; },
                    "vm vm-1: config.memory.size_mib: "},
        InvalidCase{"DuplicateIds",
                    [](model::VmSpec& s) {
                      s.disks = {{"d", "/a.raw", false}};
                      s.nets = {{"d", "tap0", ""}};
                    },
                    "vm vm-1: config.net[0].device_id: duplicate device id 'd'"},
        InvalidCase{"BadMac", [](model::VmSpec& s) { s.nets = {{"n", "tap0", "zz:54:00:12:34:56"}}; },
                    "vm vm-1: config.net[0].mac_address: "},
        InvalidCase{"NoImageNoKernel",
                    [](model::VmSpec& s) {
                      s.boot = {};
                    },
                    "vm vm-1: config: nothing to boot"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ArgvBuilder, EmptyVmIdAndMissingIgnitionPath) {
  auto argv = build_argv(tcg_config(), kernel_spec(), {}, {}, kFiles, "");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kInvalidArgument);
  auto spec = kernel_spec();
  spec.ignition = "{}";
  auto files = kFiles;
  files.ignition_file.clear();
  argv = build_argv(tcg_config(), spec, {}, {}, files, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_THAT(argv.error().message, HasSubstr("vm vm-1: config.ignition: "));
}


// ---- GPUs -------------------------------------------------------------------------------------

const Argv kKernelArgs = {"-kernel", "/guest/vmlinuz", "-initrd", "/guest/initramfs.cpio",
                          "-append", "console=ttyS0 quiet"};

model::VmSpec gpu_spec(uint64_t memory_mib) {
  auto spec = kernel_spec();
  spec.memory.size_mib = memory_mib;
  return spec;
}

// "-device" arguments of a card's root port and functions. A port with no I/O BAR behind it
// reserves no I/O space.
Argv root_port(const std::string& id, int slot, bool io_bars = false) {
  return {"-device", "pcie-root-port,id=" + id + ",bus=pcie.0,chassis=1,slot=" + std::to_string(slot) +
                         (io_bars ? "" : ",io-reserve=0")};
}
Argv vfio(const std::string& host, const std::string& id, const std::string& bus,
          const std::string& addr, const std::string& extra = "") {
  return {"-device", "vfio-pci,host=" + host + ",id=" + id + ",bus=" + bus + ",addr=" + addr + extra};
}
Argv h100_devices(size_t index, const std::string& host, const std::string& extra = "") {
  std::string card = "feos-gpu" + std::to_string(index);
  return concat({root_port(card + "-rp", static_cast<int>(index) + 1),
                 vfio(host, card + "-f0", card + "-rp", "0x0.0", extra)});
}

TEST(ArgvBuilderGpu, OneH100) {
  // Card window: BAR1 128 GiB + BAR3 32 MiB packed largest first = 128 GiB + 32 MiB, rounded up
  // to a multiple of the largest BAR (128 GiB) = 256 GiB. Hole: 256 GiB + 128 GiB slack for the
  // first window's alignment = 384 GiB = 412316860416 > 32 GiB default -> -global.
  // 64 GiB RAM: 2 GiB below 4 GiB, 62 GiB above -> hole at 66 GiB, ends at 450 GiB < 1012 GiB
  // (no AMD relocation); 450 GiB < 2^39 -> the 40-bit floor.
  auto argv = build_argv(tcg_config(), gpu_spec(64 * 1024), {}, hgx_h100s(1), kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat(
                         {head("q35,memory-backend=ram0", "tcg", "max,phys-bits=40", "1,maxcpus=2", "65536M"), gpu_ram("65536M"),
                          {"-global", "q35-pcihost.pci-hole64-size=412316860416"}, kCommon,
                          kKernelArgs, h100_devices(0, "0000:18:00.0")})));
}

TEST(ArgvBuilderGpu, TwoH100s) {
  // Hole: 2 x 256 GiB + 128 GiB slack = 640 GiB = 687194767360.
  // 512 GiB RAM: 510 GiB above 4 GiB -> hole at 514 GiB would end at 1154 GiB, past the AMD
  // HyperTransport range at 1012 GiB, so qemu moves high RAM to 1 TiB: hole at 1024 + 510 =
  // 1534 GiB, ends at 2174 GiB > 2^41 (2048 GiB) -> 42 bits.
  auto argv = build_argv(tcg_config(), gpu_spec(512 * 1024), {}, hgx_h100s(2), kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat(
                         {head("q35,memory-backend=ram0", "tcg", "max,phys-bits=42", "1,maxcpus=2", "524288M"), gpu_ram("524288M"),
                          {"-global", "q35-pcihost.pci-hole64-size=687194767360"}, kCommon,
                          kKernelArgs, h100_devices(0, "0000:18:00.0"),
                          h100_devices(1, "0000:2a:00.0")})));
}

Argv eight_h100_devices(const std::string& extra = "") {
  const char* hosts[] = {"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
                         "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0"};
  Argv out;
  for (size_t i = 0; i < 8; ++i) out = concat({out, h100_devices(i, hosts[i], extra)});
  return out;
}

TEST(ArgvBuilderGpu, EightH100s) {
  // Hole: 8 x 256 GiB + 128 GiB slack = 2176 GiB = 2336462209024.
  // 1 TiB RAM: 1022 GiB above 4 GiB -> relocated to 1 TiB: hole at 1024 + 1022 = 2046 GiB, ends
  // at 4222 GiB > 2^42 (4096 GiB) -> 43 bits. 32-bit MMIO: 8 x 16 MiB (BAR0) = 128 MiB.
  auto argv = build_argv(tcg_config(), gpu_spec(1024 * 1024), {}, hgx_h100s(8), kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat(
                         {head("q35,memory-backend=ram0", "tcg", "max,phys-bits=43", "1,maxcpus=2", "1048576M"), gpu_ram("1048576M"),
                          {"-global", "q35-pcihost.pci-hole64-size=2336462209024"}, kCommon,
                          kKernelArgs, eight_h100_devices()})));
}

TEST(ArgvBuilderGpu, TheLaunchPlanIsTheArgvWithTheAddressSpaceItGives) {
  // EightH100s' numbers: hole of 2176 GiB at 2046 GiB, 43 bits, 8 x 16 MiB below 4 GiB.
  const auto spec = gpu_spec(1024 * 1024);
  auto launch = build_launch(tcg_config(), spec, {}, hgx_h100s(8), kFiles, "vm-1");
  ASSERT_TRUE(launch) << launch.error().to_string();
  EXPECT_EQ(launch->argv, *build_argv(tcg_config(), spec, {}, hgx_h100s(8), kFiles, "vm-1"));
  EXPECT_EQ(launch->address_space.ram_bytes, uint64_t{1} << 40);
  EXPECT_EQ(launch->address_space.mmio32_bytes, 128 * kMiB);
  EXPECT_EQ(launch->address_space.hole64_start, 2046 * kGiB);
  EXPECT_EQ(launch->address_space.hole64_size, 2336462209024u);
  EXPECT_EQ(launch->address_space.phys_bits, 43);
  EXPECT_THAT(launch->decisions,
              ElementsAre("accelerator: tcg", "firmware: BIOS (SeaBIOS, qemu's default)",
                          "memory: preallocating 1024 GiB (4 KiB pages, 1 thread; VFIO pins it for the GPUs)",
                          "guest physical address bits: 43 (-cpu max,phys-bits), to reach 4222 GiB",
                          "64-bit PCI hole: 2176 GiB at 2046 GiB; the 64-bit BAR windows need "
                          "2176 GiB, more than q35's default 32 GiB: pci-hole64-size set",
                          "below 4 GiB: 128 MiB of the 748 MiB q35 leaves for passed-through "
                          "devices"));
  // Under kvm the guest has the host's bits.
  ArgvConfig kvm = tcg_config();
  kvm.accel = Accel::kKvm;
  kvm.host_phys_bits = 46;
  auto on_kvm = build_launch(kvm, spec, {}, hgx_h100s(8), kFiles, "vm-1");
  ASSERT_TRUE(on_kvm) << on_kvm.error().to_string();
  EXPECT_EQ(on_kvm->address_space.phys_bits, 46);
  EXPECT_EQ(on_kvm->address_space.hole64_size, 2336462209024u);
}

TEST(ArgvBuilderGpu, WithoutGpusTheLaunchPlanHasQ35sDefaultHole) {
  auto launch = build_launch(tcg_config(), gpu_spec(512), {}, {}, kFiles, "vm-1");
  ASSERT_TRUE(launch) << launch.error().to_string();
  EXPECT_EQ(launch->address_space.ram_bytes, 512 * kMiB);
  EXPECT_EQ(launch->address_space.mmio32_bytes, 0u);
  EXPECT_EQ(launch->address_space.hole64_start, 4 * kGiB);
  EXPECT_EQ(launch->address_space.hole64_size, kQ35DefaultHole64Size);
  EXPECT_EQ(launch->address_space.phys_bits, 40);
  EXPECT_THAT(launch->decisions, ElementsAre("accelerator: tcg", "firmware: BIOS (SeaBIOS, qemu's default)"));
}

TEST(ArgvBuilderGpu, EightH100sKvmWithCliqueOnAWideHost) {
  auto config = tcg_config();
  config.accel = Accel::kKvm;
  config.host_phys_bits = 46;  // Sapphire Rapids: 64 TiB
  // One explicit clique of all eight (the client's choice: NVLink boards need none by default).
  auto spec = gpu_spec(1024 * 1024);
  spec.gpu_p2p.mode = model::GpuP2pMode::kExplicit;
  spec.gpu_p2p.cliques.emplace_back();
  for (const auto& gpu : hgx_h100s(8)) {
    spec.gpus.push_back(gpu.request);
    spec.gpu_p2p.cliques.back().push_back(gpu.request.address);
  }
  auto argv = build_argv(config, spec, {}, hgx_h100s(8), kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat(
                         {head("q35,memory-backend=ram0", "kvm", "host,host-phys-bits=on", "1,maxcpus=2", "1048576M"), gpu_ram("1048576M"),
                          {"-global", "q35-pcihost.pci-hole64-size=2336462209024"}, kCommon,
                          kKernelArgs, eight_h100_devices(",x-nv-gpudirect-clique=0")})));
}

TEST(ArgvBuilderGpu, LayoutBeyondTheHostsAddressBitsIsRefused) {
  auto config = tcg_config();
  config.accel = Accel::kKvm;
  config.host_phys_bits = 39;
  auto argv = build_argv(config, gpu_spec(1024 * 1024), {}, hgx_h100s(8), kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(argv.error().message,
            "vm vm-1: gpus: 8 GPU(s) with 64-bit windows of 0000:18:00.0 256 GiB, 0000:2a:00.0 256 GiB, "
            "0000:3a:00.0 256 GiB, 0000:5d:00.0 256 GiB, 0000:9a:00.0 256 GiB, 0000:ab:00.0 256 GiB, "
            "0000:ba:00.0 256 GiB, 0000:db:00.0 256 GiB do not fit on this host: the guest address "
            "space must reach 4222 GiB (64-bit PCI hole of 2176 GiB at 2046 GiB, after 1 TiB of RAM), "
            "which needs 43 physical address bits; the host CPU has 39 (kvm guests get the host's "
            "address bits)");
  // One H100 with 64 GiB RAM ends at 450 GiB: 39 bits reach 512 GiB, but the 40-bit floor
  // still exceeds a 39-bit host.
  argv = build_argv(config, gpu_spec(64 * 1024), {}, hgx_h100s(1), kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_THAT(argv.error().message, HasSubstr("needs 40 physical address bits; the host CPU has 39"));
  // Exactly enough, or unknown: accepted.
  config.host_phys_bits = 43;
  EXPECT_TRUE(build_argv(config, gpu_spec(1024 * 1024), {}, hgx_h100s(8), kFiles, "vm-1"));
  config.host_phys_bits = 0;
  EXPECT_TRUE(build_argv(config, gpu_spec(1024 * 1024), {}, hgx_h100s(8), kFiles, "vm-1"));
  // tcg emulates any width up to 52, whatever the host has.
  config.accel = Accel::kTcg;
  config.host_phys_bits = 39;
  EXPECT_TRUE(build_argv(config, gpu_spec(1024 * 1024), {}, hgx_h100s(8), kFiles, "vm-1"));
}

TEST(ArgvBuilderGpu, ConsumerCardIsOneMultifunctionSlot) {
  // 64-bit windows: 256 MiB + 32 MiB (VGA) + 256 KiB + 64 KiB (USB) -> 512 MiB, + 256 MiB slack
  // -> 1 GiB: within the 32 GiB default, no -global. 8 GiB RAM: hole at 10 GiB, ends at 42 GiB
  // -> 40 bits. The I/O BAR takes no MMIO.
  auto argv = build_argv(tcg_config(), gpu_spec(8 * 1024), {}, {rtx4090()}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat(
                         {head("q35,memory-backend=ram0", "tcg", "max,phys-bits=40", "1,maxcpus=2", "8192M"), gpu_ram("8192M"), kCommon,
                          kKernelArgs, root_port("feos-gpu0-rp", 1, /*io_bars=*/true),
                          vfio("0000:01:00.0", "feos-gpu0-f0", "feos-gpu0-rp", "0x0.0",
                               ",multifunction=on"),
                          vfio("0000:01:00.1", "feos-gpu0-f1", "feos-gpu0-rp", "0x0.1"),
                          vfio("0000:01:00.2", "feos-gpu0-f2", "feos-gpu0-rp", "0x0.2"),
                          vfio("0000:01:00.3", "feos-gpu0-f3", "feos-gpu0-rp", "0x0.3")})));
}

TEST(ArgvBuilderGpu, BootVgaAndRomBarOffOnTheConsumerCard) {
  auto config = tcg_config();
  config.accel = Accel::kKvm;
  auto gpu = rtx4090();
  gpu.request.boot_vga = true;
  gpu.request.rombar = model::RomBar::kOff;
  auto argv = build_argv(config, gpu_spec(8 * 1024), {}, {gpu}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  // x-vga only on the VGA function 0; rombar=0 on every function of the card.
  EXPECT_THAT(*argv, ElementsAreArray(concat(
                         {head("q35,memory-backend=ram0", "kvm", "host,host-phys-bits=on", "1,maxcpus=2", "8192M"), gpu_ram("8192M"),
                          kCommon, kKernelArgs, root_port("feos-gpu0-rp", 1, /*io_bars=*/true),
                          vfio("0000:01:00.0", "feos-gpu0-f0", "feos-gpu0-rp", "0x0.0",
                               ",multifunction=on,rombar=0,x-vga=on"),
                          vfio("0000:01:00.1", "feos-gpu0-f1", "feos-gpu0-rp", "0x0.1", ",rombar=0"),
                          vfio("0000:01:00.2", "feos-gpu0-f2", "feos-gpu0-rp", "0x0.2", ",rombar=0"),
                          vfio("0000:01:00.3", "feos-gpu0-f3", "feos-gpu0-rp", "0x0.3",
                               ",rombar=0")})));
  // RomBar::kOn keeps qemu's default (rombar=1), like kDefault.
  gpu.request.rombar = model::RomBar::kOn;
  argv = build_argv(config, gpu_spec(8 * 1024), {}, {gpu}, kFiles, "vm-1");
  ASSERT_TRUE(argv);
  for (const auto& arg : *argv) EXPECT_THAT(arg, ::testing::Not(HasSubstr("rombar")));
}

TEST(ArgvBuilderGpu, GroupPeerGetsItsOwnRootPort) {
  // Hole: card 256 GiB + NIC 32 MiB + 128 GiB slack = 384 GiB + 32 MiB, rounded up to 1 GiB =
  // 385 GiB = 413390602240.
  auto gpus = hgx_h100s(1);
  gpus[0].group_peers.push_back(connectx7("0000:19:00.1", 40));
  auto argv = build_argv(tcg_config(), gpu_spec(64 * 1024), {}, gpus, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat(
                         {head("q35,memory-backend=ram0", "tcg", "max,phys-bits=40", "1,maxcpus=2", "65536M"), gpu_ram("65536M"),
                          {"-global", "q35-pcihost.pci-hole64-size=413390602240"}, kCommon,
                          kKernelArgs, h100_devices(0, "0000:18:00.0"),
                          root_port("feos-gpu0-peer0-rp", 2),
                          vfio("0000:19:00.1", "feos-gpu0-peer0", "feos-gpu0-peer0-rp", "0x0.0")})));
}

// An HGX board's NVSwitches (carried by the VM's first GPU): each its own device behind its own
// root port, after the GPUs' own; the other GPUs are unchanged.
TEST(ArgvBuilderGpu, FabricFunctionsGetTheirOwnRootPorts) {
  auto gpus = hgx_h100s(2);
  gpus[0].fabric = {nvswitch("0000:05:00.0", 114), nvswitch("0000:06:00.0", 114)};
  auto argv = build_argv(tcg_config(), gpu_spec(64 * 1024), {}, gpus, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  const auto tail = concat({h100_devices(0, "0000:18:00.0"),
                            root_port("feos-gpu0-fabric0-rp", 2),
                            vfio("0000:05:00.0", "feos-gpu0-fabric0", "feos-gpu0-fabric0-rp", "0x0.0"),
                            root_port("feos-gpu0-fabric1-rp", 3),
                            vfio("0000:06:00.0", "feos-gpu0-fabric1", "feos-gpu0-fabric1-rp", "0x0.0"),
                            root_port("feos-gpu1-rp", 4),
                            vfio("0000:2a:00.0", "feos-gpu1-f0", "feos-gpu1-rp", "0x0.0")});
  ASSERT_GE(argv->size(), tail.size());
  EXPECT_THAT(std::vector<std::string>(argv->end() - static_cast<long>(tail.size()), argv->end()),
              ElementsAreArray(tail));
  // An NVSwitch passed twice (or also as a GPU's peer) is refused like any other function.
  gpus[1].fabric = {nvswitch("0000:06:00.0", 114)};
  auto twice = build_argv(tcg_config(), gpu_spec(64 * 1024), {}, gpus, kFiles, "vm-1");
  ASSERT_FALSE(twice);
  EXPECT_THAT(twice.error().message, HasSubstr("gpus[1].fabric[0]: 0000:06:00.0 is passed twice"));
}

TEST(ArgvBuilderGpu, GpusComeAfterDisksAndNets) {
  auto spec = gpu_spec(64 * 1024);
  spec.image_path = "/images/root.raw";
  spec.nets = {{"nic0", "tap0", ""}};
  auto argv = build_argv(tcg_config(), spec, single_images(spec), hgx_h100s(1), kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  auto at = [&](const std::string& prefix) {
    for (size_t i = 0; i < argv->size(); ++i)
      if ((*argv)[i].rfind(prefix, 0) == 0) return i;
    return argv->size();
  };
  EXPECT_LT(at("virtio-net-pci"), at("pcie-root-port"));
  EXPECT_LT(at("pcie-root-port"), at("vfio-pci"));
  EXPECT_LT(at("vfio-pci"), argv->size());
}

// The hot-plug ports (feosd --hotplug-ports) come last, after every device and the GPUs' ports, so
// the devices before them keep their guest addresses; chassis 2, no I/O space.
TEST(ArgvBuilderGpu, HotplugPortsComeLastOnTheirOwnChassis) {
  auto config = tcg_config();
  config.hotplug_ports = 2;
  auto spec = gpu_spec(64 * 1024);
  spec.nets = {{"nic0", "tap0", ""}};
  auto argv = build_argv(config, spec, single_images(spec), hgx_h100s(1), kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat(
                         {head("q35,memory-backend=ram0", "tcg", "max,phys-bits=40", "1,maxcpus=2", "65536M"),
                          gpu_ram("65536M"), {"-global", "q35-pcihost.pci-hole64-size=412316860416"}, kCommon,
                          kKernelArgs,
                          {"-netdev", "tap,id=netdev0,ifname=tap0,script=no,downscript=no", "-device",
                           "virtio-net-pci,netdev=netdev0,id=nic0"},
                          h100_devices(0, "0000:18:00.0"),
                          {"-device", "pcie-root-port,id=feos-hp0,bus=pcie.0,chassis=2,slot=1,io-reserve=0,mem-reserve=2M,pref64-reserve=0",
                           "-device", "pcie-root-port,id=feos-hp1,bus=pcie.0,chassis=2,slot=2,io-reserve=0,mem-reserve=2M,pref64-reserve=0"}})));
  auto plan = build_launch(config, spec, single_images(spec), hgx_h100s(1), kFiles, "vm-1");
  ASSERT_TRUE(plan);
  EXPECT_THAT(plan->decisions, ::testing::Contains("hot-plug: 2 pcie-root-ports for disks and NICs attached while "
                                                   "the VM runs"));
  // None without them (the goldens above).
  config.hotplug_ports = 0;
  argv = build_argv(config, spec, single_images(spec), hgx_h100s(1), kFiles, "vm-1");
  ASSERT_TRUE(argv);
  EXPECT_EQ(std::count_if(argv->begin(), argv->end(),
                          [](const std::string& a) { return a.starts_with("pcie-root-port,id=feos-hp"); }),
            0);
}

TEST(ArgvBuilderGpu, BelowFourGibWindowsThatCannotFitAreRefused) {
  // A card with a 1 GiB non-prefetchable BAR: its window must sit below 4 GiB.
  auto gpu = h100("0000:18:00.0", 40);
  gpu.functions[0].bars[0] = mem64(0, 1 * kGiB);
  auto argv = build_argv(tcg_config(), gpu_spec(4096), {}, {gpu}, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(argv.error().message,
            "vm vm-1: gpus: the devices need 1 GiB of MMIO below 4 GiB (non-prefetchable and "
            "32-bit BARs, per root port), more than the 748 MiB q35's 32-bit PCI hole leaves for "
            "passed-through devices");
}

TEST(ArgvBuilderGpu, LayoutBeyondFiftyTwoBitsIsRefused) {
  auto gpu = h100("0000:18:00.0", 40);
  gpu.functions[0].bars[1] = mem64_pref(1, uint64_t{1} << 52);
  auto argv = build_argv(tcg_config(), gpu_spec(4096), {}, {gpu}, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kFailedPrecondition);
  EXPECT_THAT(argv.error().message, HasSubstr("which needs 54 physical address bits; x86-64 has at most 52"));
}

struct BadGpuCase {
  const char* name;
  void (*mutate)(std::vector<model::AssignedGpu>&);
  const char* message;
};

class ArgvBuilderBadGpu : public ::testing::TestWithParam<BadGpuCase> {};

TEST_P(ArgvBuilderBadGpu, IsInvalidArgumentNamingTheGpu) {
  auto gpus = hgx_h100s(2);
  GetParam().mutate(gpus);
  auto argv = build_argv(tcg_config(), gpu_spec(4096), {}, gpus, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kInvalidArgument);
  EXPECT_THAT(argv.error().message, HasSubstr(GetParam().message)) << argv.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Validation, ArgvBuilderBadGpu,
    ::testing::Values(
        BadGpuCase{"NoFunctions", [](auto& g) { g[1].functions.clear(); },
                   "vm vm-1: config.gpus[1]: no host functions were assigned"},
        BadGpuCase{"FunctionZeroNotFirst",
                   [](auto& g) { g[0] = rtx4090(); std::swap(g[0].functions[0], g[0].functions[1]); },
                   "gpus[0]: the first function is 0000:01:00.1, not function 0"},
        BadGpuCase{"OtherSlot",
                   [](auto& g) {
                     g[0] = rtx4090();
                     g[0].functions[3].address = test::pci_address("0000:02:00.3");
                   },
                   "gpus[0]: 0000:02:00.3 is not in the slot of 0000:01:00.0"},
        BadGpuCase{"PassedTwice", [](auto& g) { g[1].functions[0].address = test::pci_address("18:00.0"); },
                   "gpus[1]: 0000:18:00.0 is passed twice"},
        BadGpuCase{"PeerIsAFunctionOfACard",
                   [](auto& g) { g[1].group_peers.push_back(connectx7("0000:18:00.0", 40)); },
                   "gpus[1].group_peers[0]: 0000:18:00.0 is passed twice"},
        BadGpuCase{"NoIommuGroup", [](auto& g) { g[0].functions[0].iommu_group.reset(); },
                   "gpus[0]: 0000:18:00.0 has no IOMMU group"},
        BadGpuCase{"BootVgaOnA3dController", [](auto& g) { g[0].request.boot_vga = true; },
                   "gpus[0]: boot_vga: 0000:18:00.0 is not a VGA controller (class 0x030200)"},
        BadGpuCase{"TwoBootVgas",
                   [](auto& g) {
                     g[0] = rtx4090();
                     g[1] = rtx4090();
                     for (auto& f : g[1].functions)
                       f.address = pci::Address(0, 0x02, f.address.device(), f.address.function());
                     g[0].request.boot_vga = g[1].request.boot_vga = true;
                   },
                   "gpus[1]: boot_vga: only one GPU can be the guest's VGA"},
        BadGpuCase{"BarNotAPowerOfTwo",
                   [](auto& g) { g[1].functions[0].bars[2].size = 48 * kMiB; },
                   "gpus[1]: function 0000:2a:00.0 BAR 3: size 50331648 is not a power of two"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ArgvBuilderGpu, GpuRequestsAloneChangeNothing) {
  // The builder reads only the resolved GPUs; spec.gpus are the requests.
  auto spec = kernel_spec();
  spec.gpus.push_back(model::GpuSpec{test::pci_address("0000:18:00.0")});
  EXPECT_EQ(*build_argv(tcg_config(), spec, {}, {}, kFiles, "vm-1"),
            *build_argv(tcg_config(), kernel_spec(), {}, {}, kFiles, "vm-1"));
}

// ---- UEFI --------------------------------------------------------------------------------------

UefiFirmware ovmf(bool secure_boot = false) {
  if (secure_boot)
    return {"/usr/share/qemu/firmware/40-edk2-x86_64-secure-enrolled.json", "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.ms.fd", 540672, true};
  return {"/usr/share/qemu/firmware/60-edk2-x86_64.json", "/usr/share/OVMF/OVMF_CODE_4M.fd",
          "/usr/share/OVMF/OVMF_VARS_4M.fd", 540672, false};
}

ArgvConfig uefi_config(bool secure_boot = false) {
  auto config = tcg_config();
  config.uefi = ovmf(secure_boot);
  return config;
}

model::VmSpec uefi_spec(uint64_t memory_mib, bool secure_boot = false) {
  auto spec = gpu_spec(memory_mib);
  spec.firmware = {model::FirmwareKind::kUefi, secure_boot};
  return spec;
}

const Argv kFlash = {
    "-blockdev", "driver=file,node-name=feos-fw-code-file,filename=/usr/share/OVMF/OVMF_CODE_4M.fd,read-only=on",
    "-blockdev", "driver=raw,node-name=feos-fw-code,file=feos-fw-code-file,read-only=on",
    "-blockdev", "driver=file,node-name=feos-fw-vars-file,filename=/run/feos/vms/vm-1/uefi-vars.fd,read-only=off",
    "-blockdev", "driver=raw,node-name=feos-fw-vars,file=feos-fw-vars-file,read-only=off"};

TEST(ArgvBuilderUefi, FirmwareAndTheVmsOwnVariableStoreAsPflash) {
  EXPECT_EQ(kFiles.uefi_vars, "/run/feos/vms/vm-1/uefi-vars.fd");
  auto argv = build_argv(uefi_config(), uefi_spec(256), {}, {}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat({head("q35,pflash0=feos-fw-code,pflash1=feos-fw-vars", "tcg", "max",
                                                   "1,maxcpus=2", "256M"),
                                              kCommon, kKernelArgs, kFlash})));
}

TEST(ArgvBuilderUefi, SecureBootLocksTheStoreToSmm) {
  auto argv = build_argv(uefi_config(true), uefi_spec(256, true), {}, {}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  Argv flash = kFlash;
  flash[1] = "driver=file,node-name=feos-fw-code-file,filename=/usr/share/OVMF/OVMF_CODE_4M.ms.fd,read-only=on";
  EXPECT_THAT(*argv, ElementsAreArray(concat(
                         {head("q35,pflash0=feos-fw-code,pflash1=feos-fw-vars,smm=on", "tcg", "max", "1,maxcpus=2",
                               "256M"),
                          {"-global", "driver=cfi.pflash01,property=secure,value=on"}, kCommon, kKernelArgs, flash})));
}

TEST(ArgvBuilderUefi, EightH100sGetAnOvmfApertureThatHoldsThem) {
  // Windows 2176 GiB -> aperture 4 TiB at 4 TiB (RAM ends at 2046 GiB) -> 43 bits, as for BIOS.
  // Without X-PciMmio64Mb OVMF would take 1/8 of 2^43 = 1 TiB and assign 3 of 8.
  auto argv = build_argv(uefi_config(), uefi_spec(1024 * 1024), {}, hgx_h100s(8), kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat(
                         {head("q35,memory-backend=ram0,pflash0=feos-fw-code,pflash1=feos-fw-vars", "tcg", "max,phys-bits=43",
                               "1,maxcpus=2", "1048576M"), gpu_ram("1048576M"),
                          {"-global", "q35-pcihost.pci-hole64-size=2336462209024"}, kCommon, kKernelArgs,
                          {"-fw_cfg", "name=opt/ovmf/X-PciMmio64Mb,string=4194304"}, kFlash,
                          eight_h100_devices()})));
}

TEST(ArgvBuilderUefi, TheLaunchPlanNamesTheFirmwareAndOvmfsAperture) {
  auto launch = build_launch(uefi_config(), uefi_spec(1024 * 1024), {}, hgx_h100s(8), kFiles, "vm-1");
  ASSERT_TRUE(launch) << launch.error().to_string();
  EXPECT_EQ(launch->address_space.phys_bits, 43);
  EXPECT_EQ(launch->address_space.uefi_aperture_base, 4 * kTiB);
  EXPECT_EQ(launch->address_space.uefi_aperture_size, 4 * kTiB);
  EXPECT_EQ(launch->firmware.spec.kind, model::FirmwareKind::kUefi);
  EXPECT_EQ(launch->firmware.code, "/usr/share/OVMF/OVMF_CODE_4M.fd");
  EXPECT_EQ(launch->firmware.vars_template, "/usr/share/OVMF/OVMF_VARS_4M.fd");
  EXPECT_EQ(launch->firmware.vars, "/run/feos/vms/vm-1/uefi-vars.fd");
  EXPECT_THAT(launch->decisions,
              ::testing::IsSupersetOf({"firmware: UEFI from /usr/share/qemu/firmware/60-edk2-x86_64.json",
                                       "UEFI: OVMF's 64-bit aperture 4 TiB at 4 TiB (more than its default "
                                       "32 GiB: X-PciMmio64Mb set)",
                                       "guest physical address bits: 43 (-cpu max,phys-bits), to reach 8 TiB"}));
}

TEST(ArgvBuilderUefi, OneH100WithLittleRamNeedsNoMoreBitsThanBios) {
  // Windows 384 GiB -> aperture 512 GiB at 512 GiB, ending at 1 TiB: the 40-bit floor.
  auto argv = build_argv(uefi_config(), uefi_spec(64 * 1024), {}, hgx_h100s(1), kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ::testing::IsSupersetOf({"max,phys-bits=40", "name=opt/ovmf/X-PciMmio64Mb,string=524288"}));
}

TEST(ArgvBuilderUefi, TheConsumerCardFitsOvmfsDefaultAperture) {
  auto argv = build_argv(uefi_config(), uefi_spec(8 * 1024), {}, {rtx4090()}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ::testing::Not(::testing::Contains(HasSubstr("X-PciMmio64Mb"))));
}

TEST(ArgvBuilderUefi, AnApertureBeyondTheHostsAddressBitsIsRefusedNamingTheGpus) {
  auto config = uefi_config();
  config.accel = Accel::kKvm;
  config.host_phys_bits = 40;
  auto argv = build_argv(config, uefi_spec(64 * 1024), {}, hgx_h100s(2), kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kFailedPrecondition);
  // Windows 2 x 256 GiB + 128 GiB = 640 GiB -> aperture 1 TiB at 1 TiB (RAM ends at 66 GiB) -> 41 bits.
  EXPECT_EQ(argv.error().message,
            "vm vm-1: gpus: 2 GPU(s) with 64-bit windows of 0000:18:00.0 256 GiB, 0000:2a:00.0 256 GiB "
            "do not fit on this host: with UEFI firmware the 64-bit windows need an aperture of 1 TiB "
            "at 1 TiB, which needs 41 physical address bits; the host CPU has 40 (kvm guests get the "
            "host's address bits)");
  // The same GPUs boot through SeaBIOS on this host: QEMU's hole ends at 706 GiB (40 bits).
  auto bios = uefi_spec(64 * 1024);
  bios.firmware = {};
  config.uefi.reset();
  EXPECT_TRUE(build_argv(config, bios, {}, hgx_h100s(2), kFiles, "vm-1"));
}

TEST(ArgvBuilderUefi, AUefiSpecWithoutResolvedFirmwareIsAnInternalError) {
  auto argv = build_argv(tcg_config(), uefi_spec(256), {}, {}, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kInternal);
  argv = build_argv(uefi_config(false), uefi_spec(256, true), {}, {}, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kInternal);
  EXPECT_THAT(argv.error().message, HasSubstr("is not a Secure Boot build"));
}

TEST(ArgvBuilder, BuildCost) {
  // Guards against an accidental slow path (the builder runs on every start).
  auto config = tcg_config();
  model::VmSpec spec;
  spec.image_path = "/images/root.qcow2";
  for (int i = 0; i < 8; ++i) {
    spec.disks.push_back({"disk" + std::to_string(i), "/images/d" + std::to_string(i), false});
    spec.nets.push_back({"nic" + std::to_string(i), "tap" + std::to_string(i), ""});
  }
  const auto graph = single_images(spec);
  auto first = build_argv(config, spec, graph, {}, kFiles, "vm-1");
  ASSERT_TRUE(first) << first.error().to_string();
  // 13 head + 19 common + 2 per blockdev (2 per disk: 18), netdev (8) and device (17).
  ASSERT_EQ(first->size(), 13u + 19u + 2u * (18u + 8u + 17u));
  constexpr int kRuns = 2000;
  auto start = std::chrono::steady_clock::now();
  size_t total = 0;
  for (int i = 0; i < kRuns; ++i)
    total += build_argv(config, spec, graph, {}, kFiles, "vm-1")->size();
  auto per_build = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start) / kRuns;
  EXPECT_EQ(total, size_t{kRuns} * first->size());
  RecordProperty("build_argv_us", std::to_string(per_build.count()));
  std::printf("build_argv with 1+8 disks and 8 nets: %.1f us per call\n", per_build.count());
  EXPECT_LT(per_build.count(), 5000.0);
}

}  // namespace
}  // namespace feos::vmm::qemu
