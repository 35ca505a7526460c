// Hot-plug into a qemu that runs as an unprivileged user (QemuConfig::run_as), on fake
// permissions, a fake sysfs and a fake qemu (its QMP records every command): a disk's whole image
// graph is checked with the user's identity before any QMP command, a tap must be made for the
// user, and nothing of a request is given to the user.
#include <fstream>
#include <mutex>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_qemu_sockets.h"
#include "fake_sys.h"
#include "qcow2_bytes.h"
#include "support/temp_dir.h"
#include "vmm/qemu/hotplug_ports.h"
#include "vmm/qemu/qemu_hypervisor.h"

namespace feos::vmm::qemu {
namespace {

using ::feos::test::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using nlohmann::json;
using testing::FakeFilesystem;
using testing::FakeLauncher;
using testing::FakePermissions;
using testing::FakeQemuSockets;

const sys::RunAs kUser{"qemu-user", 1234, 2345, {2345}};

class HotplugRunAs : public ::testing::Test {
 protected:
  // Starts the VM as pid 4242 under a fake qemu with one empty hot-plug port, then forgets the
  // start's QMP commands and owner changes.
  void SetUp() override {
    QemuConfig config;
    config.accel = "tcg";
    config.run_as = kUser;
    config.hotplug_ports = 1;
    config.start_timeout = std::chrono::milliseconds(5000);
    config.command_timeout = std::chrono::milliseconds(2000);
    auto hv = QemuHypervisor::create(launcher_, fs_, permissions_, paths_, config);
    ASSERT_TRUE(hv) << hv.error().to_string();
    hv_ = std::move(*hv);
    hv_->set_exit_callback([](const std::string&, const ExitInfo&) {});
    launcher_.on_launch = [this](const sys::LaunchSpec&) -> Result<int> {
      sockets_ = std::make_unique<FakeQemuSockets>(run_.path(), [this](auto& server, const json& request) {
        answer(server, request);
      });
      launcher_.alive[4242] = true;
      return 4242;
    };
    auto pid = hv_->start(kVm, spec_, {}, run_.path());
    ASSERT_TRUE(pid) << pid.error().to_string();
    std::lock_guard lock(mutex_);
    commands_.clear();
    given_at_start_ = permissions_.history();
  }
  void TearDown() override {
    if (!sockets_) return;
    sockets_.reset();
    launcher_.alive[4242] = false;
    if (launcher_.watchers.count(4242)) launcher_.watchers[4242](sys::ExitStatus{true, 0, 0});
  }
  // query-pci: one port, empty or holding what device_add put there; anything else succeeds.
  void answer(testing::FakeQmpServer& server, const json& request) {
    const std::string command = request["execute"];
    std::lock_guard lock(mutex_);
    commands_.push_back(command);
    if (command == "query-status") return server.reply(request, {{"status", "running"}, {"running", true}});
    if (command == "query-pci") {
      json behind = json::array();
      if (!plugged_.empty()) behind.push_back({{"qdev_id", plugged_}});
      json port{{"qdev_id", hotplug_port_id(0)}, {"pci_bridge", {{"devices", behind}}}};
      return server.reply(request, json::array({{{"bus", 0}, {"devices", json::array({port})}}}));
    }
    if (command == "device_add") plugged_ = request["arguments"]["id"];
    server.reply(request, json::object());
  }
  std::vector<std::string> commands() {
    std::lock_guard lock(mutex_);
    return commands_;
  }
  std::string image(const std::string& name, const std::string& bytes) {
    std::string path = images_ / name;
    std::ofstream(path) << bytes;
    return path;
  }
  model::VmSpec kernel_spec() {
    model::VmSpec spec;
    spec.boot.kernel = images_ / "vmlinuz";
    std::ofstream(spec.boot.kernel) << "k";
    fs_.files[spec.boot.kernel] = "k";  // validate() looks on the fake filesystem
    return spec;
  }

