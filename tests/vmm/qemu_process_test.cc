// One qemu process (QemuProcess) with a fake launcher, and a fake QMP server and console socket
// standing in for qemu: the stop ladder, why a process ended, and how a start that failed after
// launch is ended and reported.
#include "vmm/qemu/qemu_process.h"

#include <signal.h>

#include <chrono>
#include <fstream>
#include <future>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_qemu_sockets.h"
#include "fake_sys.h"
#include "support/temp_dir.h"

namespace feos::vmm::qemu {
namespace {

using namespace std::chrono_literals;
using testing::FakeLauncher;
using testing::FakePermissions;
using testing::FakeQemuSockets;
using ::feos::test::TempDir;
using Signals = std::vector<std::pair<int, int>>;

constexpr int kPid = 4242;

class QemuProcessUnit : public ::testing::Test {
 protected:
  std::unique_ptr<QemuProcess> make(std::chrono::milliseconds stop_grace) {
    return std::make_unique<QemuProcess>("vm-1", RuntimeDir(run_.path()), Accel::kTcg,
                                         QemuProcess::Context{launcher_, permissions_, 2000ms, stop_grace});
  }
  // Its exit runs the watcher's steps in order, as QemuHypervisor's watcher does.
  void watch(QemuProcess& vm) {
    QemuProcess* raw = &vm;
    ASSERT_TRUE(vm.watch([this, raw](const sys::ExitStatus& status) {
      if (!raw->mark_exited(status)) return;  // not attached: the start reports it
      exit_ = raw->wind_down();
      raw->finish();
    }));
  }
  // pid 4242 launched and watched, not connected yet: a start in progress.
  std::unique_ptr<QemuProcess> launched(std::chrono::milliseconds stop_grace = 100ms) {
    launcher_.on_launch = [this](const sys::LaunchSpec&) -> Result<int> {
      launcher_.alive[kPid] = true;
      return kPid;
    };
    auto vm = make(stop_grace);
    EXPECT_TRUE(vm->launch({"qemu-system-x86_64", "-S"}, 0, {}, std::nullopt));
    watch(*vm);
    return vm;
  }
  // pid 4242 adopted, connected and attached.
  std::unique_ptr<QemuProcess> running(std::chrono::milliseconds stop_grace = 100ms) {
    launcher_.alive[kPid] = true;
    auto vm = make(stop_grace);
    vm->adopt(kPid);
    watch(*vm);
    EXPECT_TRUE(vm->connect(2000ms));
    EXPECT_TRUE(vm->attach());
    return vm;
  }
  // Ends pid 4242 the way the launcher's watcher reports it; qemu's sockets go first.
  void end_process(sys::ExitStatus status) {
    sockets_.reset();
    launcher_.alive[kPid] = false;
    launcher_.watchers.at(kPid)(status);
  }

