// Process-level tests: the real PosixProcessLauncher starts real qemu (TCG without usable KVM)
// booting the test guest from tests/guest/build-guest.sh, found via FEOS_TEST_GUEST_DIR.
#include "vmm/qemu/qemu_hypervisor.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "qcow2_bytes.h"
#include "support/proc_status.h"
#include "support/temp_dir.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::feos::test::TempDir;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kMarker = "FEOS-TEST-GUEST-READY";
// TCG on a small shared machine: boot takes ~5-10 s, allow for a loaded host.
constexpr auto kBootTimeout = 180s;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Records exit callbacks.
struct Exits {
  std::mutex mutex;
  std::condition_variable cv;
  std::map<std::string, ExitInfo> by_vm;
  Hypervisor::ExitCallback callback() {
    return [this](const std::string& vm_id, const ExitInfo& info) {
      std::lock_guard lock(mutex);
      by_vm[vm_id] = info;
      cv.notify_all();
    };
  }
  std::optional<ExitInfo> wait(const std::string& vm_id, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, timeout, [&] { return by_vm.count(vm_id) != 0; })) return std::nullopt;
    return by_vm[vm_id];
  }
  bool has(const std::string& vm_id) {
    std::lock_guard lock(mutex);
    return by_vm.count(vm_id) != 0;
  }
};

// Accumulates console output from one subscription.
struct ConsoleWatch {
  std::mutex mutex;
  std::condition_variable cv;
  std::string output;
  bool closed = false;
  int token = 0;
  std::shared_ptr<Console> console;
  void attach(std::shared_ptr<Console> c) {
    console = std::move(c);
    token = console->subscribe(
        [this](std::string_view bytes) {
          std::lock_guard lock(mutex);
          output.append(bytes);
          cv.notify_all();
        },
        [this] {
          std::lock_guard lock(mutex);
          closed = true;
          cv.notify_all();
        });
  }
  bool wait_for(const std::string& text, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return output.find(text) != std::string::npos; });
  }
  bool contains(const std::string& text) {
    std::lock_guard lock(mutex);
    return output.find(text) != std::string::npos;
  }
  bool wait_closed(std::chrono::seconds timeout) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return closed; });
  }
};

class QemuProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* guest = std::getenv("FEOS_TEST_GUEST_DIR");
    if (guest == nullptr || *guest == '\0')
      GTEST_SKIP() << "FEOS_TEST_GUEST_DIR is not set: build the test guest with "
                      "tests/guest/build-guest.sh DIR and export FEOS_TEST_GUEST_DIR=DIR";
    guest_dir_ = guest;
    for (const char* file : {"/vmlinuz", "/initramfs.cpio"})
      ASSERT_TRUE(fs_->exists(guest_dir_ + file)) << guest_dir_ + file << " missing";
    hv_ = make();
  }

  std::unique_ptr<QemuHypervisor> make() {
    QemuConfig config;
    config.accel = "auto";
    config.start_timeout = 60s;
    config.stop_grace = 10s;
    auto hv = QemuHypervisor::create(*launcher_, *fs_, sys::HostPaths{}, config);
    EXPECT_TRUE(hv) << hv.error().to_string();
    if (!hv) return nullptr;
    (*hv)->set_exit_callback(exits_.callback());
    return std::move(*hv);
  }

  model::VmSpec guest_spec() {
    model::VmSpec spec;
    spec.cpus = {1, 2};
    spec.memory.size_mib = 256;
    spec.boot.kernel = guest_dir_ + "/vmlinuz";
    spec.boot.initramfs = guest_dir_ + "/initramfs.cpio";
    spec.boot.cmdline = "console=ttyS0 quiet panic=-1";
    return spec;
  }

  std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::string guest_dir_;
  std::unique_ptr<sys::ProcessLauncher> launcher_ = sys::make_posix_process_launcher();
  std::unique_ptr<sys::Filesystem> fs_ = sys::make_posix_filesystem();
  Exits exits_;
  std::unique_ptr<QemuHypervisor> hv_;
  TempDir run_;
};

