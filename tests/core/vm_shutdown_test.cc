// A shutdown that always ends (issue 16): the power button is pressed again while the guest does
// not react, and the VM is powered off when the grace is over. Short graces keep the tests fast;
// the FakeHypervisor's guest never powers off unless a test ends its process.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "core/vm_manager.h"
#include "manager_fixture.h"

namespace feos::core {
namespace {

using model::VmState;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

class VmShutdownTest : public ManagerFixture {
 protected:
  void SetUp() override {
    ManagerFixture::SetUp();
    reopen({.grace = milliseconds(600), .repress = milliseconds(100)});
  }
  // A daemon (re)start on the same database with these shutdown options.
  void reopen(ShutdownOptions options) { ASSERT_TRUE(reopen_with({}, {}, options)); }
  model::VmId started() {
    const model::VmId id = create_vm();
    EXPECT_TRUE(manager_->start(id));
    return id;
  }
  std::string reason(const model::VmId& id) { return manager_->get(id)->state_reason; }
  // Waits up to `limit` for `done`; returns how long it took (limit when it never came).
  static milliseconds wait_for(const std::function<bool()>& done, milliseconds limit = milliseconds(10000)) {
    const auto start = Clock::now();
    while (!done() && Clock::now() - start < limit) std::this_thread::sleep_for(milliseconds(5));
    return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  }
  std::vector<std::string> event_reasons(const model::VmId& id) {
    auto events = manager_->history({.vm_id = id.text()});
    EXPECT_TRUE(events) << events.error().to_string();
    std::vector<std::string> out;
    for (const auto& e : *events) out.push_back(e.reason);
    return out;
  }

};

TEST_F(VmShutdownTest, AGuestThatIgnoresTheButtonIsForcedOffAfterTheGrace) {
  const model::VmId id = started();
  const auto asked = Clock::now();
  ASSERT_TRUE(manager_->shutdown(id));  // answers at once: well before the grace ends
  EXPECT_LT(Clock::now() - asked, milliseconds(550));
  EXPECT_EQ(state(id), VmState::kRunning);
  const milliseconds took = wait_for([&] { return state(id) == VmState::kStopped; });
  ASSERT_EQ(state(id), VmState::kStopped) << reason(id);
  EXPECT_GE(took, milliseconds(550));  // not before the grace
  EXPECT_LT(took, milliseconds(2500));
  EXPECT_EQ(hv_.stops, 1);
  EXPECT_FALSE(hv_.running(id.text()));
  // Pressed every 100 ms during 600 ms: the request's press and more (at least two more even when
  // a loaded machine starves the watcher thread).
  EXPECT_GE(hv_.shutdown_requests, 3);
  EXPECT_TRUE(reason(id).starts_with("forced off after 0.6 s: the guest did not power off after ")) << reason(id);
  EXPECT_TRUE(reason(id).ends_with(" presses of the ACPI power button")) << reason(id);
  EXPECT_EQ(event_reasons(id).back(), reason(id));
  EXPECT_EQ(manager_->get(id)->pid, 0);
  // Stopped the normal way: it starts again, and no watcher of the old shutdown is left over.
  ASSERT_TRUE(manager_->start(id));
  std::this_thread::sleep_for(milliseconds(900));
  EXPECT_EQ(state(id), VmState::kRunning);
  EXPECT_EQ(hv_.stops, 1);
}

TEST_F(VmShutdownTest, AGuestThatListensLateIsNotForcedOff) {
  const model::VmId id = started();
  ASSERT_TRUE(manager_->shutdown(id));
  // The guest misses the first two presses and powers off at the third.
  ASSERT_LT(wait_for([&] { return hv_.shutdown_requests >= 3; }), milliseconds(10000));
  hv_.exit(id.text(), true, "guest powered off");
  EXPECT_EQ(state(id), VmState::kStopped);
  EXPECT_TRUE(reason(id).starts_with("guest powered off 0.")) << reason(id);
  EXPECT_TRUE(reason(id).ends_with(" s after the shutdown request (3 presses of the ACPI power button)")) << reason(id);
  // Past the grace nothing more happens to it.
  std::this_thread::sleep_for(milliseconds(900));
  EXPECT_EQ(hv_.stops, 0);
  EXPECT_EQ(hv_.shutdown_requests, 3);
  EXPECT_EQ(state(id), VmState::kStopped);
}

TEST_F(VmShutdownTest, TheRequestsGraceOverridesTheDaemonsAndIsBounded) {
  reopen({.grace = milliseconds(60000), .repress = milliseconds(100)});
  const model::VmId id = started();
  auto too_long = manager_->shutdown(id, std::chrono::seconds(3601));
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().code, Code::kInvalidArgument);
  EXPECT_EQ(too_long.error().message, "grace_seconds 3601: at most 3600");
  EXPECT_EQ(hv_.shutdown_requests, 0);

  ASSERT_TRUE(manager_->shutdown(id, std::chrono::seconds(0)));
  EXPECT_LT(wait_for([&] { return state(id) == VmState::kStopped; }), milliseconds(2000));
  EXPECT_EQ(reason(id), "forced off after 0 s: the guest did not power off after 1 press of the ACPI power button");
  auto events = event_reasons(id);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[events.size() - 2],
            "shutdown requested: ACPI power button pressed; forced off in 0 s unless the guest powers off");
}