  static constexpr const char* kVm = "vm-1";
  TempDir run_, images_;
  FakeFilesystem fs_;
  FakeLauncher launcher_;
  FakePermissions permissions_;
  sys::HostPaths paths_{"/fake/sys", "/fake/dev", "/fake/proc"};
  model::VmSpec spec_ = kernel_spec();
  std::unique_ptr<QemuHypervisor> hv_;
  std::unique_ptr<FakeQemuSockets> sockets_;
  std::mutex mutex_;
  std::vector<std::string> commands_;
  std::string plugged_;
  std::vector<std::string> given_at_start_;
};

TEST_F(HotplugRunAs, ADiskTheUserCannotReachIsRefusedBeforeAnyQmpCommand) {
  const std::string base = image("base.raw", std::string(4096, '\0'));
  const std::string top = image("top.qcow2", testing::Qcow2Bytes{}.backing(base, "raw").bytes());
  permissions_.access_error =
      Error{Code::kFailedPrecondition, "disk.path (backing file 1): user qemu-user (uid 1234) cannot read " + base};
  auto plugged = hv_->attach_disk(kVm, {"data", top, false});
  ASSERT_FALSE(plugged);
  EXPECT_EQ(plugged.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(plugged.error().message,
            "vm vm-1: disk.path (backing file 1): user qemu-user (uid 1234) cannot read " + base);
  // The whole chain was asked for, as the user would open it, in the user's identity.
  ASSERT_FALSE(permissions_.checks.empty());
  ASSERT_EQ(permissions_.checked_users.back().uid, 1234u);
  const auto& asked = permissions_.checks.back();
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_EQ(asked[0].path, top);
  EXPECT_EQ(asked[0].access, sys::Access::kReadWrite);
  EXPECT_EQ(asked[1].what, "disk.path (backing file 1)");
  EXPECT_EQ(asked[1].access, sys::Access::kRead);
  // qemu heard nothing; nobody's owner changed.
  EXPECT_TRUE(commands().empty()) << ::testing::PrintToString(commands());
  EXPECT_EQ(permissions_.history(), given_at_start_);
}

TEST_F(HotplugRunAs, ADiskTheUserReachesIsPluggedAndNothingIsGivenAway) {
  const std::string disk = image("data.raw", std::string(4096, '\0'));
  auto plugged = hv_->attach_disk(kVm, {"data", disk, true});
  ASSERT_TRUE(plugged) << plugged.error().to_string();
  ASSERT_FALSE(permissions_.checks.empty());
  const auto& asked = permissions_.checks.back();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].access, sys::Access::kRead);  // read-only disk
  EXPECT_THAT(commands(), ElementsAre("query-pci", "query-named-block-nodes", "blockdev-add", "blockdev-add",
                                      "device_add"));
  // A request's file is never given to qemu's user: no owner changed, at attach or at detach.
  EXPECT_EQ(permissions_.history(), given_at_start_);
}

// A tap fake sysfs shows with `owner` ("-1": none).
void fake_tap(FakeFilesystem& fs, const sys::HostPaths& paths, const std::string& name, const std::string& owner) {
  fs.files[paths.net_interface(name)] = "";
  fs.files[paths.net_interface_attr(name, "tun_flags")] = "0x1002\n";
  fs.files[paths.net_interface_attr(name, "owner")] = owner + "\n";
  fs.files[paths.net_interface_attr(name, "group")] = "-1\n";
}

TEST_F(HotplugRunAs, ATapNotMadeForTheUserIsRefusedBeforeAnyQmpCommand) {
  fake_tap(fs_, paths_, "tap-root", "0");
  auto plugged = hv_->attach_nic(kVm, {"eth1", "tap-root", "52:54:00:12:34:56"});
  ASSERT_FALSE(plugged);
  EXPECT_EQ(plugged.error().code, Code::kFailedPrecondition);
  EXPECT_THAT(plugged.error().message,
              HasSubstr("vm vm-1: nic.tap_name: user qemu-user (uid 1234) cannot open tap 'tap-root': it is made "
                        "for uid 0"));
  EXPECT_TRUE(commands().empty()) << ::testing::PrintToString(commands());
  // The user's access to <dev>/net/tun was checked first.
  ASSERT_FALSE(permissions_.checks.empty());
  ASSERT_EQ(permissions_.checks.back().size(), 1u);
  EXPECT_EQ(permissions_.checks.back()[0].path, "/fake/dev/net/tun");
  EXPECT_EQ(permissions_.checks.back()[0].access, sys::Access::kReadWrite);
}

TEST_F(HotplugRunAs, WithoutTheTunDeviceNoNicIsPlugged) {
  fake_tap(fs_, paths_, "tap-mine", "1234");
  permissions_.access_error =
      Error{Code::kFailedPrecondition, "nic.tap_name (tap device): user qemu-user (uid 1234) cannot read and write "
                                       "'/fake/dev/net/tun': Permission denied"};
  auto plugged = hv_->attach_nic(kVm, {"eth1", "tap-mine", "52:54:00:12:34:56"});
  ASSERT_FALSE(plugged);
  EXPECT_EQ(plugged.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(plugged.error().message, "vm vm-1: " + permissions_.access_error->message);
  EXPECT_TRUE(commands().empty()) << ::testing::PrintToString(commands());
}

// start() of a spec whose tap is not the user's: refused before launch, what was given goes back.
TEST(StartRunAs, ATapNotMadeForTheUserStopsTheStart) {
  FakeFilesystem fs;
  FakeLauncher launcher;
  FakePermissions permissions;
  const sys::HostPaths paths{"/fake/sys", "/fake/dev", "/fake/proc"};
  QemuConfig config;
  config.accel = "tcg";
  config.run_as = kUser;
  auto hv = QemuHypervisor::create(launcher, fs, permissions, paths, config);
  ASSERT_TRUE(hv) << hv.error().to_string();
  TempDir run, guest;
  model::VmSpec spec;
  spec.boot.kernel = guest / "vmlinuz";
  std::ofstream(spec.boot.kernel) << "k";
  fs.files[spec.boot.kernel] = "k";
  spec.nets = {{"eth0", "tap-other", "52:54:00:12:34:56"}};
  fake_tap(fs, paths, "tap-other", "4321");
  auto started = (*hv)->start("vm-1", spec, {}, run.path());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, Code::kFailedPrecondition);
  EXPECT_THAT(started.error().message,
              HasSubstr("vm vm-1: config.net[0].tap.tap_name: user qemu-user (uid 1234) cannot open tap "
                        "'tap-other': it is made for uid 4321"));
  EXPECT_EQ(launcher.launches, 0);
  EXPECT_EQ(permissions.owner_of(run.path()), "0:0/0755");
  // Made for the user: the start goes on to launch.
  fake_tap(fs, paths, "tap-other", "1234");
  EXPECT_FALSE((*hv)->start("vm-1", spec, {}, run.path()));  // the fake launcher starts nothing
  EXPECT_EQ(launcher.launches, 1);
}

}  // namespace
}  // namespace feos::vmm::qemu
