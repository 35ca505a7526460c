// Hot-plug against real qemu (TCG) booting the test guest (tests/guest, found via
// FEOS_TEST_GUEST_DIR): disks and NICs plugged into the hot-plug ports of a running guest, seen by
// the guest's kernel (its LSPCI console command lists /sys/bus/pci/devices), released by it on
// detach, and a detach the guest cannot answer (vCPUs stopped) timing out.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "support/temp_dir.h"
#include "sys/run_as.h"
#include "sys/tap.h"
#include "vmm/qemu/qemu_hypervisor.h"

namespace feos::vmm::qemu {
namespace {

using namespace std::chrono_literals;

// virtio 1.0 devices behind a PCIe port are modern-only: these ids.
constexpr const char* kVirtioBlk = "0x1af4:0x1042";
constexpr const char* kVirtioNet = "0x1af4:0x1041";

// The guest's serial console, as text.
struct GuestConsole {
  std::mutex mutex;
  std::condition_variable cv;
  std::string output;
  std::shared_ptr<Console> console;

  void attach(std::shared_ptr<Console> c) {
    console = std::move(c);
    console->subscribe(
        [this](std::string_view bytes) {
          std::lock_guard lock(mutex);
          output.append(bytes);
          cv.notify_all();
        },
        [] {});
  }
  // The output after `from` once it holds `text`, or nullopt after `timeout`.
  std::optional<std::string> wait_for(const std::string& text, size_t from, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, timeout, [&] { return output.find(text, from) != std::string::npos; })) return std::nullopt;
    return output.substr(from);
  }
  // The guest's PCI functions ("PCI:<address> <vendor>:<device>" lines).
  std::string lspci() {
    size_t from;
    {
      std::lock_guard lock(mutex);
      from = output.size();
    }
    if (!console->write("LSPCI\n")) return "";
    return wait_for("LSPCI-END", from, 30s).value_or("");
  }
  // Polls lspci() until `id` is listed (`present`) or not, up to `timeout`.
  bool wait_pci(const std::string& id, bool present, std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
      if ((lspci().find(id) != std::string::npos) == present) return true;
      std::this_thread::sleep_for(1s);
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }
};

class QemuHotplugTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* guest = std::getenv("FEOS_TEST_GUEST_DIR");
    if (guest == nullptr || *guest == '\0')
      GTEST_SKIP() << "FEOS_TEST_GUEST_DIR is not set: build the test guest with tests/guest/build-guest.sh DIR";
    guest_dir_ = guest;
  }
  void TearDown() override {
    if (hv_) (void)hv_->stop(kVm);
  }

  // Starts the test guest with 2 hot-plug ports and waits until its console is ready. With
  // `run_as`, qemu runs as that user: the runtime dir and the guest's files (copied) must be
  // reachable by it.
  void boot(std::chrono::milliseconds unplug_timeout, std::optional<sys::RunAs> run_as = std::nullopt) {
    QemuConfig config;
    config.start_timeout = 60s;
    config.hotplug_ports = 2;
    config.unplug_timeout = unplug_timeout;
    config.run_as = run_as;
    if (run_as) {
      ASSERT_EQ(::chmod(run_.path().c_str(), 0755), 0);
      const std::string guest = run_ / "guest";
      ASSERT_EQ(std::system(("install -d -m 0755 " + guest + " && install -m 0644 " + guest_dir_ + "/vmlinuz " +
                             guest_dir_ + "/initramfs.cpio " + guest)
                                .c_str()),
                0);
      guest_dir_ = guest;
    }
    auto hv = QemuHypervisor::create(*launcher_, *fs_, sys::HostPaths{}, config);
    ASSERT_TRUE(hv) << hv.error().to_string();
    hv_ = std::move(*hv);
    hv_->set_exit_callback([](const std::string&, const ExitInfo&) {});
    model::VmSpec spec;
    spec.cpus = {1, 1};
    spec.memory.size_mib = 256;
    spec.boot = {guest_dir_ + "/vmlinuz", guest_dir_ + "/initramfs.cpio", "console=ttyS0 quiet panic=-1"};
    auto pid = hv_->start(kVm, spec, {}, run_.path());
    ASSERT_TRUE(pid) << pid.error().to_string();
    auto console = hv_->console(kVm);
    ASSERT_TRUE(console) << console.error().to_string();
    console_.attach(*console);
    ASSERT_TRUE(console_.wait_for("FEOS-TEST-GUEST-READY", 0, 180s)) << console_.output;
  }

  std::string raw_disk(const std::string& name) {
    std::string path = run_ / name;
    std::ofstream(path) << std::string(1 << 20, '\0');
    return path;
  }

  static constexpr const char* kVm = "vm-hotplug";
  std::string guest_dir_;
  std::unique_ptr<sys::ProcessLauncher> launcher_ = sys::make_posix_process_launcher();
  std::unique_ptr<sys::Filesystem> fs_ = sys::make_posix_filesystem();
  test::TempDir run_;
  std::unique_ptr<QemuHypervisor> hv_;
  GuestConsole console_;
};

