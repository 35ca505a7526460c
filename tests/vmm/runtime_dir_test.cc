// A VM's runtime directory: the file layout, the pidfile lock check, stale files, the ignition
// file, the daemon's logs and the tail of qemu.log that error messages quote.
#include "vmm/qemu/runtime_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::HasSubstr;
using ::feos::test::TempDir;

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(RuntimeDir, HasTheFixedFileNames) {
  RuntimeDir dir("/run/feos/vms/vm-1");
  EXPECT_EQ(dir.path(), "/run/feos/vms/vm-1");
  EXPECT_EQ(dir.files().qmp_socket, "/run/feos/vms/vm-1/qmp.sock");
  EXPECT_EQ(dir.files().console_socket, "/run/feos/vms/vm-1/console.sock");
  EXPECT_EQ(dir.files().pid_file, "/run/feos/vms/vm-1/qemu.pid");
  EXPECT_EQ(dir.files().ignition_file, "/run/feos/vms/vm-1/ignition.json");
  EXPECT_EQ(dir.files().qemu_log, "/run/feos/vms/vm-1/qemu.log");
  EXPECT_EQ(dir.files().console_log, "/run/feos/vms/vm-1/console.log");
}

TEST(RuntimeDir, LogTailJoinsTheLinesSinceTheOffset) {
  TempDir run;
  RuntimeDir dir(run.path());
  EXPECT_EQ(dir.qemu_log_size(), 0);
  EXPECT_EQ(dir.qemu_log_tail(0), "");  // no qemu.log
  std::ofstream(dir.files().qemu_log) << "from an earlier process\n";
  off_t offset = dir.qemu_log_size();
  EXPECT_EQ(offset, 24);
  EXPECT_EQ(dir.qemu_log_tail(offset), "");  // nothing new
  std::ofstream(dir.files().qemu_log, std::ios::app)
      << "qemu-system-x86_64: -kernel /k: could not load\n\n   \r\nsecond line  \n";
  EXPECT_EQ(dir.qemu_log_tail(offset), "qemu-system-x86_64: -kernel /k: could not load | second line");
  EXPECT_EQ(dir.qemu_log_tail(0), "from an earlier process | qemu-system-x86_64: -kernel /k: could not "
                                  "load | second line");
}

TEST(RuntimeDir, LogTailEscapesControlBytes) {
  TempDir run;
  RuntimeDir dir(run.path());
  std::ofstream(dir.files().qemu_log) << "bad \x1b[31mred\x07 line\n";
  EXPECT_EQ(dir.qemu_log_tail(0), "bad \\x1b[31mred\\x07 line");
}

TEST(RuntimeDir, LogTailKeepsOnlyTheLastBytesAndDropsACutLine) {
  TempDir run;
  RuntimeDir dir(run.path());
  {
    std::ofstream log(dir.files().qemu_log);
    for (int i = 0; i < 100; ++i) log << "line " << i << " of qemu's output\n";  // ~2.2 KB
  }
  std::string tail = dir.qemu_log_tail(0);
  // Whole lines only, from the last 600 bytes (about 24 lines of 25 bytes).
  EXPECT_THAT(tail, ::testing::MatchesRegex("line [0-9]+ of qemu's output( \\| line [0-9]+ of qemu's output)+"));
  EXPECT_THAT(tail, ::testing::EndsWith(" | line 99 of qemu's output"));
  EXPECT_THAT(tail, HasSubstr("line 80 "));
  EXPECT_THAT(tail, ::testing::Not(HasSubstr("line 70 ")));
}

// With run_as, qemu's user can create entries in the directory: a link planted at qemu.log is
// not followed.
TEST(RuntimeDir, LogTailDoesNotFollowALink) {
  TempDir run, elsewhere;
  std::ofstream(elsewhere / "secret") << "host secret\n";
  RuntimeDir dir(run.path());
  std::filesystem::create_symlink(elsewhere / "secret", dir.files().qemu_log);
  EXPECT_EQ(dir.qemu_log_tail(0), "");
}

