// QemuHypervisor's checks that need no qemu: config, validate(), adopt() refusals, unknown VMs,
// and what a run-as user is given and given back (fake launcher, permissions and QMP).
#include <filesystem>
#include <fstream>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_qemu_sockets.h"
#include "fake_sys.h"
#include "gpu_fixtures.h"
#include "qcow2_bytes.h"
#include "support/temp_dir.h"
#include "vmm/qemu/qemu_hypervisor.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::HasSubstr;
using testing::FakeFilesystem;
using testing::FakeLauncher;
using testing::FakePermissions;
using testing::FakeQemuSockets;
using ::feos::test::TempDir;

class QemuHypervisorUnit : public ::testing::Test {
 protected:
  std::unique_ptr<QemuHypervisor> make(QemuConfig config = {}) {
    config.accel = "tcg";
    auto hv = QemuHypervisor::create(launcher_, fs_, permissions_, paths_, config);
    EXPECT_TRUE(hv) << hv.error().to_string();
    return hv ? std::move(*hv) : nullptr;
  }
  model::VmSpec kernel_spec() {
    model::VmSpec spec;
    // Real files too: start() checks request files on the real filesystem (request_files.h).
    spec.boot.kernel = guest_ / "vmlinuz";
    spec.boot.initramfs = guest_ / "initramfs.cpio";
    for (const std::string* path : {&spec.boot.kernel, &spec.boot.initramfs}) {
      std::ofstream(*path) << "k";
      fs_.files[*path] = "k";
    }
    return spec;
  }
  TempDir guest_;
  FakeFilesystem fs_;
  FakeLauncher launcher_;
  FakePermissions permissions_;
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

TEST_F(QemuHypervisorUnit, AutoAccelFollowsUsableKvm) {
  TempDir dev, sysfs;
  sys::HostPaths paths = paths_;
  paths.dev_root = dev.path();
  paths.sysfs_root = sysfs.path();
  auto no_kvm = QemuHypervisor::create(launcher_, fs_, paths, {});
  ASSERT_TRUE(no_kvm);
  EXPECT_EQ((*no_kvm)->accel(), Accel::kTcg);
  std::ofstream(dev / "kvm") << "";  // openable read-write: stands in for /dev/kvm
  std::filesystem::create_directories(sysfs / "module/kvm_pvm");
  EXPECT_EQ((*QemuHypervisor::create(launcher_, fs_, paths, {}))->accel(), Accel::kTcg) << "PVM's KVM";
  std::filesystem::create_directories(sysfs / "module/kvm_amd");
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
  EXPECT_EQ(missing.error().message, "config.disks[0].path: '/images/missing.raw' not found");
  spec.disks.clear();
  spec.boot.kernel = "/guest/caf\xc3\xa9";  // bytes a terminal would interpret
  missing = hv->validate(spec);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "config.boot.kernel: '/guest/caf\\xc3\\xa9' not found");
}

// With image roots, validate() does not tell whether a file exists: admit() answers, with one
// answer for every path outside the roots (request_files.h).
TEST_F(QemuHypervisorUnit, WithImageRootsAdmitGivesOneAnswerOutsideThem) {
  TempDir images, elsewhere;
  std::ofstream(elsewhere / "secret") << "host secret";
  QemuConfig config;
  config.image_roots = {images.path()};
  auto hv = make(config);
  auto spec = kernel_spec();
  spec.boot.kernel = images / "vmlinuz";
  std::ofstream(spec.boot.kernel) << "k";
  spec.boot.initramfs.clear();
  for (const std::string& path : {elsewhere / "secret", elsewhere / "missing"}) {
    spec.disks = {{"data", path, false}};
    EXPECT_TRUE(hv->validate(spec));
    auto admitted = hv->admit(spec);
    ASSERT_FALSE(admitted);
    EXPECT_EQ(admitted.error().code, Code::kPermissionDenied) << admitted.error().message;
    EXPECT_EQ(admitted.error().message, "config.disks[0].path: " + quote_for_message(path) +
                                            " is not a file inside the image roots (" +
                                            images.path() + ")");
  }
  spec.disks = {{"data", images / "missing.raw", false}};
  EXPECT_EQ(hv->admit(spec).error().code, Code::kNotFound);
}

