// QemuHypervisor's checks that need no qemu: config, validate(), adopt() refusals, unknown VMs.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gpu_fixtures.h"
#include "temp_dir.h"
#include "vmm/qemu/qemu_hypervisor.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

class FakeFilesystem final : public sys::Filesystem {
 public:
  std::map<std::string, std::string> files;
  Result<std::string> read_file(const std::string& path) const override {
    auto it = files.find(path);
    if (it == files.end()) return fail(Code::kNotFound, path + ": No such file or directory");
    return it->second;
  }
  Status write_file(const std::string& path, std::string_view data) override {
    files[path] = std::string(data);
    return ok();
  }
  Result<std::vector<std::string>> list_dir(const std::string& path) const override {
    return fail(Code::kNotFound, path);
  }
  Result<std::string> read_link(const std::string& path) const override {
    return fail(Code::kNotFound, path);
  }
  bool exists(const std::string& path) const override { return files.count(path) != 0; }
};

class FakeLauncher final : public sys::ProcessLauncher {
 public:
  std::map<int, bool> alive;
  int launches = 0;
  sys::LaunchSpec last;
  Result<int> launch(const sys::LaunchSpec& spec) override {
    ++launches;
    last = spec;
    return fail(Code::kInternal, "fake launcher does not launch");
  }
  bool is_alive(int pid) const override {
    auto it = alive.find(pid);
    return it != alive.end() && it->second;
  }
  Status send_signal(int pid, int) override {
    if (!is_alive(pid)) return fail(Code::kNotFound, "gone");
    return ok();
  }
  Status watch_exit(int pid, std::function<void(const sys::ExitStatus&)>) override {
    if (!is_alive(pid)) return fail(Code::kNotFound, "gone");
    return ok();
  }
};

class QemuHypervisorUnit : public ::testing::Test {
 protected:
  std::unique_ptr<QemuHypervisor> make(QemuConfig config = {}) {
    config.accel = "tcg";
    auto hv = QemuHypervisor::create(launcher_, fs_, paths_, config);
    EXPECT_TRUE(hv) << hv.error().to_string();
    return hv ? std::move(*hv) : nullptr;
  }
  model::VmSpec kernel_spec() {
    model::VmSpec spec;
    spec.boot.kernel = "/guest/vmlinuz";
    spec.boot.initramfs = "/guest/initramfs.cpio";
    fs_.files[spec.boot.kernel] = "k";
    fs_.files[spec.boot.initramfs] = "i";
    return spec;
  }
  FakeFilesystem fs_;
  FakeLauncher launcher_;
  sys::HostPaths paths_{"/fake/sys", "/fake/dev", "/fake/proc"};
};

TEST_F(QemuHypervisorUnit, RejectsBadConfig) {
  QemuConfig config;
  config.accel = "xen";
  auto hv = QemuHypervisor::create(launcher_, fs_, paths_, config);
  ASSERT_FALSE(hv);
  EXPECT_EQ(hv.error().code, Code::kInvalidArgument);
  EXPECT_THAT(hv.error().message, HasSubstr("xen"));
  config = {};
  config.binary.clear();
  EXPECT_FALSE(QemuHypervisor::create(launcher_, fs_, paths_, config));
  config = {};
  config.stop_grace = std::chrono::milliseconds(0);
  EXPECT_FALSE(QemuHypervisor::create(launcher_, fs_, paths_, config));
}

TEST_F(QemuHypervisorUnit, AutoAccelFollowsKvmDevice) {
  TempDir dev;
  sys::HostPaths paths = paths_;
  paths.dev_root = dev.path();
  auto no_kvm = QemuHypervisor::create(launcher_, fs_, paths, {});
  ASSERT_TRUE(no_kvm);
  EXPECT_EQ((*no_kvm)->accel(), Accel::kTcg);
  std::ofstream(dev / "kvm") << "";  // openable read-write: stands in for /dev/kvm
  auto kvm = QemuHypervisor::create(launcher_, fs_, paths, {});
  ASSERT_TRUE(kvm);
  EXPECT_EQ((*kvm)->accel(), Accel::kKvm);
  QemuConfig forced;
  forced.accel = "tcg";
  EXPECT_EQ((*QemuHypervisor::create(launcher_, fs_, paths, forced))->accel(), Accel::kTcg);
}

