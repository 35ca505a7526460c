// What an unprivileged qemu must reach of a hot-plugged disk (chain_access_checks()) and which
// taps it may open (sys::TapOwner, sys::read_tap_owner(), check_tap_for_user()), on a fake sysfs.
#include "vmm/qemu/run_as_taps.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_sys.h"
#include "sys/tap.h"
#include "vmm/qemu/run_as_grants.h"

namespace feos::vmm::qemu {
namespace {

using testing::FakeFilesystem;

const sys::RunAs kUser{"qemu-user", 1234, 2345, {2345, 36}};
const sys::HostPaths kPaths{"/fake/sys", "/fake/dev", "/fake/proc"};

std::string describe(const sys::AccessCheck& check) {
  return check.what + " " + check.path + " " + sys::access_verb(check.access) +
         (check.shown.empty() ? "" : " as " + check.shown);
}

std::vector<std::string> describe(const std::vector<sys::AccessCheck>& checks) {
  std::vector<std::string> out;
  for (const auto& check : checks) out.push_back(describe(check));
  return out;
}

TEST(ChainAccessChecks, TheTopImageAsUsedEveryBackingFileRead) {
  ImageChain chain{{"/img/top.qcow2", model::DiskFormat::kQcow2, "/img/top.data"},
                   {"/img/base.qcow2", model::DiskFormat::kQcow2, ""},
                   {"/img/base.raw", model::DiskFormat::kRaw, ""}};
  EXPECT_THAT(describe(chain_access_checks("disk.path", chain, true, "/link/top.qcow2")),
              ::testing::ElementsAre("disk.path /img/top.qcow2 read and write as /link/top.qcow2",
                                     "disk.path (data file) /img/top.data read and write",
                                     "disk.path (backing file 1) /img/base.qcow2 read",
                                     "disk.path (backing file 2) /img/base.raw read"));
  // A read-only disk: nothing of it is written.
  EXPECT_THAT(describe(chain_access_checks("disk.path", {chain[2]}, false, "/img/base.raw")),
              ::testing::ElementsAre("disk.path /img/base.raw read as /img/base.raw"));
}

TEST(TunAccessCheck, EveryTapIsOpenedThroughTheTunDevice) {
  EXPECT_EQ(describe(tun_access_check(kPaths, "nic.tap_name")),
            "nic.tap_name (tap device) /fake/dev/net/tun read and write");
}

// The kernel's rule (tun_not_capable()): each of owner and group that is set must match.
TEST(TapOwner, AdmitsAsTheKernelDoes) {
  const std::vector<gid_t> groups{2345, 36};
  EXPECT_TRUE((sys::TapOwner{}).admits(1234, groups));  // neither set: anyone
  EXPECT_TRUE((sys::TapOwner{1234, std::nullopt}).admits(1234, groups));
  EXPECT_FALSE((sys::TapOwner{0, std::nullopt}).admits(1234, groups));
  EXPECT_TRUE((sys::TapOwner{std::nullopt, 36}).admits(1234, groups));  // a supplementary group
  EXPECT_FALSE((sys::TapOwner{std::nullopt, 99}).admits(1234, groups));
  EXPECT_FALSE((sys::TapOwner{1234, 99}).admits(1234, groups));  // both set: both must match
  EXPECT_TRUE((sys::TapOwner{1234, 2345}).admits(1234, groups));
  EXPECT_EQ((sys::TapOwner{1234, 2345}).describe(), "uid 1234 and group 2345");
  EXPECT_EQ((sys::TapOwner{std::nullopt, 36}).describe(), "group 36");
  EXPECT_EQ((sys::TapOwner{}).describe(), "no owner or group");
}

class TapForUser : public ::testing::Test {
 protected:
  // A tap in the fake sysfs, its owner and group as the kernel shows them ("-1": unset).
  void tap(const std::string& name, const std::string& owner, const std::string& group) {
    fs_.files[kPaths.net_interface(name)] = "";
    fs_.files[kPaths.net_interface_attr(name, "tun_flags")] = "0x1002\n";
    fs_.files[kPaths.net_interface_attr(name, "owner")] = owner + "\n";
    fs_.files[kPaths.net_interface_attr(name, "group")] = group + "\n";
  }
  Status check(const std::string& name) { return check_tap_for_user(fs_, kPaths, kUser, name, "nets[0].tap.tap_name"); }
  FakeFilesystem fs_;
};

TEST_F(TapForUser, ATapMadeForTheUserOrItsGroupOrNobodyOpens) {
  tap("mine", "1234", "-1");
  tap("ours", "-1", "36");
  tap("anyones", "-1", "-1");
  EXPECT_TRUE(check("mine"));
  EXPECT_TRUE(check("ours"));
  EXPECT_TRUE(check("anyones"));
  auto owner = sys::read_tap_owner(fs_, kPaths, "mine");
  ASSERT_TRUE(owner) << owner.error().to_string();
  EXPECT_EQ(owner->uid, std::optional<uid_t>(1234));
  EXPECT_FALSE(owner->gid);
}

TEST_F(TapForUser, AnotherUsersTapIsRefusedNamingOwnerUserAndWhatToDo) {
  tap("roots", "0", "-1");
  auto refused = check("roots");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(refused.error().message,
            "nets[0].tap.tap_name: user qemu-user (uid 1234) cannot open tap 'roots': it is made for uid 0 (feosd "
            "does not change an existing tap's owner): create it for that user (ip tuntap add roots mode tap user "
            "qemu-user), or leave the name free for feosd to create when the NIC is attached to a running VM");
  tap("theirs", "1234", "99");  // the right owner, a group the user is not in
  EXPECT_FALSE(check("theirs"));
}

TEST_F(TapForUser, AMissingTapOrAnInterfaceThatIsNoTapIsRefused) {
  auto missing = check("gone");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(missing.error().message,
            "nets[0].tap.tap_name: tap 'gone' does not exist, and qemu, running as user qemu-user (uid 1234), "
            "cannot create it: create it for that user (ip tuntap add gone mode tap user qemu-user)");
  fs_.files[kPaths.net_interface("br0")] = "";  // a bridge: no tun_flags
  auto bridge = check("br0");
  ASSERT_FALSE(bridge);
  EXPECT_EQ(bridge.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(bridge.error().message, "nets[0].tap.tap_name: network interface 'br0' is not a tap");
  tap("odd", "x1", "-1");
  auto odd = check("odd");
  ASSERT_FALSE(odd);
  EXPECT_EQ(odd.error().code, Code::kInternal) << odd.error().to_string();
}

}  // namespace
}  // namespace feos::vmm::qemu