TEST_F(QemuHypervisorUnit, ValidateChecksHugepagesMount) {
  auto hv = make();
  auto spec = kernel_spec();
  spec.memory.hugepages = true;
  fs_.files["/fake/proc/meminfo"] = "MemTotal:       8192000 kB\nHugepagesize:       2048 kB\n";
  auto missing = hv->validate(spec);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kFailedPrecondition);
  EXPECT_THAT(missing.error().message, HasSubstr("no hugetlbfs mount with 2 MiB pages in /proc/mounts"));
  fs_.files["/fake/proc/mounts"] = "hugetlbfs /fake/dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n";
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
  EXPECT_EQ(started.error().message, "vm vm-1: config.boot.kernel: '/nonexistent/vmlinuz' not found");
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
  spec.gpus.push_back(model::GpuSpec{test::pci_address("0000:17:00.0")});
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
  gpus[1].group_peers.push_back(testing::connectx7("0000:2b:00.0", 41));
  auto spec = with_gpus(kernel_spec(), gpus, 4096);
  TempDir run;
  fs_.files["/fake/dev/vfio/40"] = "";
  auto started = hv->start("vm-1", spec, gpus, run.path());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, Code::kNotFound);
  EXPECT_EQ(started.error().message,
            "vm vm-1: config.gpus[1]: IOMMU group 41 of 0000:2a:00.0: /fake/dev/vfio/41 not found: "
            "the host side did not bind it to vfio-pci");
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
  // Every VM gets the daemon's hot-plug ports (QemuConfig::hotplug_ports, 4 by default).
  EXPECT_THAT(launcher_.last.argv,
              ::testing::Contains("pcie-root-port,id=feos-hp3,bus=pcie.0,chassis=2,slot=4,io-reserve=0,mem-reserve=2M,pref64-reserve=0"));
  EXPECT_THAT(launcher_.last.argv, ::testing::Not(::testing::Contains(::testing::HasSubstr("id=feos-hp4,"))));
}

TEST_F(QemuHypervisorUnit, KvmRefusesALayoutBeyondTheHostsAddressBits) {
  QemuConfig config;
  config.accel = "kvm";
  auto hv = QemuHypervisor::create(launcher_, fs_, paths_, config);
  ASSERT_TRUE(hv) << hv.error().to_string();
  fs_.files["/fake/proc/cpuinfo"] =
      "processor\t: 0\nvendor_id\t: GenuineIntel\naddress sizes\t: 39 bits physical, 48 bits "
      "virtual\npower management:\n\nprocessor\t: 1\naddress sizes\t: 39 bits physical, 48 bits "
      "virtual\n";
  auto gpus = testing::hgx_h100s(8);
  for (const auto& gpu : gpus) fs_.files["/fake/dev/vfio/" + gpu.functions[0].iommu_group->to_string()] = "";
  auto spec = with_gpus(kernel_spec(), gpus, 1024 * 1024);
  TempDir run;
  auto started = (*hv)->start("vm-1", spec, gpus, run.path());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, Code::kFailedPrecondition);
  EXPECT_THAT(started.error().message,
              HasSubstr("which needs 43 physical address bits; the host CPU has 39"));
  EXPECT_EQ(launcher_.launches, 0);
  // A 46-bit host fits: the launch is attempted.
  fs_.files["/fake/proc/cpuinfo"] = "address sizes\t: 46 bits physical, 57 bits virtual\n";
  EXPECT_FALSE((*hv)->start("vm-1", spec, gpus, run.path()));
  ASSERT_EQ(launcher_.launches, 1);
  EXPECT_THAT(launcher_.last.argv, ::testing::Contains("host,host-phys-bits=on"));
  EXPECT_THAT(launcher_.last.argv,
              ::testing::Contains(
                  "vfio-pci,host=0000:db:00.0,id=feos-gpu7-f0,bus=feos-gpu7-rp,addr=0x0.0"));
  // No cpuinfo: unknown width, qemu decides.
  fs_.files.erase("/fake/proc/cpuinfo");
  EXPECT_FALSE((*hv)->start("vm-1", spec, gpus, run.path()));
  EXPECT_EQ(launcher_.launches, 2);
}

