// QemuHypervisor's checks that need no qemu: config, validate(), adopt() refusals, unknown VMs.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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
  Result<int> launch(const sys::LaunchSpec&) override {
    ++launches;
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