TEST_F(QemuHypervisorUnit, ValidateChecksFilesExist) {
  auto hv = make();
  auto spec = kernel_spec();
  EXPECT_TRUE(hv->validate(spec));
  spec.disks = {{"data", "/images/missing.raw", false}};
  auto missing = hv->validate(spec);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_EQ(missing.error().message, "disks[0].path: /images/missing.raw not found");
  spec.disks.clear();
  spec.boot.kernel = "/guest/other";
  missing = hv->validate(spec);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "boot.kernel: /guest/other not found");
}

TEST_F(QemuHypervisorUnit, ValidateChecksHugepagesMount) {
  auto hv = make();
  auto spec = kernel_spec();
  spec.memory.hugepages = true;
  auto missing = hv->validate(spec);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("/fake/dev/hugepages"));
  fs_.files["/fake/dev/hugepages"] = "";
  EXPECT_TRUE(hv->validate(spec));
}

TEST_F(QemuHypervisorUnit, ValidateReportsSpecErrorsFirst) {
  auto hv = make();
  model::VmSpec spec;  // neither image nor kernel
  auto invalid = hv->validate(spec);
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().code, Code::kInvalidArgument);
}

TEST_F(QemuHypervisorUnit, StartFailsValidationWithoutLaunching) {
  auto hv = make();
  auto spec = kernel_spec();
  spec.boot.kernel = "/nonexistent/vmlinuz";
  auto started = hv->start("vm-1", spec, {}, "/run/vm-1");
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, Code::kNotFound);
  EXPECT_EQ(started.error().message, "vm vm-1: boot.kernel: /nonexistent/vmlinuz not found");
  EXPECT_EQ(launcher_.launches, 0);
}

TEST_F(QemuHypervisorUnit, StartRejectsRuntimeDirTooLongForSockets) {
  auto hv = make();
  auto started = hv->start("vm-1", kernel_spec(), {}, "/run/" + std::string(100, 'd'));
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, Code::kInvalidArgument);
  EXPECT_THAT(started.error().message, HasSubstr("too long for unix socket paths"));
  EXPECT_EQ(launcher_.launches, 0);
}

TEST_F(QemuHypervisorUnit, StartRefusesGpuRequestsThatWereNotPrepared) {
  auto hv = make();
  auto spec = kernel_spec();
  spec.gpus.push_back(model::GpuSpec{"0000:17:00.0"});
  auto started = hv->start("vm-1", spec, {}, "/run/vm-1");
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(started.error().message, "vm vm-1: gpus: the spec asks for 1 GPUs but 0 were prepared");
  EXPECT_EQ(launcher_.launches, 0);
}

// A spec asking for `gpus` (their requests) with `memory_mib` of RAM.
model::VmSpec with_gpus(model::VmSpec spec, const std::vector<model::AssignedGpu>& gpus,
                        uint64_t memory_mib) {
  for (const auto& gpu : gpus) spec.gpus.push_back(gpu.request);
  spec.memory.size_mib = memory_mib;
  return spec;
}

TEST_F(QemuHypervisorUnit, StartWithGpusNeedsTheirVfioGroups) {
  auto hv = make();
  auto gpus = testing::hgx_h100s(2);
  gpus[1].group_peers.push_back(testing::connectx7("0000:2b:00.0", "41"));
  auto spec = with_gpus(kernel_spec(), gpus, 4096);
  TempDir run;
  fs_.files["/fake/dev/vfio/40"] = "";
  auto started = hv->start("vm-1", spec, gpus, run.path());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, Code::kNotFound);
  EXPECT_EQ(started.error().message,
            "vm vm-1: gpus[1]: IOMMU group 41 of 0000:2a:00.0: /fake/dev/vfio/41 not found: the "
            "host side did not bind it to vfio-pci");
  EXPECT_EQ(launcher_.launches, 0);
}