// Guest NUMA per VM: the spec's choice wins over the daemon's --guest-numa; neither gives a layout
// on a single-node host.
TEST_F(QemuHypervisorUnit, AVmsGuestNumaChoiceOverridesTheDaemons) {
  auto gpus = testing::hgx_h100s(1);
  gpus[0].numa_node = 1;
  auto has_numa = [&](bool daemon, model::GuestNumaMode mode) {
    QemuConfig config;
    config.guest_numa = daemon;
    auto hv = QemuHypervisor::create(launcher_, fs_, paths_, config);
    EXPECT_TRUE(hv) << hv.error().to_string();
    auto spec = with_gpus(kernel_spec(), gpus, 4096);
    spec.guest_numa = mode;
    TempDir run;
    auto plan = (*hv)->plan_start("vm-1", spec, gpus, run.path());
    EXPECT_TRUE(plan) << plan.error().to_string();
    if (!plan) return false;
    for (const auto& arg : plan->argv)
      if (arg.rfind("pxb-pcie,", 0) == 0) return true;
    return false;
  };
  fs_.files["/fake/sys/devices/system/node/online"] = "0-1\n";
  EXPECT_TRUE(has_numa(true, model::GuestNumaMode::kDefault));
  EXPECT_FALSE(has_numa(false, model::GuestNumaMode::kDefault));
  EXPECT_TRUE(has_numa(false, model::GuestNumaMode::kAuto));
  EXPECT_FALSE(has_numa(true, model::GuestNumaMode::kOff));
  fs_.files["/fake/sys/devices/system/node/online"] = "0\n";
  EXPECT_FALSE(has_numa(true, model::GuestNumaMode::kAuto));
}

