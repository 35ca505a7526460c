// resolve_user(), PosixPermissions and the launcher's identity change, against the real kernel.
// The identity tests need root (the daemon runs as root); they skip otherwise.
#include <fcntl.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sys/permissions.h"
#include "sys/process.h"
#include "sys/run_as.h"
#include "support/proc_status.h"
#include "support/temp_dir.h"

namespace feos::sys {
namespace {

using ::testing::HasSubstr;

using feos::test::TempDir;

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

using feos::test::status_field;

struct stat stat_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

// nobody as the password database has it, read with getpwnam (not the code under test).
struct passwd nobody_entry() {
  struct passwd* entry = ::getpwnam("nobody");
  if (entry == nullptr) throw std::runtime_error("no user nobody on this host");
  return *entry;
}

class RootOnly : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to change identities and owners";
    auto user = resolve_user("nobody");
    ASSERT_TRUE(user) << user.error().to_string();
    nobody_ = *user;
  }
  RunAs nobody_;
};

TEST(ResolveUser, Nobody) {
  auto expected = nobody_entry();
  auto user = resolve_user("nobody");
  ASSERT_TRUE(user) << user.error().to_string();
  EXPECT_EQ(user->name, "nobody");
  EXPECT_EQ(user->uid, expected.pw_uid);
  EXPECT_EQ(user->gid, expected.pw_gid);
  EXPECT_NE(user->uid, 0u);
  EXPECT_THAT(user->groups, ::testing::Contains(expected.pw_gid));
  EXPECT_EQ(user->describe(), "user nobody (uid " + std::to_string(expected.pw_uid) + ")");
}

TEST(ResolveUser, RefusesRoot) {
  auto user = resolve_user("root");
  ASSERT_FALSE(user);
  EXPECT_EQ(user.error().code, Code::kInvalidArgument);
  EXPECT_EQ(user.error().message, "user root has uid 0: refusing to run as root");
}

TEST(ResolveUser, UnknownAndEmpty) {
  auto user = resolve_user("feos-no-such-user");
  ASSERT_FALSE(user);
  EXPECT_EQ(user.error().code, Code::kNotFound);
  EXPECT_EQ(user.error().message, "user feos-no-such-user not found");
  EXPECT_EQ(resolve_user("").error().code, Code::kInvalidArgument);
}

using PermissionsTest = RootOnly;

TEST_F(PermissionsTest, SetOwnerChangesOwnerGroupAndMode) {
  TempDir dir;
  std::ofstream(dir / "node") << "";
  auto permissions = make_posix_permissions();
  ASSERT_TRUE(permissions->set_owner(dir / "node", {nobody_.uid, nobody_.gid, 0600}));
  auto st = stat_of(dir / "node");
  EXPECT_EQ(st.st_uid, nobody_.uid);
  EXPECT_EQ(st.st_gid, nobody_.gid);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // A sticky group directory, and back to root.
  ::mkdir((dir / "run").c_str(), 0755);
  ASSERT_TRUE(permissions->set_owner(dir / "run", {0, nobody_.gid, 01770}));
  st = stat_of(dir / "run");
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, nobody_.gid);
  EXPECT_EQ(st.st_mode & 07777, 01770u);
  ASSERT_TRUE(permissions->set_owner(dir / "run", {0, 0, 0755}));
  EXPECT_EQ(stat_of(dir / "run").st_gid, 0u);
  EXPECT_EQ(stat_of(dir / "run").st_mode & 07777, 0755u);
}

TEST_F(PermissionsTest, SetOwnerDoesNotOpenTheNode) {
  // A FIFO blocks an open for reading until a writer comes: set_owner must not open it (a vfio
  // group node allows one opener, and opening it has effects).
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  auto permissions = make_posix_permissions();
  ASSERT_TRUE(permissions->set_owner(dir / "fifo", {nobody_.uid, nobody_.gid, 0660}));
  EXPECT_EQ(stat_of(dir / "fifo").st_uid, nobody_.uid);
  EXPECT_EQ(stat_of(dir / "fifo").st_mode & 07777, 0660u);
}

TEST_F(PermissionsTest, SetOwnerRefusesLinksAndMissingPaths) {
  TempDir dir;
  std::ofstream(dir / "target") << "";
  std::filesystem::create_symlink(dir / "target", dir / "link");
  auto permissions = make_posix_permissions();
  auto linked = permissions->set_owner(dir / "link", {nobody_.uid, nobody_.gid, 0666});
  ASSERT_FALSE(linked);
  EXPECT_EQ(linked.error().code, Code::kInvalidArgument);
  EXPECT_THAT(linked.error().message, HasSubstr(dir / "link"));
  EXPECT_EQ(stat_of(dir / "target").st_uid, 0u);  // the target is untouched
  EXPECT_NE(stat_of(dir / "target").st_mode & 07777, 0666u);
  auto missing = permissions->set_owner(dir / "nope", {nobody_.uid, nobody_.gid, 0600});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr(dir / "nope"));
}

