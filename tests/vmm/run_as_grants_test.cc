// What a run-as qemu's user is given and given back (RunAsGrants), what an adopted qemu's user was
// given, and what the user must reach before launch; on fake permissions and a fake /proc and sysfs.
#include "vmm/qemu/run_as_grants.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_sys.h"
#include "gpu_fixtures.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::ElementsAre;
using testing::FakeFilesystem;
using testing::FakePermissions;

const sys::RunAs kUser{"qemu-user", 1234, 2345, {2345}};
const sys::HostPaths kPaths{"/fake/sys", "/fake/dev", "/fake/proc"};

TEST(RunAsGrants, GivesInOrderAndTakesBackNewestFirst) {
  FakePermissions permissions;
  RunAsGrants grants(permissions, "vm-1");
  RuntimeDir dir("/run/vm-1");
  ASSERT_TRUE(grants.grant(kUser, dir, true, true, {"/fake/dev/vfio/40", "/fake/dev/vfio/41"}));
  EXPECT_THAT(permissions.history(),
              ElementsAre("/run/vm-1 0:2345/1770", "/run/vm-1/ignition.json 0:2345/0640",
                          "/run/vm-1/uefi-vars.fd 1234:2345/0600",
                          "/fake/dev/vfio/40 1234:2345/0600", "/fake/dev/vfio/41 1234:2345/0600"));
  ASSERT_EQ(grants.recorded().size(), 5u);
  permissions.changes.clear();
  grants.give_back();
  EXPECT_THAT(permissions.history(),
              ElementsAre("/fake/dev/vfio/41 0:0/0600", "/fake/dev/vfio/40 0:0/0600",
                          "/run/vm-1/uefi-vars.fd 0:0/0600", "/run/vm-1/ignition.json 0:0/0600",
                          "/run/vm-1 0:0/0755"));
  // Given back once: the ledger is empty now.
  EXPECT_TRUE(grants.recorded().empty());
  permissions.changes.clear();
  grants.give_back();
  EXPECT_TRUE(permissions.changes.empty());
}

TEST(RunAsGrants, WithoutIgnitionOrUefiTheirFilesAreNotGiven) {
  FakePermissions permissions;
  RunAsGrants grants(permissions, "vm-1");
  ASSERT_TRUE(grants.grant(kUser, RuntimeDir("/run/vm-1"), false, false, {}));
  EXPECT_THAT(permissions.history(), ElementsAre("/run/vm-1 0:2345/1770"));
}

// A path is recorded before its owner changes: one whose chown failed half-way goes back too.
TEST(RunAsGrants, AFailedGrantStopsAndWhatWasGivenGoesBack) {
  FakePermissions permissions;
  permissions.refuse_path = "/fake/dev/vfio/41";
  RunAsGrants grants(permissions, "vm-1");
  auto granted = grants.grant(kUser, RuntimeDir("/run/vm-1"), false, false,
                              {"/fake/dev/vfio/40", "/fake/dev/vfio/41", "/fake/dev/vfio/42"});
  ASSERT_FALSE(granted);
  EXPECT_EQ(granted.error().code, Code::kPermissionDenied);
  EXPECT_EQ(granted.error().message, "chown /fake/dev/vfio/41: refused");
  EXPECT_EQ(permissions.owner_of("/fake/dev/vfio/42"), "-");  // never touched
  permissions.refuse_path.clear();
  permissions.changes.clear();
  grants.give_back();
  EXPECT_THAT(permissions.history(),
              ElementsAre("/fake/dev/vfio/41 0:0/0600", "/fake/dev/vfio/40 0:0/0600",
                          "/run/vm-1 0:0/0755"));
}

// A group node that went away with its unbind, or a path that cannot be given back, does not
// stop the others from going back.
TEST(RunAsGrants, GiveBackGoesOnPastFailures) {
  FakePermissions permissions;
  RunAsGrants grants(permissions, "vm-1");
  ASSERT_TRUE(grants.grant(kUser, RuntimeDir("/run/vm-1"), false, false,
                           {"/fake/dev/vfio/40", "/fake/dev/vfio/41"}));
  permissions.gone_path = "/fake/dev/vfio/41";
  permissions.refuse_path = "/fake/dev/vfio/40";
  grants.give_back();
  EXPECT_EQ(permissions.owner_of("/run/vm-1"), "0:0/0755");
  EXPECT_TRUE(grants.recorded().empty());
}

TEST(RunAsGrants, TakesOverWhatAnEarlierDaemonGave) {
  FakePermissions permissions;
  RunAsGrants grants(permissions, "vm-1");
  grants.take_over({{"/run/vm-1", kRootDir}, {"/fake/dev/vfio/40", kRootPrivate}});
  EXPECT_TRUE(permissions.changes.empty());  // nothing changes until the process ends
  grants.give_back();
  EXPECT_THAT(permissions.history(), ElementsAre("/fake/dev/vfio/40 0:0/0600", "/run/vm-1 0:0/0755"));
}

TEST(RunAsGrants, VfioGroupNodesAreDistinctAndInOrder) {
  auto gpus = testing::hgx_h100s(2);  // groups 40, 41
  gpus[1].group_peers.push_back(testing::connectx7("0000:2b:00.0", 41));
  gpus[0].group_peers.push_back(testing::connectx7("0000:19:00.0", 39));
  EXPECT_THAT(vfio_group_nodes(kPaths, gpus),
              ElementsAre("/fake/dev/vfio/40", "/fake/dev/vfio/39", "/fake/dev/vfio/41"));
  EXPECT_TRUE(vfio_group_nodes(kPaths, {}).empty());
}