TEST_F(QemuProcessTest, BootPauseResumeAndGuestPowerOff) {
  auto t0 = Clock::now();
  auto pid = hv_->start("vm-boot", guest_spec(), {}, run_.path());
  ASSERT_TRUE(pid) << pid.error().to_string();
  double start_s = seconds_since(t0);
  EXPECT_TRUE(launcher_->is_alive(*pid));

  auto console = hv_->console("vm-boot");
  ASSERT_TRUE(console) << console.error().to_string();
  ConsoleWatch watch;
  watch.attach(*console);
  ASSERT_TRUE(watch.wait_for(kMarker, kBootTimeout)) << "no marker; console:\n" << watch.output;
  double marker_s = seconds_since(t0);

  auto ping = hv_->ping("vm-boot");
  ASSERT_TRUE(ping) << ping.error().to_string();
  EXPECT_THAT(ping->version, MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+"));
  EXPECT_EQ(ping->pid, *pid);
  EXPECT_THAT(ping->features, ::testing::Contains(MatchesRegex("accel=(kvm|tcg)")));

  // Console input is echoed by the guest.
  ASSERT_TRUE((*console)->write("hello feos\n"));
  ASSERT_TRUE(watch.wait_for("ECHO:hello feos", 30s)) << watch.output;

  // Paused vCPUs do not answer; after resume the pending input is answered.
  ASSERT_TRUE(hv_->pause("vm-boot"));
  ASSERT_TRUE((*console)->write("while paused\n"));
  std::this_thread::sleep_for(1500ms);
  EXPECT_FALSE(watch.contains("ECHO:while paused")) << "guest ran while paused";
  ASSERT_TRUE(hv_->resume("vm-boot"));
  ASSERT_TRUE(watch.wait_for("ECHO:while paused", 30s)) << watch.output;

  auto t1 = Clock::now();
  ASSERT_TRUE(hv_->request_shutdown("vm-boot"));
  auto exit = exits_.wait("vm-boot", 60s);
  ASSERT_TRUE(exit) << "no exit callback after system_powerdown; console:\n" << watch.output;
  double powerdown_s = seconds_since(t1);
  EXPECT_TRUE(exit->clean) << exit->reason;
  EXPECT_EQ(exit->reason, "guest powered off");
  EXPECT_TRUE(watch.wait_closed(10s));
  EXPECT_FALSE(launcher_->is_alive(*pid));
  // The adapter dropped the VM before the callback.
  EXPECT_EQ(hv_->pause("vm-boot").error().code, Code::kNotFound);
  EXPECT_THAT(read(run_ / "console.log"), HasSubstr(kMarker));

  std::printf("timing: start->running %.2f s, start->marker %.2f s, powerdown->exit %.2f s\n",
              start_s, marker_s, powerdown_s);
  RecordProperty("start_to_running_s", std::to_string(start_s));
  RecordProperty("start_to_marker_s", std::to_string(marker_s));
  RecordProperty("powerdown_to_exit_s", std::to_string(powerdown_s));
}

TEST_F(QemuProcessTest, StopEndsARunningVm) {
  auto pid = hv_->start("vm-stop", guest_spec(), {}, run_.path());
  ASSERT_TRUE(pid) << pid.error().to_string();
  // A second start of the same VM is refused while it runs.
  auto again = hv_->start("vm-stop", guest_spec(), {}, run_.path());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kAlreadyExists);

  auto t0 = Clock::now();
  ASSERT_TRUE(hv_->stop("vm-stop"));
  double stop_s = seconds_since(t0);
  EXPECT_FALSE(launcher_->is_alive(*pid));
  auto exit = exits_.wait("vm-stop", 10s);
  ASSERT_TRUE(exit);
  EXPECT_TRUE(exit->clean);
  EXPECT_EQ(exit->reason, "stopped on request");
  EXPECT_TRUE(hv_->stop("vm-stop"));  // gone already: fine
  std::printf("timing: stop %.2f s\n", stop_s);
}

TEST_F(QemuProcessTest, KilledQemuIsNotClean) {
  auto pid = hv_->start("vm-kill", guest_spec(), {}, run_.path());
  ASSERT_TRUE(pid) << pid.error().to_string();
  ASSERT_TRUE(launcher_->send_signal(*pid, SIGKILL));
  auto exit = exits_.wait("vm-kill", 30s);
  ASSERT_TRUE(exit);
  EXPECT_FALSE(exit->clean);
  EXPECT_THAT(exit->reason, HasSubstr("qemu killed by signal 9"));
}