TEST_F(QemuHypervisorUnit, PlanStartIsWhatStartRunsAndTouchesNothing) {
  QemuConfig config;
  config.accel = "kvm";
  auto hv = QemuHypervisor::create(launcher_, fs_, paths_, config);
  ASSERT_TRUE(hv) << hv.error().to_string();
  fs_.files["/fake/proc/cpuinfo"] = "address sizes\t: 39 bits physical, 48 bits virtual\n";
  auto gpus = testing::hgx_h100s(8);
  auto spec = with_gpus(kernel_spec(), gpus, 1024 * 1024);
  TempDir run;
  const std::string runtime_dir = run / "vm-1";  // never created
  // Refused as start() refuses it, before anything.
  auto refused = (*hv)->plan_start("vm-1", spec, gpus, runtime_dir);
  ASSERT_FALSE(refused);
  auto refused_start = (*hv)->start("vm-1", spec, gpus, run.path());
  ASSERT_FALSE(refused_start);
  EXPECT_EQ(refused.error().code, refused_start.error().code);
  EXPECT_EQ(refused.error().message, refused_start.error().message);

  // On a wide host: the plan needs no VFIO nodes (the GPUs are not bound yet), writes nothing,
  // launches nothing, and is the argv start() launches.
  fs_.files["/fake/proc/cpuinfo"] = "address sizes\t: 46 bits physical, 57 bits virtual\n";
  auto plan = (*hv)->plan_start("vm-1", spec, gpus, run.path());
  ASSERT_TRUE(plan) << plan.error().to_string();
  EXPECT_FALSE(std::filesystem::exists(runtime_dir));
  EXPECT_TRUE(std::filesystem::is_empty(run.path()));
  EXPECT_EQ(launcher_.launches, 0);
  EXPECT_EQ(plan->address_space.phys_bits, 46);
  EXPECT_THAT(plan->decisions, ::testing::Contains("RLIMIT_MEMLOCK: 1025 GiB (guest RAM + 1 GiB: "
                                                   "VFIO pins all guest RAM for device DMA)"));
  for (const auto& gpu : gpus) fs_.files["/fake/dev/vfio/" + gpu.functions[0].iommu_group->to_string()] = "";
  EXPECT_FALSE((*hv)->start("vm-1", spec, gpus, run.path()));  // the fake qemu never answers
  ASSERT_EQ(launcher_.launches, 1);
  EXPECT_EQ(launcher_.last.argv, plan->argv);
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

// --- qemu as an unprivileged user (QemuConfig::run_as) ---

// An identity for the fakes: nothing real is changed, so it need not exist.
sys::RunAs qemu_user() { return {"qemu-user", 1234, 2345, {2345, 36}}; }

class QemuRunAs : public QemuHypervisorUnit {
 protected:
  std::unique_ptr<QemuHypervisor> make_as(sys::RunAs user = qemu_user()) {
    QemuConfig config;
    config.run_as = user;
    config.start_timeout = std::chrono::milliseconds(5000);
    config.command_timeout = std::chrono::milliseconds(2000);
    return make(config);
  }
  // Two H100s (groups 40, 41) and a ConnectX-7 in group 41 beside the second.
  std::vector<model::AssignedGpu> gpus() {
    auto gpus = testing::hgx_h100s(2);
    gpus[1].group_peers.push_back(testing::connectx7("0000:2b:00.0", 41));
    fs_.files["/fake/dev/vfio/40"] = "";
    fs_.files["/fake/dev/vfio/41"] = "";
    return gpus;
  }
  // Lets the fake launcher "start" qemu as pid 4242: its sockets appear in `dir`.
  void launch_fake_qemu(const std::string& dir) {
    launcher_.on_launch = [this, dir](const sys::LaunchSpec&) -> Result<int> {
      at_launch_ = permissions_.owners;
      sockets_ = std::make_unique<FakeQemuSockets>(dir);
      launcher_.alive[4242] = true;
      return 4242;
    };
  }
  // A running qemu as pid 4242, of user `uid`, with `cmdline` (arguments each ended by a NUL):
  // what adopt() reads after a daemon restart.
  void fake_running_qemu(const std::string& cmdline, int uid) {
    launcher_.alive[4242] = true;
    fs_.files["/fake/proc/4242/cmdline"] = cmdline;
    const std::string id = std::to_string(uid);
    fs_.files["/fake/proc/4242/status"] = "Name:\tqemu-system-x86\nUid:\t" + id + "\t" + id + "\t" + id + "\t" + id + "\n";
  }
  // Ends pid 4242 the way the launcher's watcher reports it.
  void exit_fake_qemu() {
    sockets_.reset();  // qemu's QMP connection ends before its exit is seen
    launcher_.alive[4242] = false;
    ASSERT_EQ(launcher_.watchers.count(4242), 1u);
    launcher_.watchers[4242](sys::ExitStatus{true, 0, 0});
  }
  std::map<std::string, sys::FileOwner> at_launch_;
  std::unique_ptr<FakeQemuSockets> sockets_;
};

TEST_F(QemuRunAs, RefusesRoot) {
  QemuConfig config;
  config.run_as = sys::RunAs{"root", 0, 0, {0}};
  auto hv = QemuHypervisor::create(launcher_, fs_, permissions_, paths_, config);
  ASSERT_FALSE(hv);
  EXPECT_EQ(hv.error().code, Code::kInvalidArgument);
  EXPECT_EQ(hv.error().message, "qemu user root (uid 0): uid and gid must not be 0 (root)");
  config.run_as = sys::RunAs{"wheel", 1000, 0, {0}};
  EXPECT_FALSE(QemuHypervisor::create(launcher_, fs_, permissions_, paths_, config));
}

TEST_F(QemuRunAs, WithoutAUserNothingChangesOwner) {
  auto hv = make();
  TempDir run;
  auto gpus = this->gpus();
  EXPECT_FALSE(hv->start("vm-1", with_gpus(kernel_spec(), gpus, 1024), gpus, run.path()));
  ASSERT_EQ(launcher_.launches, 1);
  EXPECT_FALSE(launcher_.last.run_as);
  EXPECT_TRUE(permissions_.changes.empty());
  EXPECT_TRUE(permissions_.checks.empty());
  // Sandboxed all the same.
  EXPECT_THAT(launcher_.last.argv, ::testing::Contains("-sandbox"));
}

TEST_F(QemuRunAs, TheVmsNodesAreTheUsersWhileQemuStartsAndGoBackWhenTheStartFails) {
  auto hv = make_as();
  TempDir run;
  auto gpus = this->gpus();
  auto spec = with_gpus(kernel_spec(), gpus, 1024);
  launcher_.on_launch = [this](const sys::LaunchSpec&) -> Result<int> {
    at_launch_ = permissions_.owners;
    return fail(Code::kInternal, "exec failed");
  };
  auto started = hv->start("vm-1", spec, gpus, run.path());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().message, "vm vm-1: launch qemu: exec failed");
  ASSERT_EQ(launcher_.launches, 1);
  ASSERT_TRUE(launcher_.last.run_as);
  EXPECT_EQ(launcher_.last.run_as->uid, 1234u);
  EXPECT_EQ(launcher_.last.run_as->groups, (std::vector<gid_t>{2345, 36}));

  // At launch: the runtime dir is a sticky directory of the user's group, each group node (41
  // once, though two functions are in it) the user's alone; the container node is untouched.
  EXPECT_EQ(at_launch_.size(), 3u);
  EXPECT_EQ(at_launch_[run.path()].gid, 2345u);
  EXPECT_EQ(at_launch_[run.path()].mode, 01770u);
  EXPECT_EQ(at_launch_["/fake/dev/vfio/40"].uid, 1234u);
  EXPECT_EQ(at_launch_.count("/fake/dev/vfio/vfio"), 0u);
  // The daemon's own files existed before the directory was opened to the user.
  EXPECT_TRUE(std::filesystem::exists(run / "qemu.log"));
  EXPECT_TRUE(std::filesystem::exists(run / "console.log"));
  // Everything went back, newest first.
  EXPECT_THAT(permissions_.history(),
              ::testing::ElementsAre(run.path() + " 0:2345/1770", "/fake/dev/vfio/40 1234:2345/0600",
                                     "/fake/dev/vfio/41 1234:2345/0600",
                                     "/fake/dev/vfio/41 0:0/0600", "/fake/dev/vfio/40 0:0/0600",
                                     run.path() + " 0:0/0755"));
}

