#include "sys/spawn.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace feos::sys {
namespace {

// The child's exit status; -1 when it ended otherwise or is not our child.
int wait_exit_code(int pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(SpawnTest, SuccessfulExecIsNoReportAndTheCallerWaits) {
  char* const argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"),
                        const_cast<char*>("exit 3"), nullptr};
  auto spawned = spawn_with_report([&](const ChildReporter& report) {
    ::execv("/bin/sh", argv);
    report.fail(1, errno);
  });
  ASSERT_TRUE(spawned) << spawned.error().to_string();
  EXPECT_GT(spawned->pid, 0);
  EXPECT_FALSE(spawned->failure);
  EXPECT_EQ(wait_exit_code(spawned->pid), 3);
}

TEST(SpawnTest, FailedExecIsReportedAndTheChildReaped) {
  char* const argv[] = {const_cast<char*>("missing"), nullptr};
  auto spawned = spawn_with_report([&](const ChildReporter& report) {
    ::execv("/nonexistent/feos-spawn-test", argv);
    report.fail(7, errno, "execv");
  });
  ASSERT_TRUE(spawned) << spawned.error().to_string();
  ASSERT_TRUE(spawned->failure);
  EXPECT_EQ(spawned->failure->step, 7);
  EXPECT_EQ(spawned->failure->err, ENOENT);
  EXPECT_STREQ(spawned->failure->call, "execv");
  // Already reaped: no child left to wait for.
  EXPECT_EQ(::waitpid(spawned->pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(SpawnTest, ReportWithoutExecAndALongCallNameCut) {
  const std::string long_name(40, 'x');
  auto spawned = spawn_with_report(
      [&](const ChildReporter& report) { report.fail(2, EACCES, long_name.c_str()); });
  ASSERT_TRUE(spawned);
  ASSERT_TRUE(spawned->failure);
  EXPECT_EQ(spawned->failure->step, 2);
  EXPECT_EQ(spawned->failure->err, EACCES);
  EXPECT_EQ(std::string(spawned->failure->call), std::string(31, 'x'));
}

TEST(SpawnTest, ChildThatReturnsExitsZero) {
  auto spawned = spawn_with_report([](const ChildReporter&) {});
  ASSERT_TRUE(spawned);
  EXPECT_FALSE(spawned->failure);
  EXPECT_EQ(wait_exit_code(spawned->pid), 0);
}

TEST(SpawnTest, ChildThatExitsWithoutReportLeavesItsStatusToTheCaller) {
  auto spawned = spawn_with_report([](const ChildReporter&) { ::_exit(5); });
  ASSERT_TRUE(spawned);
  EXPECT_FALSE(spawned->failure);
  EXPECT_EQ(wait_exit_code(spawned->pid), 5);
}

}  // namespace
}  // namespace feos::sys