TEST_F(QemuProcessTest, MissingKernelIsCaughtBeforeLaunch) {
  auto spec = guest_spec();
  spec.boot.kernel = run_ / "no-such-vmlinuz";
  auto pid = hv_->start("vm-nokernel", spec, {}, run_.path());
  ASSERT_FALSE(pid);
  EXPECT_EQ(pid.error().code, Code::kNotFound);
  EXPECT_THAT(pid.error().message,
              HasSubstr("config.boot.kernel: " + quote_for_message(run_ / "no-such-vmlinuz")));
  EXPECT_FALSE(fs_->exists(run_ / "qemu.log"));  // qemu never ran
}

TEST_F(QemuProcessTest, QemuErrorIsReported) {
  // A qcow2 header feosd reads (version 3, no backing file) without a refcount table: refused
  // by qemu.
  std::string image = run_ / "broken.qcow2";
  std::ofstream(image) << testing::Qcow2Bytes{}.bytes();
  auto spec = guest_spec();
  spec.disks = {{"data", image, false}};
  auto t0 = Clock::now();
  auto pid = hv_->start("vm-broken", spec, {}, run_.path());
  ASSERT_FALSE(pid);
  EXPECT_EQ(pid.error().code, Code::kInternal);
  EXPECT_THAT(pid.error().message, HasSubstr("vm vm-broken: qemu exited with status 1 during start"));
  EXPECT_THAT(pid.error().message, HasSubstr("qemu.log:"));
  // qemu's own words
  EXPECT_THAT(pid.error().message, HasSubstr("Image does not contain a reference count table"));
  EXPECT_LT(seconds_since(t0), 20.0) << "start waited for a qemu that had exited";
  EXPECT_FALSE(exits_.has("vm-broken"));  // a failed start is reported by start(), not the callback
  // The failed VM left nothing behind: starting it properly works.
  spec.disks.clear();
  auto ok_pid = hv_->start("vm-broken", spec, {}, run_.path());
  ASSERT_TRUE(ok_pid) << ok_pid.error().to_string();
  ASSERT_TRUE(hv_->stop("vm-broken"));
}

TEST_F(QemuProcessTest, DisksAndIgnitionAreAcceptedByQemu) {
  std::string raw = run_ / "data.raw";
  std::string qcow2 = run_ / "scratch.qcow2";
  std::ofstream(raw) << std::string(1 << 20, '\0');
  ASSERT_EQ(std::system(("qemu-img create -q -f qcow2 " + qcow2 + " 16M").c_str()), 0);
  auto spec = guest_spec();
  spec.disks = {{"data", raw, true}, {"scratch", qcow2, false}};
  spec.ignition = R"({"ignition":{"version":"3.4.0"}})";
  auto pid = hv_->start("vm-disks", spec, {}, run_.path());
  ASSERT_TRUE(pid) << pid.error().to_string();
  EXPECT_EQ(read(run_ / "ignition.json"), *spec.ignition);
  ASSERT_TRUE(hv_->stop("vm-disks"));
}

TEST_F(QemuProcessTest, HugepagesBackendIsAcceptedByQemu) {
  // A plain directory stands in for the hugetlbfs mount of 2 MiB pages (qemu's file backend works
  // on both), in the /proc/mounts of a fake proc tree; the fake sysfs says nothing of free pages.
  TempDir dev, proc, sysfs;
  std::filesystem::create_directory(dev / "hugepages");
  std::ofstream(proc / "mounts") << "hugetlbfs " << dev / "hugepages" << " hugetlbfs rw,relatime,pagesize=2M 0 0\n";
  std::ofstream(proc / "meminfo") << "MemTotal:       8192000 kB\nHugepagesize:       2048 kB\n";
  QemuConfig config;
  config.accel = "tcg";
  sys::HostPaths paths{sysfs.path(), dev.path(), proc.path()};
  auto hv = QemuHypervisor::create(*launcher_, *fs_, paths, config);
  ASSERT_TRUE(hv);
  auto spec = guest_spec();
  spec.memory = {128, true, model::HugepageSize::k2M};  // preallocated by qemu's threads
  auto pid = (*hv)->start("vm-huge", spec, {}, run_.path());
  ASSERT_TRUE(pid) << pid.error().to_string();
  ASSERT_TRUE((*hv)->stop("vm-huge"));
}