TEST_F(QemuHypervisorUnit, StartWithGpusRaisesTheMemlockLimit) {
  auto hv = make();
  TempDir run;
  // Without GPUs nothing is pinned: the limit is inherited.
  EXPECT_FALSE(hv->start("vm-0", kernel_spec(), {}, run.path()));
  ASSERT_EQ(launcher_.launches, 1);
  EXPECT_EQ(launcher_.last.memlock_bytes, 0u);

  auto gpus = testing::hgx_h100s(1);
  auto spec = with_gpus(kernel_spec(), gpus, 64 * 1024);
  fs_.files["/fake/dev/vfio/40"] = "";
  auto started = hv->start("vm-1", spec, gpus, run.path());
  ASSERT_FALSE(started);  // the fake launcher launches nothing
  ASSERT_EQ(launcher_.launches, 2);
  // 64 GiB of guest RAM + 1 GiB.
  EXPECT_EQ(launcher_.last.memlock_bytes, uint64_t{65} << 30);
  EXPECT_THAT(launcher_.last.argv,
              ::testing::Contains("vfio-pci,host=0000:18:00.0,id=feos-gpu0-f0,bus=feos-gpu0-rp,addr=0x0.0"));
  EXPECT_THAT(launcher_.last.argv, ::testing::Contains("max,phys-bits=40"));
}

TEST_F(QemuHypervisorUnit, KvmRefusesALayoutBeyondTheHostsAddressBits) {
  QemuConfig config;
  config.accel = "kvm";
  config.gpudirect_clique = 3;
  auto hv = QemuHypervisor::create(launcher_, fs_, paths_, config);
  ASSERT_TRUE(hv) << hv.error().to_string();
  fs_.files["/fake/proc/cpuinfo"] =
      "processor\t: 0\nvendor_id\t: GenuineIntel\naddress sizes\t: 39 bits physical, 48 bits "
      "virtual\npower management:\n\nprocessor\t: 1\naddress sizes\t: 39 bits physical, 48 bits "
      "virtual\n";
  auto gpus = testing::hgx_h100s(8);
  for (const auto& gpu : gpus) fs_.files["/fake/dev/vfio/" + gpu.functions[0].iommu_group] = "";
  auto spec = with_gpus(kernel_spec(), gpus, 1024 * 1024);
  TempDir run;
  auto started = (*hv)->start("vm-1", spec, gpus, run.path());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, Code::kFailedPrecondition);
  EXPECT_THAT(started.error().message,
              HasSubstr("which needs 43 physical address bits; the host CPU has 39"));
  EXPECT_EQ(launcher_.launches, 0);
  // A 46-bit host fits: the launch is attempted, with the clique on every GPU.
  fs_.files["/fake/proc/cpuinfo"] = "address sizes\t: 46 bits physical, 57 bits virtual\n";
  EXPECT_FALSE((*hv)->start("vm-1", spec, gpus, run.path()));
  ASSERT_EQ(launcher_.launches, 1);
  EXPECT_THAT(launcher_.last.argv, ::testing::Contains("host,host-phys-bits=on"));
  EXPECT_THAT(launcher_.last.argv,
              ::testing::Contains(
                  "vfio-pci,host=0000:db:00.0,id=feos-gpu7-f0,bus=feos-gpu7-rp,addr=0x0.0,"
                  "x-nv-gpudirect-clique=3"));
  // No cpuinfo: unknown width, qemu decides.
  fs_.files.erase("/fake/proc/cpuinfo");
  EXPECT_FALSE((*hv)->start("vm-1", spec, gpus, run.path()));
  EXPECT_EQ(launcher_.launches, 2);
}