class AdoptedGrants : public ::testing::Test {
 protected:
  std::vector<std::string> paths_of(const std::vector<Grant>& grants) {
    std::vector<std::string> out;
    for (const auto& grant : grants)
      out.push_back(grant.path + " " + FakePermissions::describe(grant.back));
    return out;
  }
  FakeFilesystem fs_;
  RuntimeDir dir_{"/run/vm-1"};
  std::vector<pci::Address> functions_{pci::Address(0, 0x18, 0, 0), pci::Address(0, 0x2b, 0, 0),
                                       pci::Address(0, 0x2b, 0, 1)};
};

TEST_F(AdoptedGrants, AQemuOfAnotherUserHadTheDirItsIgnitionAndItsGroupNodes) {
  fs_.files["/fake/proc/4242/status"] = "Name:\tqemu-system-x86\nUid:\t1234\t1234\t1234\t1234\n";
  fs_.files["/run/vm-1/ignition.json"] = "{}";
  fs_.links["/fake/sys/bus/pci/devices/0000:18:00.0/iommu_group"] = "../../../kernel/iommu_groups/40";
  fs_.links["/fake/sys/bus/pci/devices/0000:2b:00.0/iommu_group"] = "../../../kernel/iommu_groups/41";
  fs_.links["/fake/sys/bus/pci/devices/0000:2b:00.1/iommu_group"] = "../../../kernel/iommu_groups/41";
  EXPECT_THAT(paths_of(adopted_grants(fs_, kPaths, 4242, functions_, dir_, "vm-1")),
              ElementsAre("/run/vm-1 0:0/0755", "/run/vm-1/ignition.json 0:0/0600",
                          "/fake/dev/vfio/40 0:0/0600", "/fake/dev/vfio/41 0:0/0600"));
}

TEST_F(AdoptedGrants, AFunctionWithoutAGroupIsSkipped) {
  fs_.files["/fake/proc/4242/status"] = "Name:\tqemu-system-x86\nUid:\t1234\t1234\t1234\t1234\n";
  fs_.links["/fake/sys/bus/pci/devices/0000:2b:00.0/iommu_group"] = "../../../kernel/iommu_groups/41";
  fs_.links["/fake/sys/bus/pci/devices/0000:2b:00.1/iommu_group"] = "../../../kernel/iommu_groups/4x";
  EXPECT_THAT(paths_of(adopted_grants(fs_, kPaths, 4242, functions_, dir_, "vm-1")),
              ElementsAre("/run/vm-1 0:0/0755", "/fake/dev/vfio/41 0:0/0600"));
}

TEST_F(AdoptedGrants, ARootQemuOrAnUnreadableOneHadNothing) {
  fs_.links["/fake/sys/bus/pci/devices/0000:18:00.0/iommu_group"] = "../../../kernel/iommu_groups/40";
  EXPECT_TRUE(adopted_grants(fs_, kPaths, 4242, functions_, dir_, "vm-1").empty());  // no status
  fs_.files["/fake/proc/4242/status"] = "Name:\tqemu-system-x86\nUid:\t0\t0\t0\t0\n";
  EXPECT_TRUE(adopted_grants(fs_, kPaths, 4242, functions_, dir_, "vm-1").empty());
  fs_.files["/fake/proc/4242/status"] = "Name:\tqemu-system-x86\n";
  EXPECT_TRUE(adopted_grants(fs_, kPaths, 4242, functions_, dir_, "vm-1").empty());
}

TEST(RunAsAccessChecks, NameWhatTheUserMustReach) {
  CheckedFiles files;
  files.spec.boot.kernel = "/requested/vmlinuz";
  files.spec.disks = {{"seed", "/requested/seed.iso", true}};
  files.spec.memory.hugepages = true;
  files.kernel = "/resolved/vmlinuz";
  files.images.disks = {{{"/resolved/seed.iso", model::DiskFormat::kRaw, ""}}};
  auto checks = run_as_access_checks(files, RuntimeDir("/run/vm-1"), {"/fake/dev/vfio/40"}, kPaths, false,
                                     std::nullopt, "/fake/dev/hugepages-1G");
  std::vector<std::string> asked;
  for (const auto& check : checks)
    asked.push_back(check.what + " " + sys::access_verb(check.access) + " " + check.path + " (" +
                    check.shown + ")");
  EXPECT_THAT(asked, ElementsAre("vfio group read and write /fake/dev/vfio/40 ()",
                                 "config.boot.kernel read /resolved/vmlinuz (/requested/vmlinuz)",
                                 "config.disks[0].path read /resolved/seed.iso (/requested/seed.iso)",
                                 "runtime dir create files in /run/vm-1 ()",
                                 "config.memory.hugepages create files in /fake/dev/hugepages-1G ()"));
}

TEST(RunAsAccessChecks, AUefiGuestNeedsItsFirmwareAndItsVariableStore) {
  CheckedFiles files;
  UefiFirmware uefi{.descriptor = "/usr/share/qemu/firmware/60-edk2-x86_64.json",
                    .code = "/usr/share/OVMF/OVMF_CODE_4M.fd",
                    .vars_template = "/usr/share/OVMF/OVMF_VARS_4M.fd"};
  auto checks = run_as_access_checks(files, RuntimeDir("/run/vm-1"), {}, kPaths, false, uefi, "");
  std::vector<std::string> asked;
  for (const auto& check : checks) asked.push_back(check.what + " " + sys::access_verb(check.access) + " " + check.path);
  EXPECT_THAT(asked, ElementsAre("runtime dir create files in /run/vm-1",
                                 "UEFI firmware read /usr/share/OVMF/OVMF_CODE_4M.fd",
                                 "UEFI variable store read and write /run/vm-1/uefi-vars.fd"));
}

}  // namespace
}  // namespace feos::vmm::qemu