// Needs no guest: the launch fails before anything boots.
TEST(QemuProcess, MissingBinaryIsNotFound) {
  TempDir dir;
  std::ofstream(dir / "vmlinuz") << "not a kernel";
  auto launcher = sys::make_posix_process_launcher();
  auto fs = sys::make_posix_filesystem();
  QemuConfig config;
  config.binary = dir / "no-such-qemu";
  config.accel = "tcg";
  auto hv = QemuHypervisor::create(*launcher, *fs, sys::HostPaths{}, config);
  ASSERT_TRUE(hv);
  model::VmSpec spec;
  spec.boot.kernel = dir / "vmlinuz";
  auto pid = (*hv)->start("vm-nobin", spec, {}, dir.path());
  ASSERT_FALSE(pid);
  EXPECT_EQ(pid.error().code, Code::kNotFound);
  EXPECT_THAT(pid.error().message, HasSubstr("vm vm-nobin: launch qemu: "));
  EXPECT_THAT(pid.error().message, HasSubstr("no-such-qemu"));
  // Nothing stays registered.
  EXPECT_EQ((*hv)->pause("vm-nobin").error().code, Code::kNotFound);
}

TEST_F(QemuProcessTest, AdoptAfterRestart) {
  auto pid = hv_->start("vm-adopt", guest_spec(), {}, run_.path());
  ASSERT_TRUE(pid) << pid.error().to_string();
  {
    auto console = hv_->console("vm-adopt");
    ASSERT_TRUE(console);
    ConsoleWatch watch;
    watch.attach(*console);
    ASSERT_TRUE(watch.wait_for(kMarker, kBootTimeout)) << watch.output;
    (*console)->unsubscribe(watch.token);
  }
  hv_.reset();  // the daemon goes away; qemu keeps running
  ASSERT_TRUE(launcher_->is_alive(*pid));

  auto restarted = make();
  auto wrong = restarted->adopt("vm-other", *pid, run_.path());
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, Code::kNotFound);

  auto state = restarted->adopt("vm-adopt", *pid, run_.path());
  ASSERT_TRUE(state) << state.error().to_string();
  EXPECT_EQ(*state, RunState::kRunning);
  auto again = restarted->adopt("vm-adopt", *pid, run_.path());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kFailedPrecondition);

  auto console = restarted->console("vm-adopt");
  ASSERT_TRUE(console);
  ConsoleWatch watch;
  watch.attach(*console);
  ASSERT_TRUE((*console)->write("after adoption\n"));
  ASSERT_TRUE(watch.wait_for("ECHO:after adoption", 30s)) << watch.output;

  ASSERT_TRUE(restarted->pause("vm-adopt"));
  restarted.reset();
  restarted = make();
  state = restarted->adopt("vm-adopt", *pid, run_.path());
  ASSERT_TRUE(state) << state.error().to_string();
  EXPECT_EQ(*state, RunState::kPaused);

  ASSERT_TRUE(restarted->request_shutdown("vm-adopt"));  // paused: the button waits for resume
  ASSERT_TRUE(restarted->resume("vm-adopt"));
  auto exit = exits_.wait("vm-adopt", 60s);
  ASSERT_TRUE(exit);
  EXPECT_TRUE(exit->clean) << exit->reason;
  EXPECT_EQ(exit->reason, "guest powered off");
  EXPECT_FALSE(launcher_->is_alive(*pid));
}