TEST_F(PermissionsTest, CheckAccessUsesTheUsersIdentity) {
  TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  std::ofstream(dir / "private") << "secret";
  ::chmod((dir / "private").c_str(), 0600);
  std::ofstream(dir / "public") << "hello";
  ::chmod((dir / "public").c_str(), 0644);
  ::mkdir((dir / "run").c_str(), 0755);
  auto permissions = make_posix_permissions();

  // Root could do all of this; the user can read the public file only.
  EXPECT_TRUE(permissions->check_access(nobody_, {{"kernel", dir / "public", Access::kRead}}));
  auto denied = permissions->check_access(
      nobody_, {{"kernel", dir / "public", Access::kRead}, {"image", dir / "public", Access::kReadWrite}});
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(denied.error().message, "image: " + nobody_.describe() + " cannot read and write '" +
                                        (dir / "public") + "': Permission denied");
  denied = permissions->check_access(nobody_, {{"initrd", dir / "private", Access::kRead}});
  ASSERT_FALSE(denied);
  EXPECT_THAT(denied.error().message, HasSubstr("cannot read '" + (dir / "private") + "'"));
  denied = permissions->check_access(nobody_, {{"runtime dir", dir / "run", Access::kCreateIn}});
  ASSERT_FALSE(denied);
  EXPECT_THAT(denied.error().message, HasSubstr("cannot create files in '" + (dir / "run") + "'"));

  // Given to the user's group as a sticky directory, it can create files there.
  ASSERT_TRUE(permissions->set_owner(dir / "run", {0, nobody_.gid, 01770}));
  EXPECT_TRUE(permissions->check_access(nobody_, {{"runtime dir", dir / "run", Access::kCreateIn}}));
  // A parent the user cannot search hides everything below it.
  ::chmod(dir.path().c_str(), 0700);
  denied = permissions->check_access(nobody_, {{"kernel", dir / "public", Access::kRead}});
  ASSERT_FALSE(denied);
  EXPECT_THAT(denied.error().message, HasSubstr("Permission denied"));
}

TEST_F(PermissionsTest, CheckAccessReportsAnIdentityThatCannotBeTaken) {
  RunAs broken = nobody_;
  broken.groups.assign(70000, nobody_.gid);  // more than the kernel's NGROUPS_MAX (65536)
  auto checked = make_posix_permissions()->check_access(broken, {{"kernel", "/", Access::kRead}});
  ASSERT_FALSE(checked);
  EXPECT_EQ(checked.error().code, Code::kInternal);
  EXPECT_THAT(checked.error().message, HasSubstr("become " + nobody_.describe() + ": setgroups"));
}

using LaunchAs = RootOnly;

// Whether this process holds `capability` in its effective set (/proc/self/status CapEff).
bool has_capability(int capability) {
  std::string value = status_field(read("/proc/self/status"), "CapEff");
  return (std::stoull(value, nullptr, 16) >> capability) & 1;
}

// Waits for `pid` (a child of this process) to end.
void wait_exit(ProcessLauncher& launcher, int pid) {
  for (int i = 0; i < 500 && launcher.is_alive(pid); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_FALSE(launcher.is_alive(pid));
}

// The CPUs a child starts on (qemu: its preallocation threads, before the sandbox forbids changing
// them): set before exec, seen by the child itself.
TEST(Launch, ChildRunsOnTheGivenCpus) {
  cpu_set_t mine;
  ASSERT_EQ(::sched_getaffinity(0, sizeof mine, &mine), 0);
  int last = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &mine)) last = cpu;
  ASSERT_GE(last, 0);
  // On one CPU the child would inherit exactly that one: nothing would show the setting.
  if (CPU_COUNT(&mine) < 2) GTEST_SKIP() << "this process may run on one CPU only";
  TempDir dir;
  auto launcher = make_posix_process_launcher();
  LaunchSpec spec;
  spec.argv = {"/usr/bin/cat", "/proc/self/status"};
  spec.output_path = dir / "out";
  spec.cpus = {last};
  auto pid = launcher->launch(spec);
  ASSERT_TRUE(pid) << pid.error().to_string();
  wait_exit(*launcher, *pid);
  EXPECT_EQ(status_field(read(dir / "out"), "Cpus_allowed_list"), std::to_string(last));
  // A CPU the host does not have: the start fails, naming it.
  spec.cpus = {CPU_SETSIZE - 1};
  auto absent = launcher->launch(spec);
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.error().code, Code::kInternal);
  EXPECT_THAT(absent.error().message, HasSubstr("run on CPUs " + std::to_string(CPU_SETSIZE - 1) + ": Invalid argument"));
  spec.cpus = {CPU_SETSIZE};
  auto beyond = launcher->launch(spec);
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error().code, Code::kInvalidArgument);
}

