#include "core/state_machine.h"

#include <gtest/gtest.h>

namespace feos::core {
namespace {

using model::VmState;

constexpr VmState kAll[] = {VmState::kCreating, VmState::kCreated, VmState::kRunning,
                            VmState::kPaused,   VmState::kStopped, VmState::kCrashed};

// The expected table, written out independently of the implementation's.
bool expected_legal(VmState s, Action a) {
  switch (a) {
    case Action::kStart: return s == VmState::kCreated || s == VmState::kStopped || s == VmState::kCrashed;
    case Action::kPause: return s == VmState::kRunning;
    case Action::kResume: return s == VmState::kPaused;
    case Action::kShutdown: return s == VmState::kRunning;
    case Action::kDelete: return s != VmState::kCreating;
    case Action::kPing:
    case Action::kConsole: return s == VmState::kRunning || s == VmState::kPaused;
  }
  return false;
}

TEST(StateMachineTest, WholeTable) {
  for (Action a : {Action::kStart, Action::kPause, Action::kResume, Action::kShutdown, Action::kDelete,
                   Action::kPing, Action::kConsole}) {
    for (VmState s : kAll) {
      auto result = check_action("vm1", s, a);
      EXPECT_EQ(bool(result), expected_legal(s, a))
          << action_name(a) << " from " << model::state_name(s);
      if (!result) {
        EXPECT_EQ(result.error().code, Code::kFailedPrecondition);
      }
    }
  }
}

TEST(StateMachineTest, MessageNamesVmStateAndNeeds) {
  auto result = check_action("abc", VmState::kStopped, Action::kPause);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message, "vm abc is stopped; pause needs state running");
}

TEST(StateMachineTest, StateAfter) {
  EXPECT_EQ(state_after(VmState::kCreated, Action::kStart), VmState::kRunning);
  EXPECT_EQ(state_after(VmState::kRunning, Action::kPause), VmState::kPaused);
  EXPECT_EQ(state_after(VmState::kPaused, Action::kResume), VmState::kRunning);
  EXPECT_EQ(state_after(VmState::kRunning, Action::kShutdown), VmState::kRunning);
}

}  // namespace
}  // namespace feos::core