TEST(RuntimeDir, RemovesStaleSocketsAndPidfile) {
  TempDir run;
  RuntimeDir dir(run.path());
  EXPECT_TRUE(dir.remove_stale());  // none there: fine
  for (const auto* path : {&dir.files().qmp_socket, &dir.files().console_socket, &dir.files().pid_file,
                           &dir.files().qemu_log})
    std::ofstream(*path) << "x";
  ASSERT_TRUE(dir.remove_stale());
  EXPECT_FALSE(std::filesystem::exists(dir.files().qmp_socket));
  EXPECT_FALSE(std::filesystem::exists(dir.files().console_socket));
  EXPECT_FALSE(std::filesystem::exists(dir.files().pid_file));
  EXPECT_TRUE(std::filesystem::exists(dir.files().qemu_log));  // the daemon's log stays
}

TEST(RuntimeDir, WritesTheIgnitionFilePrivately) {
  TempDir run, elsewhere;
  RuntimeDir dir(run.path());
  ASSERT_TRUE(dir.write_ignition("{\"ignition\": {}}"));
  EXPECT_EQ(read(dir.files().ignition_file), "{\"ignition\": {}}");
  EXPECT_EQ(mode_of(dir.files().ignition_file), 0600u);
  ASSERT_TRUE(dir.write_ignition("{}"));  // truncated, not appended
  EXPECT_EQ(read(dir.files().ignition_file), "{}");
  // Never through a link planted at its name.
  std::filesystem::remove(dir.files().ignition_file);
  std::filesystem::create_symlink(elsewhere / "target", dir.files().ignition_file);
  auto written = dir.write_ignition("{}");
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().code, Code::kInternal);
  EXPECT_THAT(written.error().message, HasSubstr("create " + dir.files().ignition_file + ": "));
  EXPECT_FALSE(std::filesystem::exists(elsewhere / "target"));
}

TEST(RuntimeDir, CreatesTheLogsOnceAndKeepsWhatTheyHold) {
  TempDir run;
  RuntimeDir dir(run.path());
  ::umask(022);
  ASSERT_TRUE(dir.create_logs());
  EXPECT_EQ(mode_of(dir.files().qemu_log), 0640u);
  EXPECT_EQ(mode_of(dir.files().console_log), 0640u);
  std::ofstream(dir.files().qemu_log) << "earlier output\n";
  ASSERT_TRUE(dir.create_logs());
  EXPECT_EQ(read(dir.files().qemu_log), "earlier output\n");
}

TEST(RuntimeDir, PidFileHolderIsTheProcessHoldingItsLock) {
  TempDir run;
  RuntimeDir dir(run.path());
  EXPECT_EQ(*dir.pid_file_holder(), 0);  // no file
  std::ofstream(dir.files().pid_file) << "4242\n";
  EXPECT_EQ(*dir.pid_file_holder(), 0);  // a file a dead qemu left: nobody holds it

  // A child locks it as qemu does (F_SETLK write lock for its lifetime).
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int fd = ::open(dir.files().pid_file.c_str(), O_RDWR);
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    char ok = fd >= 0 && ::fcntl(fd, F_SETLK, &lock) == 0 ? 'y' : 'n';
    (void)!::write(ready[1], &ok, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char ok = 0;
  ASSERT_EQ(::read(ready[0], &ok, 1), 1);
  ::close(ready[0]);
  EXPECT_EQ(ok, 'y');
  EXPECT_EQ(*dir.pid_file_holder(), child);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_EQ(*dir.pid_file_holder(), 0);  // the lock went with the process
}

TEST(RuntimeDir, APidFileThatCannotBeInspectedIsNeverNobodys) {
  TempDir run, elsewhere;
  RuntimeDir dir(run.path());
  std::ofstream(elsewhere / "pid") << "1\n";
  std::filesystem::create_symlink(elsewhere / "pid", dir.files().pid_file);  // planted by qemu's user
  auto holder = dir.pid_file_holder();
  ASSERT_FALSE(holder);
  EXPECT_EQ(holder.error().code, Code::kFailedPrecondition);
  EXPECT_THAT(holder.error().message, HasSubstr("inspect the pidfile " + dir.files().pid_file + ": "));
}

}  // namespace
}  // namespace feos::vmm::qemu