TEST_F(QemuHotplugTest, DiskIsPluggedSeenByTheGuestAndReleasedOnDetach) {
  ASSERT_NO_FATAL_FAILURE(boot(60s));
  ASSERT_EQ(console_.lspci().find(kVirtioBlk), std::string::npos) << "no virtio disk before the attach";
  auto plugged = hv_->attach_disk(kVm, {"data", raw_disk("data.raw"), false});
  ASSERT_TRUE(plugged) << plugged.error().to_string();
  EXPECT_EQ(plugged->format, model::DiskFormat::kRaw);
  EXPECT_TRUE(console_.wait_pci(kVirtioBlk, true, 60s)) << console_.lspci();
  // query-pci shows the device in its port: the same id again is refused.
  auto again = hv_->attach_disk(kVm, {"data", raw_disk("other.raw"), false});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kAlreadyExists) << again.error().to_string();
  // Two ports: a second disk fits, a third does not.
  ASSERT_TRUE(hv_->attach_disk(kVm, {"scratch", raw_disk("scratch.raw"), true}));
  auto third = hv_->attach_disk(kVm, {"third", raw_disk("third.raw"), false});
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code, Code::kResourceExhausted) << third.error().to_string();

  auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(hv_->detach_disk(kVm, "data"));
  ASSERT_TRUE(hv_->detach_disk(kVm, "scratch"));
  std::printf("two disks released by the guest in %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  EXPECT_TRUE(console_.wait_pci(kVirtioBlk, false, 30s)) << console_.lspci();
  // The ports and their node names are free again: the same disk plugs anew.
  ASSERT_TRUE(hv_->attach_disk(kVm, {"data", raw_disk("data.raw"), false}));
  // A detach of a device qemu no longer has is done already.
  ASSERT_TRUE(hv_->detach_disk(kVm, "data"));
  EXPECT_TRUE(hv_->detach_disk(kVm, "data"));
}

TEST_F(QemuHotplugTest, DetachAGuestDoesNotAnswerTimesOutAndCompletesOnRetry) {
  ASSERT_NO_FATAL_FAILURE(boot(3s));
  ASSERT_TRUE(hv_->attach_disk(kVm, {"data", raw_disk("data.raw"), false}));
  ASSERT_TRUE(console_.wait_pci(kVirtioBlk, true, 60s));
  // With its vCPUs stopped the guest cannot release anything.
  ASSERT_TRUE(hv_->pause(kVm));
  auto detached = hv_->detach_disk(kVm, "data");
  ASSERT_FALSE(detached);
  EXPECT_EQ(detached.error().code, Code::kDeadlineExceeded) << detached.error().to_string();
  EXPECT_NE(detached.error().message.find("retry the detach"), std::string::npos);
  ASSERT_TRUE(hv_->resume(kVm));
  // The guest answers the pending request once it runs; a retry waits for it or finds it done.
  Status retried = hv_->detach_disk(kVm, "data");
  for (int i = 0; i < 10 && !retried && retried.error().code == Code::kDeadlineExceeded; ++i)
    retried = hv_->detach_disk(kVm, "data");
  ASSERT_TRUE(retried) << retried.error().to_string();
  EXPECT_TRUE(console_.wait_pci(kVirtioBlk, false, 30s)) << console_.lspci();
}