TEST_F(QemuRunAs, ChecksWhatTheUserMustReachBeforeLaunching) {
  QemuConfig config;
  config.run_as = qemu_user();
  config.accel = "kvm";
  auto hv = QemuHypervisor::create(launcher_, fs_, permissions_, paths_, config);
  ASSERT_TRUE(hv) << hv.error().to_string();
  TempDir run, images;  // images are real files: start() reads their format
  auto spec = kernel_spec();
  spec.image_path = images / "root.raw";
  spec.disks = {{"data", images / "data.raw", false}, {"seed", images / "seed.iso", true}};
  spec.ignition = "{}";
  spec.memory.hugepages = true;
  for (const auto& path : {spec.image_path, spec.disks[0].path, spec.disks[1].path}) {
    std::ofstream(path) << "";
    fs_.files[path] = "";
  }
  // A qcow2 chain with external data files: every file of it is checked, the backing ones for
  // reading only.
  spec.disks.push_back({"chain", images / "vm.qcow2", false});
  fs_.files[images / "vm.qcow2"] = "";
  std::ofstream(images / "vm.qcow2")
      << testing::Qcow2Bytes{}.backing("base.qcow2", "qcow2").data_file(images / "vm.data").bytes();
  std::ofstream(images / "base.qcow2")
      << testing::Qcow2Bytes{}.backing("os.raw", "raw").data_file(images / "base.data").bytes();
  for (const char* file : {"vm.data", "base.data", "os.raw"}) std::ofstream(images / file) << "";
  fs_.files["/fake/proc/meminfo"] = "MemTotal:       8192000 kB\nHugepagesize:       2048 kB\n";
  fs_.files["/fake/proc/mounts"] = "hugetlbfs /fake/dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n";
  auto gpus = std::vector<model::AssignedGpu>{testing::rtx4090()};  // four functions, group 2
  spec = with_gpus(spec, gpus, 1024);
  fs_.files["/fake/dev/vfio/2"] = "";
  auto started = (*hv)->start("vm-1", spec, gpus, run.path());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().message, "vm vm-1: launch qemu: fake launcher does not launch");
  ASSERT_EQ(permissions_.checks.size(), 1u);
  EXPECT_EQ(permissions_.checked_users[0].name, "qemu-user");
  std::vector<std::string> asked;
  for (const auto& check : permissions_.checks[0])
    asked.push_back(check.what + " " + sys::access_verb(check.access) + " " + check.path);
  EXPECT_THAT(asked, ::testing::ElementsAre(
                         "vfio group read and write /fake/dev/vfio/2",
                         "config.boot.kernel read " + guest_ / "vmlinuz",
                         "config.boot.initramfs read " + guest_ / "initramfs.cpio",
                         "config.image_ref read and write " + images / "root.raw",
                         "config.disks[0].path read and write " + images / "data.raw",
                         "config.disks[1].path read " + images / "seed.iso",
                         "config.disks[2].path read and write " + images / "vm.qcow2",
                         "config.disks[2].path (data file) read and write " + images / "vm.data",
                         "config.disks[2].path (backing file 1) read " + images / "base.qcow2",
                         "config.disks[2].path (backing file 1) (data file) read " + images / "base.data",
                         "config.disks[2].path (backing file 2) read " + images / "os.raw",
                         "runtime dir create files in " + run.path(),
                         "config.ignition read " + run.path() + "/ignition.json",
                         "config.memory.hugepages create files in /fake/dev/hugepages",
                         "accel kvm read and write /fake/dev/kvm"));
  // Request files are never given away; the ignition the daemon wrote is readable by the group.
  EXPECT_EQ(permissions_.owner_of(images / "root.raw"), "-");
  EXPECT_THAT(permissions_.history(),
              ::testing::Contains(run.path() + "/ignition.json 0:2345/0640"));
  EXPECT_EQ(permissions_.owner_of(run.path() + "/ignition.json"), "0:0/0600");
}

