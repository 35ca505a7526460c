#include "vmm/qemu/argv_builder.h"

#include <chrono>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace feos::vmm::qemu {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using Argv = std::vector<std::string>;

const RuntimeFiles kFiles = runtime_files("/run/feos/vms/vm-1");

ArgvConfig tcg_config() {
  ArgvConfig config;
  config.binary = "/usr/bin/qemu-system-x86_64";
  config.accel = Accel::kTcg;
  config.hugepages_dir = "/mnt/huge";
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

const Argv kCommon = {
    "-nodefaults", "-no-user-config", "-display", "none", "-msg", "timestamp=on", "-S",
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
  auto argv = build_argv(tcg_config(), kernel_spec(), {}, kFiles, "vm-1");
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
  auto argv = build_argv(config, spec, {}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat({head("q35", "kvm", "host", "4,maxcpus=4", "4096M"),
                                              kCommon, {"-kernel", "/guest/vmlinuz"}})));
}

TEST(ArgvBuilder, DisksNetsAndIgnition) {
  auto config = tcg_config();
  config.disk_formats["/images/root.qcow2"] = DiskFormat::kQcow2;
  config.disk_formats["/images/data.raw"] = DiskFormat::kRaw;
  model::VmSpec spec;
  spec.cpus = {2, 4};
  spec.memory.size_mib = 1024;
  spec.image_path = "/images/root.qcow2";
  spec.disks = {{"data", "/images/data.raw", false},
                {"seed", "/images/seed,v1.iso", true}};  // no format entry: raw
  spec.nets = {{"nic0", "tap-vm1", "52:54:00:12:34:56"}, {"nic1", "tap-vm1b", ""}};
  spec.ignition = R"({"ignition":{"version":"3.4.0"}})";
  auto argv = build_argv(config, spec, {}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(
      *argv,
      ElementsAreArray(concat(
          {head("q35", "tcg", "max", "2,maxcpus=4", "1024M"), kCommon,
           {"-fw_cfg", "name=opt/com.coreos/config,file=/run/feos/vms/vm-1/ignition.json",
            "-blockdev",
            "driver=qcow2,node-name=drive-root,read-only=off,file.driver=file,"
            "file.filename=/images/root.qcow2",
            "-blockdev",
            "driver=raw,node-name=drive0,read-only=off,file.driver=file,"
            "file.filename=/images/data.raw",
            "-blockdev",
            "driver=raw,node-name=drive1,read-only=on,file.driver=file,"
            "file.filename=/images/seed,,v1.iso",
            "-netdev", "tap,id=netdev0,ifname=tap-vm1,script=no,downscript=no",
            "-netdev", "tap,id=netdev1,ifname=tap-vm1b,script=no,downscript=no",
            "-device", "virtio-blk-pci,drive=drive-root,id=feos-root,bootindex=0",
            "-device", "virtio-blk-pci,drive=drive0,id=data,serial=data",
            "-device", "virtio-blk-pci,drive=drive1,id=seed,serial=seed",
            "-device", "virtio-net-pci,netdev=netdev0,id=nic0,mac=52:54:00:12:34:56",
            "-device", "virtio-net-pci,netdev=netdev1,id=nic1"}})));
}

TEST(ArgvBuilder, RootDiskHasNoBootindexWithKernelBoot) {
  auto spec = kernel_spec();
  spec.image_path = "/images/root.raw";
  auto argv = build_argv(tcg_config(), spec, {}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ::testing::Contains("virtio-blk-pci,drive=drive-root,id=feos-root"));
}

TEST(ArgvBuilder, Hugepages) {
  auto spec = kernel_spec();
  spec.memory = {2048, true};
  auto argv = build_argv(tcg_config(), spec, {}, kFiles, "vm-1");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_THAT(*argv, ElementsAreArray(concat(
                         {head("q35,memory-backend=ram0", "tcg", "max", "1,maxcpus=2", "2048M"),
                          {"-object",
                           "memory-backend-file,id=ram0,size=2048M,mem-path=/mnt/huge,"
                           "share=on,prealloc=on"},
                          kCommon,
                          {"-kernel", "/guest/vmlinuz", "-initrd", "/guest/initramfs.cpio",
                           "-append", "console=ttyS0 quiet"}})));
}

TEST(ArgvBuilder, HugepagesWithoutMountIsRejected) {
  auto config = tcg_config();
  config.hugepages_dir.clear();
  auto spec = kernel_spec();
  spec.memory.hugepages = true;
  auto argv = build_argv(config, spec, {}, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kInvalidArgument);
  EXPECT_THAT(argv.error().message, HasSubstr("memory.hugepages"));
}

TEST(ArgvBuilder, CommasInIdsAndPathsAreEscaped) {
  auto spec = kernel_spec();
  auto files = runtime_files("/run/a,b");
  auto argv = build_argv(tcg_config(), spec, {}, files, "odd,id");
  ASSERT_TRUE(argv) << argv.error().to_string();
  EXPECT_EQ((*argv)[2], "guest=odd,,id,debug-threads=on");
  EXPECT_EQ(name_argument("odd,id"), "guest=odd,,id,debug-threads=on");
  EXPECT_THAT(*argv, ::testing::Contains("socket,id=qmp0,path=/run/a,,b/qmp.sock,server=on,wait=off"));
  // Plain-string options are passed verbatim.
  EXPECT_THAT(*argv, ::testing::Contains("/run/a,b/qemu.pid"));
}

TEST(ArgvBuilder, NoRebootOrDaemonize) {
  auto argv = build_argv(tcg_config(), kernel_spec(), {}, kFiles, "vm-1");
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
  auto argv = build_argv(tcg_config(), spec, {}, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kInvalidArgument);
  EXPECT_THAT(argv.error().message, HasSubstr("vm vm-1: "));
  EXPECT_THAT(argv.error().message, HasSubstr(GetParam().field)) << argv.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Validation, ArgvBuilderInvalid,
    ::testing::Values(
        InvalidCase{"ZeroVcpus", [](model::VmSpec& s) { s.cpus = {0, 1}; }, "cpus.boot_vcpus"},
        InvalidCase{"BootAboveMax", [](model::VmSpec& s) { s.cpus = {3, 2}; }, "cpus.max_vcpus"},
        InvalidCase{"ZeroMemory", [](model::VmSpec& s) { s.memory.size_mib = 0; },
                    "memory.size_mib"},
        InvalidCase{"DuplicateIds",
                    [](model::VmSpec& s) {
                      s.disks = {{"d", "/a.raw", false}};
                      s.nets = {{"d", "tap0", ""}};
                    },
                    "net[0].device_id: duplicate device id \"d\""},
        InvalidCase{"BadMac", [](model::VmSpec& s) { s.nets = {{"n", "tap0", "zz:54:00:12:34:56"}}; },
                    "net[0].mac_address"},
        InvalidCase{"NoImageNoKernel",
                    [](model::VmSpec& s) {
                      s.boot = {};
                    },
                    "image_ref"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ArgvBuilder, GpusAreRefusedUntilPassthroughIsWired) {
  auto spec = kernel_spec();
  spec.gpus.push_back(model::GpuSpec{"0000:17:00.0"});
  // The requests alone change nothing: the builder reads only the resolved GPUs.
  ASSERT_TRUE(build_argv(tcg_config(), spec, {}, kFiles, "vm-1"));
  model::AssignedGpu gpu;
  gpu.request = spec.gpus[0];
  gpu.functions.push_back({"0000:17:00.0", "10de:2330", 0x030200, "41", "nvidia", {}});
  auto argv = build_argv(tcg_config(), spec, {gpu}, kFiles, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kUnimplemented);
  EXPECT_THAT(argv.error().message, HasSubstr("gpus"));
}

TEST(ArgvBuilder, EmptyVmIdAndMissingIgnitionPath) {
  auto argv = build_argv(tcg_config(), kernel_spec(), {}, kFiles, "");
  ASSERT_FALSE(argv);
  EXPECT_EQ(argv.error().code, Code::kInvalidArgument);
  auto spec = kernel_spec();
  spec.ignition = "{}";
  auto files = kFiles;
  files.ignition_file.clear();
  argv = build_argv(tcg_config(), spec, {}, files, "vm-1");
  ASSERT_FALSE(argv);
  EXPECT_THAT(argv.error().message, HasSubstr("ignition"));
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
  auto first = build_argv(config, spec, {}, kFiles, "vm-1");
  ASSERT_TRUE(first) << first.error().to_string();
  // 13 head + 17 common + 2 per blockdev (9), netdev (8) and device (17).
  ASSERT_EQ(first->size(), 13u + 17u + 2u * (9u + 8u + 17u));
  constexpr int kRuns = 2000;
  auto start = std::chrono::steady_clock::now();
  size_t total = 0;
  for (int i = 0; i < kRuns; ++i) total += build_argv(config, spec, {}, kFiles, "vm-1")->size();
  auto per_build = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start) / kRuns;
  EXPECT_EQ(total, size_t{kRuns} * first->size());
  RecordProperty("build_argv_us", std::to_string(per_build.count()));
  std::printf("build_argv with 1+8 disks and 8 nets: %.1f us per call\n", per_build.count());
  EXPECT_LT(per_build.count(), 5000.0);
}

}  // namespace
}  // namespace feos::vmm::qemu