TEST_F(QemuHotplugTest, NicOnAMissingTapIsCreatedPluggedAndReleased) {
  if (::geteuid() != 0) GTEST_SKIP() << "creating a tap needs root (CAP_NET_ADMIN)";
  const std::string tap = "fhp" + std::to_string(::getpid() % 100000);
  ASSERT_FALSE(sys::interface_exists(tap));
  ASSERT_NO_FATAL_FAILURE(boot(60s));
  auto plugged = hv_->attach_nic(kVm, {"eth1", tap, "52:54:00:12:34:56"});
  ASSERT_TRUE(plugged) << plugged.error().to_string();
  EXPECT_TRUE(*plugged) << "the attach says it created the tap";
  EXPECT_TRUE(sys::interface_exists(tap));
  EXPECT_TRUE(console_.wait_pci(kVirtioNet, true, 60s)) << console_.lspci();
  ASSERT_TRUE(hv_->detach_nic(kVm, "eth1"));
  EXPECT_TRUE(console_.wait_pci(kVirtioNet, false, 30s)) << console_.lspci();
  // The tap outlives the unplug (persistent) until the NIC's owner removes it: core does, as here.
  EXPECT_TRUE(sys::interface_exists(tap));
  ASSERT_TRUE(hv_->remove_created_tap(tap));
  EXPECT_FALSE(sys::interface_exists(tap));
  EXPECT_TRUE(hv_->remove_created_tap(tap)) << "gone already: OK";
}