TEST_F(QemuRunAs, AFileTheUserCannotReachStopsTheStartAndUndoesEverything) {
  auto hv = make_as();
  TempDir run;
  auto gpus = this->gpus();
  permissions_.access_error =
      Error{Code::kFailedPrecondition,
            "config.boot.kernel: user qemu-user (uid 1234) cannot read /guest/vmlinuz: Permission denied"};
  auto started = hv->start("vm-1", with_gpus(kernel_spec(), gpus, 1024), gpus, run.path());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(started.error().message,
            "vm vm-1: config.boot.kernel: user qemu-user (uid 1234) cannot read /guest/vmlinuz: "
            "Permission denied");
  EXPECT_EQ(launcher_.launches, 0);
  EXPECT_EQ(permissions_.owner_of("/fake/dev/vfio/40"), "0:0/0600");
  EXPECT_EQ(permissions_.owner_of("/fake/dev/vfio/41"), "0:0/0600");
  EXPECT_EQ(permissions_.owner_of(run.path()), "0:0/0755");
  // The VM can be started again once the file is readable.
  permissions_.access_error.reset();
  EXPECT_FALSE(hv->start("vm-1", with_gpus(kernel_spec(), gpus, 1024), gpus, run.path()));
  EXPECT_EQ(launcher_.launches, 1);
}

TEST_F(QemuRunAs, ANodeThatCannotBeGivenStopsTheStart) {
  auto hv = make_as();
  TempDir run;
  auto gpus = this->gpus();
  permissions_.refuse_path = "/fake/dev/vfio/41";
  auto started = hv->start("vm-1", with_gpus(kernel_spec(), gpus, 1024), gpus, run.path());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, Code::kPermissionDenied);
  EXPECT_EQ(started.error().message, "vm vm-1: chown /fake/dev/vfio/41: refused");
  EXPECT_EQ(launcher_.launches, 0);
  EXPECT_EQ(permissions_.owner_of("/fake/dev/vfio/40"), "0:0/0600");
  EXPECT_EQ(permissions_.owner_of(run.path()), "0:0/0755");
}

TEST_F(QemuRunAs, NodesGoBackWhenQemuExits) {
  auto hv = make_as();
  TempDir run;
  auto gpus = this->gpus();
  std::string at_exit_callback;
  hv->set_exit_callback([&](const std::string&, const ExitInfo&) {
    at_exit_callback = permissions_.owner_of("/fake/dev/vfio/40");
  });
  launch_fake_qemu(run.path());
  auto pid = hv->start("vm-1", with_gpus(kernel_spec(), gpus, 1024), gpus, run.path());
  ASSERT_TRUE(pid) << pid.error().to_string();
  EXPECT_EQ(*pid, 4242);
  // Running: the user holds the nodes.
  EXPECT_EQ(permissions_.owner_of("/fake/dev/vfio/40"), "1234:2345/0600");
  EXPECT_EQ(permissions_.owner_of("/fake/dev/vfio/41"), "1234:2345/0600");
  EXPECT_EQ(permissions_.owner_of(run.path()), "0:2345/1770");
  exit_fake_qemu();
  // Given back before the manager hears of the exit (it may hand the GPUs to the next VM).
  EXPECT_EQ(at_exit_callback, "0:0/0600");
  EXPECT_EQ(permissions_.owner_of("/fake/dev/vfio/41"), "0:0/0600");
  EXPECT_EQ(permissions_.owner_of(run.path()), "0:0/0755");
  EXPECT_EQ(permissions_.changes.size(), 6u);
}