// A daemon that does not know a VM's live qemu (killed right after launching it, before it
// recorded anything) must not start a second one: qemu holds the lock of its pidfile for its
// whole life, and start() checks it before touching anything in the runtime dir.
TEST_F(QemuProcessTest, NeverASecondQemuBesideALiveOneOfTheSameVm) {
  // <runtime root>/<vm id>, as the daemon lays it out.
  const std::string dir = run_ / "vm-once";
  std::filesystem::create_directories(dir);
  auto pid = hv_->start("vm-once", guest_spec(), {}, dir);
  ASSERT_TRUE(pid) << pid.error().to_string();
  auto unaware = make();  // another adapter: knows nothing of the first qemu
  ASSERT_TRUE(unaware);
  auto second = unaware->start("vm-once", guest_spec(), {}, dir);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Code::kAlreadyExists);
  EXPECT_EQ(second.error().message, "vm vm-once: a qemu process of this VM (pid " + std::to_string(*pid) +
                                        ") is still running (it holds " + dir + "/qemu.pid)");
  // The first one was not disturbed: its QMP socket is where it was and it answers.
  auto ping = hv_->ping("vm-once");
  ASSERT_TRUE(ping) << ping.error().to_string();
  EXPECT_EQ(ping->pid, *pid);
  // And the unaware adapter finds it, as a restarted daemon's recovery does.
  auto found = unaware->find_processes(run_.path());
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].vm_id, "vm-once");
  EXPECT_EQ(found[0].pid, *pid);
  ASSERT_TRUE(hv_->stop("vm-once"));
  ASSERT_TRUE(exits_.wait("vm-once", 30s));
  // Once it is gone the VM starts again (the stale pidfile is no obstacle).
  auto again = unaware->start("vm-once", guest_spec(), {}, dir);
  ASSERT_TRUE(again) << again.error().to_string();
  ASSERT_TRUE(unaware->stop("vm-once"));
}

// --- qemu as an unprivileged user (QemuConfig::run_as), under its seccomp sandbox ---

class QemuRunAsProcessTest : public QemuProcessTest {
 protected:
  void SetUp() override {
    QemuProcessTest::SetUp();
    if (IsSkipped()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run qemu as another user";
    auto user = sys::resolve_user("nobody");
    ASSERT_TRUE(user) << user.error().to_string();
    user_ = *user;
    stage_guest_for_user();
    if (HasFatalFailure()) return;
    QemuConfig config;
    config.accel = "auto";
    config.start_timeout = 60s;
    config.stop_grace = 10s;
    config.run_as = user_;
    auto hv = QemuHypervisor::create(*launcher_, *fs_, sys::HostPaths{}, config);
    ASSERT_TRUE(hv) << hv.error().to_string();
    hv_nobody_ = std::move(*hv);
    hv_nobody_->set_exit_callback(exits_.callback());
  }
  // The test guest lives in the build tree, which another user may not be able to traverse (a
  // checkout in a 0700 home or mktemp directory). Copies it into a directory of this test's own
  // that user nobody can read, and boots those copies.
  void stage_guest_for_user() {
    ASSERT_EQ(::chmod(staged_guest_.path().c_str(), 0755), 0);
    for (const char* file : {"vmlinuz", "initramfs.cpio"}) {
      std::filesystem::copy_file(guest_dir_ + "/" + file, staged_guest_ / file);
      ASSERT_EQ(::chmod((staged_guest_ / file).c_str(), 0644), 0);
    }
    guest_dir_ = staged_guest_.path();
  }
  // "Key:" of /proc/<pid>/status, whitespace squeezed.
  std::string status_field(int pid, const std::string& key) {
    return test::status_field(test::read_proc_status(pid), key);
  }
  struct stat stat_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st;
  }
  sys::RunAs user_;
  TempDir staged_guest_;
  std::unique_ptr<QemuHypervisor> hv_nobody_;
};