// feosd --qemu-user: the disk's whole image graph is checked in the user's identity before
// anything is plugged (nothing of a request is given to the user), and a tap must be made for it.
TEST_F(QemuHotplugTest, AsAnUnprivilegedUserWhatItReachesIsPluggedAndWhatItDoesNotIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "running qemu as another user needs root";
  if (std::system("qemu-img --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "qemu-img is not installed";
  auto nobody = sys::resolve_user("nobody");
  ASSERT_TRUE(nobody) << nobody.error().to_string();
  ASSERT_NO_FATAL_FAILURE(boot(60s, *nobody));
  const std::string disks = run_ / "disks";
  ASSERT_EQ(::mkdir(disks.c_str(), 0755), 0);
  auto sh = [](const std::string& command) { return std::system(command.c_str()) == 0; };
  // nobody reads and writes the overlay but cannot read its backing file.
  ASSERT_TRUE(sh("cd " + disks + " && truncate -s 1M base.raw && chmod 0600 base.raw && qemu-img create -q -f qcow2 "
                 "-b " + disks + "/base.raw -F raw top.qcow2 && chmod 0666 top.qcow2 && truncate -s 1M open.raw && "
                 "chmod 0666 open.raw && truncate -s 1M secret.raw && chmod 0600 secret.raw"));
  auto owner_of = [](const std::string& path) {
    struct stat st {};
    ::stat(path.c_str(), &st);
    return std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) + "/" + std::to_string(st.st_mode & 07777);
  };
  const std::string secret_owner = owner_of(disks + "/secret.raw");
  const std::string user = "user nobody (uid " + std::to_string(nobody->uid) + ")";

  auto secret = hv_->attach_disk(kVm, {"secret", disks + "/secret.raw", false});
  ASSERT_FALSE(secret);
  EXPECT_EQ(secret.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(secret.error().message, "vm vm-hotplug: disk.path: " + user + " cannot read and write '" + disks +
                                        "/secret.raw': Permission denied");
  auto chained = hv_->attach_disk(kVm, {"chained", disks + "/top.qcow2", false});
  ASSERT_FALSE(chained);
  EXPECT_EQ(chained.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(chained.error().message, "vm vm-hotplug: disk.path (backing file 1): " + user + " cannot read '" + disks +
                                         "/base.raw': Permission denied");
  // Refused before anything reached qemu: both ports are still free, no owner changed.
  EXPECT_EQ(owner_of(disks + "/secret.raw"), secret_owner);
  auto opened = hv_->attach_disk(kVm, {"open", disks + "/open.raw", false});
  ASSERT_TRUE(opened) << opened.error().to_string();
  EXPECT_TRUE(console_.wait_pci(kVirtioBlk, true, 60s)) << console_.lspci();
  // Read-only, nobody needs only read: the backing file made readable, the chain plugs.
  ASSERT_EQ(::chmod((disks + "/base.raw").c_str(), 0644), 0);
  auto readonly = hv_->attach_disk(kVm, {"chained", disks + "/top.qcow2", true});
  ASSERT_TRUE(readonly) << readonly.error().to_string();
  EXPECT_EQ(readonly->format, model::DiskFormat::kQcow2);
  ASSERT_TRUE(hv_->detach_disk(kVm, "open"));
  ASSERT_TRUE(hv_->detach_disk(kVm, "chained"));
  EXPECT_TRUE(console_.wait_pci(kVirtioBlk, false, 30s)) << console_.lspci();
  EXPECT_EQ(owner_of(disks + "/open.raw"), "0:0/438");  // 0666, root's: never given away

  // Taps: qemu opens them through /dev/net/tun, which Debian makes 0666; a host (a container)
  // may keep it root's: then no NIC is plugged, with the reason. The test then gives it Debian's mode.
  const std::string tun = "/dev/net/tun";
  struct stat tun_stat {};
  ASSERT_EQ(::stat(tun.c_str(), &tun_stat), 0);
  const mode_t tun_mode = tun_stat.st_mode & 07777;
  if ((tun_mode & 0006) != 0006) {
    auto no_tun = hv_->attach_nic(kVm, {"eth0", "fhx0", "52:54:00:12:34:56"});
    ASSERT_FALSE(no_tun);
    EXPECT_EQ(no_tun.error().code, Code::kFailedPrecondition);
    EXPECT_EQ(no_tun.error().message, "vm vm-hotplug: nic.tap_name (tap device): " + user +
                                          " cannot read and write '/dev/net/tun': Permission denied");
    ASSERT_EQ(::chmod(tun.c_str(), 0666), 0);
  }
  // Its own mode back however the test ends.
  struct RestoreMode {
    std::string path;
    mode_t mode;
    ~RestoreMode() { (void)::chmod(path.c_str(), mode); }
  } restore{tun, tun_mode};
  // One made for root is refused; a missing one is created for nobody and plugged.
  const std::string theirs = "fhr" + std::to_string(::getpid() % 100000);
  const std::string mine = "fhn" + std::to_string(::getpid() % 100000);
  ASSERT_TRUE(sh("ip tuntap add " + theirs + " mode tap user 0"));
  auto refused = hv_->attach_nic(kVm, {"eth1", theirs, "52:54:00:12:34:57"});
  EXPECT_FALSE(refused);
  if (!refused) {
    EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
    EXPECT_NE(refused.error().message.find(user + " cannot open tap '" + theirs + "': it is made for uid 0"),
              std::string::npos)
        << refused.error().message;
  }
  ASSERT_FALSE(sys::interface_exists(mine));
  auto plugged = hv_->attach_nic(kVm, {"eth2", mine, "52:54:00:12:34:58"});
  EXPECT_TRUE(plugged) << plugged.error().to_string();
  if (plugged) {
    EXPECT_TRUE(console_.wait_pci(kVirtioNet, true, 60s)) << console_.lspci();
    EXPECT_TRUE(hv_->detach_nic(kVm, "eth2"));
  }
  (void)std::system(("ip link delete " + theirs + "; ip link delete " + mine + " 2>/dev/null").c_str());
}

}  // namespace
}  // namespace feos::vmm::qemu