TEST_F(VmShutdownTest, ASecondRequestPressesAgainAndKeepsTheEarlierDeadline) {
  const model::VmId id = started();
  const auto asked = Clock::now();
  ASSERT_TRUE(manager_->shutdown(id));
  ASSERT_TRUE(manager_->shutdown(id, std::chrono::seconds(60)));
  wait_for([&] { return state(id) == VmState::kStopped; });
  EXPECT_LT(Clock::now() - asked, milliseconds(2500));
  EXPECT_EQ(state(id), VmState::kStopped);
  EXPECT_EQ(hv_.stops, 1);
}

TEST_F(VmShutdownTest, APausedGuestIsNotPressedAndIsForcedOffAtTheDeadline) {
  const model::VmId id = started();
  ASSERT_TRUE(manager_->shutdown(id));
  ASSERT_TRUE(manager_->pause(id));
  const int presses = hv_.shutdown_requests;
  wait_for([&] { return state(id) == VmState::kStopped; });
  EXPECT_EQ(state(id), VmState::kStopped);
  EXPECT_EQ(hv_.shutdown_requests, presses);
  EXPECT_TRUE(reason(id).starts_with("forced off after 0.6 s")) << reason(id);
}

TEST_F(VmShutdownTest, ADeleteDuringTheGraceEndsIt) {
  const model::VmId id = started();
  ASSERT_TRUE(manager_->shutdown(id));
  ASSERT_TRUE(manager_->remove(id));
  EXPECT_EQ(hv_.stops, 1);
  std::this_thread::sleep_for(milliseconds(900));
  EXPECT_EQ(hv_.stops, 1);  // no forced power-off of a VM that is gone
}

TEST_F(VmShutdownTest, ACrashDuringTheGraceStaysACrash) {
  const model::VmId id = started();
  ASSERT_TRUE(manager_->shutdown(id));
  hv_.exit(id.text(), false, "qemu killed by signal 9 (Killed)");
  EXPECT_EQ(state(id), VmState::kCrashed);
  std::this_thread::sleep_for(milliseconds(900));
  EXPECT_EQ(state(id), VmState::kCrashed);
  EXPECT_EQ(hv_.stops, 0);
  EXPECT_TRUE(reason(id).starts_with("qemu killed by signal 9 (Killed) 0.")) << reason(id);
}

// A daemon restart during the grace: the adopted VM's shutdown still ends, with a new grace.
TEST_F(VmShutdownTest, ARestartDuringTheGraceArmsItAgain) {
  reopen({.grace = milliseconds(60000), .repress = milliseconds(100)});
  const model::VmId id = started();
  ASSERT_TRUE(manager_->shutdown(id));
  hv_.alive_after_restart = {manager_->get(id)->pid};
  reopen({.grace = milliseconds(300), .repress = milliseconds(100)});
  EXPECT_EQ(state(id), VmState::kRunning);
  EXPECT_EQ(event_reasons(id).back(),
            "shutdown requested before feosd restarted: forced off in 0.3 s unless the guest powers off");
  EXPECT_LT(wait_for([&] { return state(id) == VmState::kStopped; }), milliseconds(2500));
  EXPECT_TRUE(reason(id).starts_with("forced off after 0.3 s")) << reason(id);
}

// A pause during the grace keeps the request's mark: a restart still ends the shutdown, and a
// guest that powers off while feosd is down is taken as stopped, not crashed.
TEST_F(VmShutdownTest, APauseDuringTheGraceKeepsTheRequestAcrossARestart) {
  reopen({.grace = milliseconds(60000), .repress = milliseconds(100)});
  const model::VmId id = started();
  ASSERT_TRUE(manager_->shutdown(id));
  ASSERT_TRUE(manager_->pause(id));
  EXPECT_EQ(reason(id), "shutdown requested; paused by request");
  ASSERT_TRUE(manager_->resume(id));
  ASSERT_TRUE(manager_->pause(id));
  EXPECT_EQ(reason(id), "shutdown requested; paused by request");
  hv_.alive_after_restart = {manager_->get(id)->pid};
  hv_.adopted_state = vmm::RunState::kPaused;
  reopen({.grace = milliseconds(300), .repress = milliseconds(100)});
  EXPECT_EQ(state(id), VmState::kPaused);
  EXPECT_EQ(event_reasons(id).back(),
            "shutdown requested before feosd restarted: forced off in 0.3 s unless the guest powers off");
  EXPECT_LT(wait_for([&] { return state(id) == VmState::kStopped; }), milliseconds(2500));
  EXPECT_TRUE(reason(id).starts_with("forced off after 0.3 s")) << reason(id);
}

TEST_F(VmShutdownTest, APauseDuringTheGraceThenAPowerOffWhileDownIsAStop) {
  reopen({.grace = milliseconds(60000), .repress = milliseconds(100)});
  const model::VmId id = started();
  ASSERT_TRUE(manager_->shutdown(id));
  ASSERT_TRUE(manager_->pause(id));
  ASSERT_TRUE(manager_->resume(id));
  reopen({.grace = milliseconds(300), .repress = milliseconds(100)});  // its process is gone
  EXPECT_EQ(state(id), VmState::kStopped);
  EXPECT_TRUE(reason(id).starts_with("guest powered off after the requested shutdown")) << reason(id);
}

TEST_F(VmShutdownTest, AStartAfterTheShutdownDropsTheMark) {
  const model::VmId id = started();
  ASSERT_TRUE(manager_->shutdown(id));
  wait_for([&] { return state(id) == VmState::kStopped; });
  ASSERT_TRUE(manager_->start(id));
  ASSERT_TRUE(manager_->pause(id));
  EXPECT_EQ(reason(id), "paused by request");
}

}  // namespace
}  // namespace feos::core