TEST_F(QemuRunAsProcessTest, GuestRunsUnderQemuAsNobody) {
  auto t0 = Clock::now();
  auto pid = hv_nobody_->start("vm-nobody", guest_spec(), {}, run_.path());
  ASSERT_TRUE(pid) << pid.error().to_string();
  double start_s = seconds_since(t0);
  std::string uid = std::to_string(user_.uid), gid = std::to_string(user_.gid);
  EXPECT_EQ(status_field(*pid, "Uid"), uid + " " + uid + " " + uid + " " + uid);
  EXPECT_EQ(status_field(*pid, "Gid"), gid + " " + gid + " " + gid + " " + gid);
  EXPECT_EQ(status_field(*pid, "CapEff"), "0000000000000000");
  EXPECT_EQ(status_field(*pid, "Seccomp"), "2");  // qemu's -sandbox filter is in force
  EXPECT_EQ(status_field(*pid, "NoNewPrivs"), "1");
  // qemu made its sockets in the directory it was given; the daemon's logs stay the daemon's.
  EXPECT_EQ(stat_of(run_.path()).st_gid, user_.gid);
  EXPECT_EQ(stat_of(run_.path()).st_mode & 07777, 01770u);
  EXPECT_EQ(stat_of(run_ / "qmp.sock").st_uid, user_.uid);
  EXPECT_EQ(stat_of(run_ / "qemu.pid").st_uid, user_.uid);
  EXPECT_EQ(stat_of(run_ / "console.log").st_uid, 0u);
  EXPECT_EQ(stat_of(run_ / "qemu.log").st_uid, 0u);

  auto console = hv_nobody_->console("vm-nobody");
  ASSERT_TRUE(console) << console.error().to_string();
  ConsoleWatch watch;
  watch.attach(*console);
  ASSERT_TRUE(watch.wait_for(kMarker, kBootTimeout)) << "no marker; console:\n" << watch.output;
  double marker_s = seconds_since(t0);
  ASSERT_TRUE((*console)->write("as nobody\n"));
  ASSERT_TRUE(watch.wait_for("ECHO:as nobody", 30s)) << watch.output;
  ASSERT_TRUE(hv_nobody_->ping("vm-nobody"));
  ASSERT_TRUE(hv_nobody_->pause("vm-nobody"));
  ASSERT_TRUE(hv_nobody_->resume("vm-nobody"));
  ASSERT_TRUE(hv_nobody_->request_shutdown("vm-nobody"));
  auto exit = exits_.wait("vm-nobody", 60s);
  ASSERT_TRUE(exit) << "no exit after system_powerdown; console:\n" << watch.output;
  EXPECT_EQ(exit->reason, "guest powered off");
  // Given back when qemu ended.
  EXPECT_EQ(stat_of(run_.path()).st_gid, 0u);
  EXPECT_EQ(stat_of(run_.path()).st_mode & 07777, 0755u);
  std::printf("timing as %s: start->running %.2f s, start->marker %.2f s\n",
              user_.describe().c_str(), start_s, marker_s);
}

TEST_F(QemuRunAsProcessTest, AKernelTheUserCannotReadIsRefusedBeforeLaunch) {
  TempDir secret;  // 0700 root: nobody cannot enter
  std::filesystem::copy_file(guest_dir_ + "/vmlinuz", secret / "vmlinuz");
  auto spec = guest_spec();
  spec.boot.kernel = secret / "vmlinuz";
  auto pid = hv_nobody_->start("vm-secret", spec, {}, run_.path());
  ASSERT_FALSE(pid);
  EXPECT_EQ(pid.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(pid.error().message, "vm vm-secret: config.boot.kernel: " + user_.describe() +
                                     " cannot read '" + (secret / "vmlinuz") +
                                     "': Permission denied");
  EXPECT_EQ(read(run_ / "qemu.log"), "");  // qemu never ran
  EXPECT_EQ(stat_of(run_.path()).st_gid, 0u);
  EXPECT_EQ(stat_of(run_.path()).st_mode & 07777, 0755u);
}

TEST_F(QemuRunAsProcessTest, ABackingFileTheUserCannotReadIsRefusedBeforeLaunch) {
  TempDir images;
  ASSERT_EQ(::chmod(images.path().c_str(), 0755), 0);
  std::string create_base = "qemu-img create -q -f raw " + images / "base.raw" + " 16M";
  std::string create_top = "qemu-img create -q -f qcow2 -b base.raw -F raw " + images / "top.qcow2";
  ASSERT_EQ(std::system(create_base.c_str()), 0);
  ASSERT_EQ(std::system(create_top.c_str()), 0);
  // The disk itself is the user's to write; its backing file is root's alone.
  ASSERT_EQ(::chmod((images / "top.qcow2").c_str(), 0666), 0);
  ASSERT_EQ(::chmod((images / "base.raw").c_str(), 0600), 0);
  auto spec = guest_spec();
  spec.disks = {{"data", images / "top.qcow2", false}};
  auto pid = hv_nobody_->start("vm-backing", spec, {}, run_.path());
  ASSERT_FALSE(pid);
  EXPECT_EQ(pid.error().code, Code::kFailedPrecondition) << pid.error().message;
  EXPECT_EQ(pid.error().message, "vm vm-backing: config.disks[0].path (backing file 1): " +
                                     user_.describe() + " cannot read '" + (images / "base.raw") +
                                     "': Permission denied");
  EXPECT_EQ(read(run_ / "qemu.log"), "");  // qemu never ran
}

}  // namespace
}  // namespace feos::vmm::qemu