  TempDir run_;
  FakeLauncher launcher_;
  FakePermissions permissions_;
  std::unique_ptr<FakeQemuSockets> sockets_ = std::make_unique<FakeQemuSockets>(run_.path());
  std::optional<ExitInfo> exit_;  // what wind_down() said
};

TEST_F(QemuProcessUnit, StopEndsACooperativeProcessWithQuitAlone) {
  std::promise<void> quit;
  sockets_ = std::make_unique<FakeQemuSockets>(
      run_.path(), [&](testing::FakeQmpServer& server, const nlohmann::json& request) {
        FakeQemuSockets::answer_like_qemu(server, request);
        if (request["execute"] == "quit") {
          server.close_client();
          quit.set_value();
        }
      });
  auto vm = running(10s);  // a long grace: only quit ends it in time
  std::thread qemu([&] {
    if (quit.get_future().wait_for(10s) != std::future_status::ready) return;
    launcher_.alive[kPid] = false;
    launcher_.watchers.at(kPid)(sys::ExitStatus{true, 0, 0});
  });
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(vm->stop());
  qemu.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_TRUE(launcher_.signals.empty());
  ASSERT_TRUE(exit_);
  EXPECT_TRUE(exit_->clean);
  EXPECT_EQ(exit_->reason, "stopped on request");
}

TEST_F(QemuProcessUnit, StopEscalatesToSigtermThenSigkill) {
  auto vm = running(50ms);
  // This qemu ignores quit and SIGTERM; SIGKILL ends it.
  std::vector<std::string> asked_before_sigterm;
  launcher_.on_signal = [&](int, int sig) {
    if (sig == SIGTERM)
      for (const auto& request : sockets_->qmp.requests()) asked_before_sigterm.push_back(request["execute"].get<std::string>());
    if (sig == SIGKILL) end_process({true, -1, SIGKILL});
  };
  EXPECT_TRUE(vm->stop());
  EXPECT_EQ(launcher_.signals, (Signals{{kPid, SIGTERM}, {kPid, SIGKILL}}));
  EXPECT_THAT(asked_before_sigterm, ::testing::Contains("quit"));
  ASSERT_TRUE(exit_);
  EXPECT_TRUE(exit_->clean);  // asked for: a clean end, however it came
  EXPECT_EQ(exit_->reason, "stopped on request");
}

TEST_F(QemuProcessUnit, AProcessThatSurvivesSigkillIsReported) {
  auto vm = running(30ms);
  auto stopped = vm->stop();
  ASSERT_FALSE(stopped);
  EXPECT_EQ(stopped.error().code, Code::kInternal);
  EXPECT_EQ(stopped.error().message, "vm vm-1: qemu pid 4242 did not exit after SIGKILL");
  EXPECT_EQ(launcher_.signals, (Signals{{kPid, SIGTERM}, {kPid, SIGKILL}}));
  EXPECT_FALSE(exit_);
}

TEST_F(QemuProcessUnit, AGuestPowerOffIsClean) {
  auto vm = running();
  sockets_->qmp.event("SHUTDOWN", {{"guest", true}, {"reason", "guest-shutdown"}});
  end_process({true, 0, 0});
  ASSERT_TRUE(exit_);
  EXPECT_TRUE(exit_->clean);
  EXPECT_EQ(exit_->reason, "guest powered off");
  EXPECT_EQ(vm->check_attached().error().message, "vm vm-1: qemu has exited");
}

TEST_F(QemuProcessUnit, AnUnaskedEndIsNotCleanAndQuotesWhatThisProcessLogged) {
  std::ofstream(run_ / "qemu.log") << "from an earlier process\n";
  auto vm = running();  // its own output starts here
  std::ofstream(run_ / "qemu.log", std::ios::app) << "qemu-system-x86_64: terminating on signal 15\n";
  sockets_->qmp.event("SHUTDOWN", {{"guest", false}, {"reason", "host-signal"}});
  end_process({true, 1, 0});
  ASSERT_TRUE(exit_);
  EXPECT_FALSE(exit_->clean);
  EXPECT_EQ(exit_->reason,
            "qemu exited with status 1 after shutdown (reason host-signal); qemu.log: "
            "qemu-system-x86_64: terminating on signal 15");
}

TEST_F(QemuProcessUnit, WhatItsUserWasGivenGoesBackAtTheExit) {
  auto vm = running();
  vm->grants().take_over({{run_.path(), kRootDir}, {"/fake/dev/vfio/40", kRootPrivate}});
  end_process({true, 0, 0});
  EXPECT_THAT(permissions_.history(),
              ::testing::ElementsAre("/fake/dev/vfio/40 0:0/0600", run_.path() + " 0:0/0755"));
}

TEST_F(QemuProcessUnit, LaunchesWithItsOutputInQemuLog) {
  auto vm = launched();
  EXPECT_EQ(vm->pid(), kPid);
  EXPECT_EQ(launcher_.last.output_path, run_ / "qemu.log");
  EXPECT_EQ(launcher_.last.argv, (std::vector<std::string>{"qemu-system-x86_64", "-S"}));
  auto starting = vm->check_attached();
  ASSERT_FALSE(starting);
  EXPECT_EQ(starting.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(starting.error().message, "vm vm-1: qemu is still starting");
}

// qemu ended on its own before start() gave up (a bad option, a missing file): its exit is the
// cause, and it is not signalled.
TEST_F(QemuProcessUnit, AFailedStartOfAProcessThatExitedReportsItsExit) {
  auto vm = launched();
  std::ofstream(run_ / "qemu.log") << "qemu-system-x86_64: -device foo: 'foo' is not a valid device model name\n";
  launcher_.alive[kPid] = false;
  launcher_.watchers.at(kPid)(sys::ExitStatus{true, 1, 0});
  EXPECT_FALSE(exit_);  // not attached: the watcher left it to the start
  EXPECT_FALSE(vm->attach());
  Error error = vm->end_failed_start(Error{Code::kUnavailable, "qmp: connection closed"});
  EXPECT_EQ(error.code, Code::kInternal);
  EXPECT_EQ(error.message,
            "vm vm-1: qemu exited with status 1 during start; qemu.log: qemu-system-x86_64: -device "
            "foo: 'foo' is not a valid device model name");
  EXPECT_TRUE(launcher_.signals.empty());
}

TEST_F(QemuProcessUnit, AFailedStartOfALiveProcessKillsIt) {
  auto vm = launched();
  launcher_.on_signal = [&](int pid, int sig) {
    if (sig != SIGKILL) return;
    launcher_.alive[pid] = false;
    launcher_.watchers.at(pid)(sys::ExitStatus{true, -1, SIGKILL});
  };
  Error error = vm->end_failed_start(Error{Code::kDeadlineExceeded, "qmp: no greeting"});
  EXPECT_EQ(error.code, Code::kDeadlineExceeded);
  EXPECT_EQ(error.message, "vm vm-1: qemu start failed: qmp: no greeting");
  EXPECT_EQ(launcher_.signals, (Signals{{kPid, SIGKILL}}));
}

TEST_F(QemuProcessUnit, AFailedStartOfAProcessThatWillNotDieSaysSo) {
  auto vm = launched(30ms);
  Error error = vm->end_failed_start(Error{Code::kDeadlineExceeded, "qmp: no greeting"});
  EXPECT_EQ(error.message,
            "vm vm-1: qemu start failed: qmp: no greeting (pid 4242 did not exit after SIGKILL)");
}

}  // namespace
}  // namespace feos::vmm::qemu