TEST_F(QemuRunAs, AnAdoptedQemuOfAnotherUserGetsItsNodesTakenBackAtExit) {
  auto hv = make();  // a daemon restarted without run_as still cleans up after the old one
  TempDir run;
  using namespace std::string_literals;
  fake_running_qemu(
      "qemu-system-x86_64\0-name\0guest=vm-1,debug-threads=on\0-device\0"
      "pcie-root-port,id=feos-gpu0-rp,bus=pcie.0,chassis=1,slot=1\0-device\0"
      "vfio-pci,host=0000:18:00.0,id=feos-gpu0-f0,bus=feos-gpu0-rp,addr=0x0.0\0-device\0"
      "vfio-pci,host=0000:2b:00.0,id=feos-gpu0-peer0,bus=feos-gpu0-peer0-rp,addr=0x0.0\0"s,
      1234);
  fs_.links["/fake/sys/bus/pci/devices/0000:18:00.0/iommu_group"] = "../../../kernel/iommu_groups/40";
  fs_.links["/fake/sys/bus/pci/devices/0000:2b:00.0/iommu_group"] = "../../../kernel/iommu_groups/41";
  sockets_ = std::make_unique<FakeQemuSockets>(run.path());
  auto adopted = hv->adopt("vm-1", 4242, run.path());
  ASSERT_TRUE(adopted) << adopted.error().to_string();
  EXPECT_TRUE(permissions_.changes.empty());
  exit_fake_qemu();
  EXPECT_THAT(permissions_.history(),
              ::testing::ElementsAre("/fake/dev/vfio/41 0:0/0600", "/fake/dev/vfio/40 0:0/0600",
                                     run.path() + " 0:0/0755"));
}

// An adopted qemu with a guest NUMA layout: each vCPU thread (query-cpus-fast) is pinned to the
// CPUs of the host node its guest node's memory is bound to (read back from the command line).
TEST_F(QemuRunAs, AnAdoptedQemuGetsItsVcpusPinnedToTheirHostNodes) {
  auto hv = make();
  TempDir run;
  using namespace std::string_literals;
  fake_running_qemu(
      "qemu-system-x86_64\0-name\0guest=vm-1,debug-threads=on\0"
      "-object\0memory-backend-ram,id=ram-node0,size=1024M,host-nodes=0,policy=bind\0"
      "-object\0memory-backend-ram,id=ram-node1,size=1024M,host-nodes=1,policy=bind\0"
      "-numa\0node,nodeid=0,cpus=0-1,memdev=ram-node0\0"
      "-numa\0node,nodeid=1,cpus=2,memdev=ram-node1\0"s,
      0);
  fs_.files["/fake/sys/devices/system/node/node0/cpulist"] = "0-3,8-11\n";
  fs_.files["/fake/sys/devices/system/node/node1/cpulist"] = "4-7\n";
  for (int tid : {501, 502, 503}) fs_.files["/fake/proc/4242/task/" + std::to_string(tid)] = "";
  // Besides the three vCPUs: entries a qemu taken over by its guest could write, none of which
  // gets an affinity (a thread of another process, wrong types, not an object).
  sockets_ = std::make_unique<FakeQemuSockets>(run.path(), [](testing::FakeQmpServer& server, const nlohmann::json& request) {
    if (request["execute"] == "query-cpus-fast")
      return server.reply(request, nlohmann::json::array({{{"cpu-index", 0}, {"thread-id", 501}},
                                                          {{"cpu-index", 1}, {"thread-id", 502}},
                                                          {{"cpu-index", 2}, {"thread-id", 503}},
                                                          {{"cpu-index", 1}, {"thread-id", 1}},
                                                          {{"cpu-index", "0"}, {"thread-id", 504}},
                                                          {{"cpu-index", 0}, {"thread-id", 5.5}},
                                                          42}));
    testing::FakeQemuSockets::answer_like_qemu(server, request);
  });
  auto adopted = hv->adopt("vm-1", 4242, run.path());
  ASSERT_TRUE(adopted) << adopted.error().to_string();
  const std::vector<int> node0 = {0, 1, 2, 3, 8, 9, 10, 11}, node1 = {4, 5, 6, 7};
  EXPECT_EQ(launcher_.affinity, (std::map<int, std::vector<int>>{{501, node0}, {502, node0}, {503, node1}}));
  exit_fake_qemu();
}