TEST_F(LaunchAs, ChildRunsWithOnlyTheUsersIdentityAndTheMemlockLimit) {
  TempDir dir;
  auto launcher = make_posix_process_launcher();
  LaunchSpec spec;
  // The child's own view of itself, read by the child (cat as nobody) after the identity change.
  spec.argv = {"/usr/bin/cat", "/proc/self/status", "/proc/self/limits"};
  spec.output_path = dir / "out";
  // Raising the limit takes CAP_SYS_RESOURCE, which only the identity before the drop has; a
  // host (or container) without it can still lower it, which shows the limit is applied.
  rlimit current{};
  ASSERT_EQ(::getrlimit(RLIMIT_MEMLOCK, &current), 0);
  spec.memlock_bytes = has_capability(CAP_SYS_RESOURCE) ? uint64_t{3} << 30 : current.rlim_max / 2;
  spec.run_as = nobody_;
  auto pid = launcher->launch(spec);
  ASSERT_TRUE(pid) << pid.error().to_string();
  wait_exit(*launcher, *pid);
  std::string out = read(dir / "out");
  std::string uid = std::to_string(nobody_.uid), gid = std::to_string(nobody_.gid);
  EXPECT_EQ(status_field(out, "Uid"), uid + " " + uid + " " + uid + " " + uid) << out;
  EXPECT_EQ(status_field(out, "Gid"), gid + " " + gid + " " + gid + " " + gid) << out;
  std::vector<gid_t> sorted = nobody_.groups;  // the kernel lists them sorted
  std::sort(sorted.begin(), sorted.end());
  std::string groups;
  for (gid_t group : sorted) groups += (groups.empty() ? "" : " ") + std::to_string(group);
  EXPECT_EQ(status_field(out, "Groups"), groups) << out;
  EXPECT_EQ(status_field(out, "CapEff"), "0000000000000000") << out;
  std::string limit = std::to_string(spec.memlock_bytes);
  EXPECT_THAT(out, ::testing::ContainsRegex("Max locked memory +" + limit + " +" + limit + " +bytes"));
  // The output file was opened by the daemon's identity.
  EXPECT_EQ(stat_of(dir / "out").st_uid, 0u);
}

TEST_F(LaunchAs, ExecRefusedToTheUserNamesIt) {
  TempDir dir;  // 0700 root: the user cannot reach the program inside
  std::filesystem::copy_file("/usr/bin/true", dir / "true");
  ::chmod((dir / "true").c_str(), 0755);
  auto launcher = make_posix_process_launcher();
  LaunchSpec spec;
  spec.argv = {dir / "true"};
  spec.run_as = nobody_;
  auto pid = launcher->launch(spec);
  ASSERT_FALSE(pid);
  EXPECT_EQ(pid.error().code, Code::kInternal);
  EXPECT_THAT(pid.error().message, HasSubstr("as " + nobody_.describe()));
  EXPECT_THAT(pid.error().message, HasSubstr("Permission denied"));
  // Without run_as, root runs it.
  spec.run_as.reset();
  auto root_pid = launcher->launch(spec);
  ASSERT_TRUE(root_pid) << root_pid.error().to_string();
  wait_exit(*launcher, *root_pid);
}

TEST_F(LaunchAs, IdentityFailureNamesTheUid) {
  auto launcher = make_posix_process_launcher();
  LaunchSpec spec;
  spec.argv = {"/usr/bin/true"};
  spec.run_as = nobody_;
  spec.run_as->groups.assign(70000, nobody_.gid);  // setgroups refuses this many
  auto pid = launcher->launch(spec);
  ASSERT_FALSE(pid);
  EXPECT_EQ(pid.error().code, Code::kInternal);
  EXPECT_THAT(pid.error().message,
              HasSubstr("start /usr/bin/true: become " + nobody_.describe() + " (gid " +
                        std::to_string(nobody_.gid) + "): setgroups: Invalid argument"));
}

TEST_F(LaunchAs, OutputIsNotWrittenThroughALink) {
  TempDir dir;
  std::ofstream(dir / "victim") << "keep";
  std::filesystem::create_symlink(dir / "victim", dir / "out");
  auto launcher = make_posix_process_launcher();
  LaunchSpec spec;
  spec.argv = {"/usr/bin/true"};
  spec.output_path = dir / "out";
  auto pid = launcher->launch(spec);
  ASSERT_FALSE(pid);
  EXPECT_THAT(pid.error().message, HasSubstr(dir / "out"));
  EXPECT_EQ(read(dir / "victim"), "keep");
}

}  // namespace
}  // namespace feos::sys