TEST(HostPhysBits, ParsesCpuinfo) {
  EXPECT_EQ(host_phys_bits_from_cpuinfo("address sizes\t: 46 bits physical, 57 bits virtual\n"), 46);
  EXPECT_EQ(host_phys_bits_from_cpuinfo("flags\t: fpu\naddress sizes : 52 bits physical, 57 bits virtual"), 52);
  EXPECT_EQ(host_phys_bits_from_cpuinfo(""), 0);
  EXPECT_EQ(host_phys_bits_from_cpuinfo("address sizes\t: lots\n"), 0);
  EXPECT_EQ(host_phys_bits_from_cpuinfo("address sizes\t: 46 bits virtual\n"), 0);
  EXPECT_EQ(host_phys_bits_from_cpuinfo("address sizes\t: 4600 bits physical\n"), 0);
}

TEST_F(QemuHypervisorUnit, RejectsACliqueOutOfRange) {
  QemuConfig config;
  config.gpudirect_clique = 16;
  auto hv = QemuHypervisor::create(launcher_, fs_, paths_, config);
  ASSERT_FALSE(hv);
  EXPECT_EQ(hv.error().code, Code::kInvalidArgument);
  EXPECT_EQ(hv.error().message, "gpudirect clique 16 is outside 0..15");
}

TEST_F(QemuHypervisorUnit, AdoptRefusesDeadProcess) {
  auto hv = make();
  auto adopted = hv->adopt("vm-1", 4242, "/run/vm-1");
  ASSERT_FALSE(adopted);
  EXPECT_EQ(adopted.error().code, Code::kNotFound);
  EXPECT_EQ(adopted.error().message, "vm vm-1: process 4242 is not running");
}

TEST_F(QemuHypervisorUnit, AdoptRefusesAnotherVmsProcess) {
  auto hv = make();
  launcher_.alive[4242] = true;
  using namespace std::string_literals;
  fs_.files["/fake/proc/4242/cmdline"] =
      "qemu-system-x86_64\0-name\0guest=vm-10,debug-threads=on\0-machine\0q35\0"s;
  auto adopted = hv->adopt("vm-1", 4242, "/run/vm-1");
  ASSERT_FALSE(adopted);
  EXPECT_EQ(adopted.error().code, Code::kNotFound);
  EXPECT_THAT(adopted.error().message, HasSubstr("is not this VM's qemu"));
  // A process that is not qemu at all.
  fs_.files["/fake/proc/4242/cmdline"] = "/usr/sbin/sshd\0-D\0"s;
  adopted = hv->adopt("vm-1", 4242, "/run/vm-1");
  ASSERT_FALSE(adopted);
  EXPECT_EQ(adopted.error().code, Code::kNotFound);
}

TEST_F(QemuHypervisorUnit, AdoptOfOurProcessWithoutQmpIsUnavailable) {
  TempDir run;  // no qmp.sock in it
  QemuConfig config;
  config.command_timeout = std::chrono::milliseconds(200);
  auto hv = make(config);
  launcher_.alive[4242] = true;
  using namespace std::string_literals;
  fs_.files["/fake/proc/4242/cmdline"] =
      "qemu-system-x86_64\0-name\0guest=vm-1,debug-threads=on\0"s;
  auto adopted = hv->adopt("vm-1", 4242, run.path());
  ASSERT_FALSE(adopted);
  EXPECT_EQ(adopted.error().code, Code::kDeadlineExceeded);
  EXPECT_THAT(adopted.error().message, HasSubstr("vm vm-1: process 4242"));
  // Nothing stays attached.
  EXPECT_EQ(hv->pause("vm-1").error().code, Code::kNotFound);
}

TEST_F(QemuHypervisorUnit, UnknownVm) {
  auto hv = make();
  EXPECT_EQ(hv->pause("nope").error().code, Code::kNotFound);
  EXPECT_EQ(hv->resume("nope").error().code, Code::kNotFound);
  EXPECT_EQ(hv->request_shutdown("nope").error().code, Code::kNotFound);
  EXPECT_EQ(hv->ping("nope").error().code, Code::kNotFound);
  EXPECT_EQ(hv->console("nope").error().code, Code::kNotFound);
  EXPECT_EQ(hv->pause("nope").error().message, "vm nope has no qemu process");
  EXPECT_TRUE(hv->stop("nope"));  // already gone is fine
}

}  // namespace
}  // namespace feos::vmm::qemu