TEST_F(QemuRunAs, AnAdoptedRootQemuKeepsOwnersAsTheyAre) {
  auto hv = make_as();
  TempDir run;
  using namespace std::string_literals;
  fake_running_qemu(
      "qemu-system-x86_64\0-name\0guest=vm-1,debug-threads=on\0-device\0"
      "vfio-pci,host=0000:18:00.0,id=feos-gpu0-f0,bus=feos-gpu0-rp,addr=0x0.0\0"s,
      0);
  fs_.links["/fake/sys/bus/pci/devices/0000:18:00.0/iommu_group"] = "../../../kernel/iommu_groups/40";
  sockets_ = std::make_unique<FakeQemuSockets>(run.path());
  auto adopted = hv->adopt("vm-1", 4242, run.path());
  ASSERT_TRUE(adopted) << adopted.error().to_string();
  exit_fake_qemu();
  EXPECT_TRUE(permissions_.changes.empty());
}

// --- finding the processes of our VMs after a restart (issue 17, item 2) ---

TEST_F(QemuHypervisorUnit, FindProcessesReportsOurQemusWhateverTheRecordsSay) {
  TempDir state;
  std::filesystem::create_directories(state / "vms");
  std::string root = state / "vms";
  using namespace std::string_literals;
  auto qemu_of = [&](const std::string& id, const std::string& runtime_root) {
    return "/usr/bin/qemu-system-x86_64\0-name\0guest="s + id + ",debug-threads=on\0-pidfile\0"s + runtime_root +
           "/" + id + "/qemu.pid\0-S\0"s;
  };
  fs_.files["/fake/proc/101/cmdline"] = qemu_of("vm-a", root);
  fs_.files["/fake/proc/102/cmdline"] = qemu_of("vm-b", root + "/../vms");  // another spelling of the root
  fs_.files["/fake/proc/103/cmdline"] = qemu_of("vm-c", "/var/lib/other-feosd/vms");  // another daemon's
  fs_.files["/fake/proc/104/cmdline"] = "/usr/sbin/sshd\0-D\0"s;
  fs_.files["/fake/proc/105/cmdline"] = "";  // a kernel thread
  fs_.files["/fake/proc/106/cmdline"] = "/bin/sh\0/tmp/wrapper\0-name\0guest=vm-d,debug-threads=on\0-pidfile\0"s +
                                        root + "/vm-e/qemu.pid\0"s;  // names one VM, runs in another's dir
  fs_.files["/fake/proc/cpuinfo"] = "processor : 0\n";
  auto hv = make();
  auto found = hv->find_processes(root);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].vm_id, "vm-a");
  EXPECT_EQ(found[0].pid, 101);
  EXPECT_EQ(found[1].vm_id, "vm-b");
  EXPECT_EQ(found[1].pid, 102);
}

TEST_F(QemuHypervisorUnit, KillFoundChecksTheProcessIsTheVmsBeforeKilling) {
  using namespace std::string_literals;
  QemuConfig config;
  config.stop_grace = std::chrono::milliseconds(100);
  auto hv = make(config);
  EXPECT_TRUE(hv->kill_found("vm-a", 4242));  // already gone
  launcher_.alive[4242] = true;
  fs_.files["/fake/proc/4242/cmdline"] = "qemu-system-x86_64\0-name\0guest=vm-b,debug-threads=on\0"s;
  auto wrong = hv->kill_found("vm-a", 4242);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(wrong.error().message, "vm vm-a: process 4242 belongs to vm vm-b");
  // The fake's SIGKILL does not end it: reported, not waited on forever.
  fs_.files["/fake/proc/4242/cmdline"] = "qemu-system-x86_64\0-name\0guest=vm-a,debug-threads=on\0"s;
  auto survived = hv->kill_found("vm-a", 4242);
  ASSERT_FALSE(survived);
  EXPECT_EQ(survived.error().code, Code::kInternal);
}

TEST_F(QemuHypervisorUnit, AVmMayNotHaveMoreMemoryThanTheHost) {
  fs_.files["/fake/proc/meminfo"] = "MemTotal:       24575856 kB\nMemFree:        20000000 kB\n";
  auto hv = make();
  auto spec = kernel_spec();
  spec.memory.size_mib = 23999;
  EXPECT_TRUE(hv->validate(spec));
  spec.memory.size_mib = uint64_t{16} << 20;  // 16 TiB
  auto refused = hv->validate(spec);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kInvalidArgument);
  EXPECT_EQ(refused.error().message, "config.memory.size_mib: 16777216 MiB is more than this host's memory (23999 MiB)");
}

}  // namespace
}  // namespace feos::vmm::qemu
