// The lifecycle table, every (state, event) pair against an expectation written out here
// independently of the implementation's table.
#include "core/vm_lifecycle.h"

#include <gtest/gtest.h>

#include <map>
#include <utility>

namespace feos::core {
namespace {

using model::VmState;
using E = LifecycleEvent;
using D = DeviceHold;

constexpr VmState kStates[] = {VmState::kCreating, VmState::kCreated, VmState::kRunning,
                               VmState::kPaused,   VmState::kStopped, VmState::kCrashed};

// nullopt: the event cannot happen in that state.
std::optional<Transition> expected(VmState s, E e) {
  const bool settled = s != VmState::kCreating;
  const bool up = s == VmState::kRunning || s == VmState::kPaused;
  // Crashed is final for requests (FeOS's rule): a start needs created or stopped.
  const bool startable = s == VmState::kCreated || s == VmState::kStopped;
  switch (e) {
    case E::kStart: return startable ? std::optional(Transition{VmState::kRunning, D::kHeld}) : std::nullopt;
    case E::kPause:
      return s == VmState::kRunning ? std::optional(Transition{VmState::kPaused, D::kUnchanged}) : std::nullopt;
    case E::kResume:
      return s == VmState::kPaused ? std::optional(Transition{VmState::kRunning, D::kUnchanged}) : std::nullopt;
    case E::kShutdown: return s == VmState::kRunning ? std::optional(Transition{s, D::kUnchanged}) : std::nullopt;
    case E::kDelete: return Transition{s, D::kReleased};  // creating too: the create is stopped first
    case E::kPing:
    case E::kConsole: return up ? std::optional(Transition{s, D::kUnchanged}) : std::nullopt;
    case E::kCreated:
      return s == VmState::kCreating ? std::optional(Transition{VmState::kCreated, D::kHeld}) : std::nullopt;
    case E::kCreateFailed:
    case E::kCreateCutShort:
      return s == VmState::kCreating ? std::optional(Transition{VmState::kCrashed, D::kReleased}) : std::nullopt;
    case E::kStartFailed: return startable ? std::optional(Transition{s, D::kReleased}) : std::nullopt;
    case E::kStartRefused: return startable ? std::optional(Transition{s, D::kUnchanged}) : std::nullopt;
    case E::kGuestPoweredOff:
    case E::kForcedOff:
    case E::kStoppedForDelete:
    case E::kPoweredOffWhileDown:
      return up ? std::optional(Transition{VmState::kStopped, D::kReleased}) : std::nullopt;
    case E::kHypervisorCrashed:
    case E::kLostWhileDown:
      return up ? std::optional(Transition{VmState::kCrashed, D::kReleased}) : std::nullopt;
    case E::kAdoptedRunning: return settled ? std::optional(Transition{VmState::kRunning, D::kHeld}) : std::nullopt;
    case E::kAdoptedPaused: return settled ? std::optional(Transition{VmState::kPaused, D::kHeld}) : std::nullopt;
    case E::kStartCutShort:
      if (s == VmState::kCreated) return Transition{s, D::kUnchanged};
      if (s == VmState::kStopped || s == VmState::kCrashed) return Transition{s, D::kReleased};
      if (up) return Transition{VmState::kStopped, D::kReleased};
      return std::nullopt;
  }
  return std::nullopt;
}

TEST(VmLifecycleTest, EveryStateAndEvent) {
  int pairs = 0, possible = 0;
  for (E e : kAllLifecycleEvents) {
    for (VmState s : kStates) {
      ++pairs;
      auto got = transition(s, e);
      auto want = expected(s, e);
      std::string where = std::string(event_name(e)) + " from " + std::string(model::state_name(s));
      ASSERT_EQ(got.has_value(), want.has_value()) << where;
      EXPECT_EQ(bool(check("vm1", s, e)), want.has_value()) << where;
      if (!want) continue;
      ++possible;
      EXPECT_EQ(got->to, want->to) << where;
      EXPECT_EQ(got->devices, want->devices) << where;
    }
  }
  EXPECT_EQ(pairs, 21 * 6);
  EXPECT_EQ(possible, 49);  // a change to the table shows here too
}

// FeOS's words (vm-service's InvalidState), which its clients look for, after the VM.
TEST(VmLifecycleTest, RefusalNamesTheVmItsStateAndWhatTheEventNeedsInFeosWords) {
  auto refused = check("abc", VmState::kStopped, E::kPause);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(refused.error().message,
            "vm abc: Invalid VM state for operation: Cannot pause VM in Stopped state. Must be in Running.");
  EXPECT_EQ(check("abc", VmState::kCrashed, E::kStart).error().message,
            "vm abc: Invalid VM state for operation: Cannot start VM in Crashed state. Must be in Created or Stopped.");
  EXPECT_EQ(check("abc", VmState::kStopped, E::kConsole).error().message,
            "vm abc: Invalid VM state for operation: Cannot open console for VM in Stopped state. "
            "Must be in Running or Paused.");
  EXPECT_EQ(check("abc", VmState::kCreating, E::kStart).error().message,
            "vm abc: Invalid VM state for operation: Cannot start VM in Creating state. "
            "Must be in Created or Stopped.");
  EXPECT_EQ(check("abc", VmState::kCreated, E::kResume).error().message,
            "vm abc: Invalid VM state for operation: Cannot resume VM in Created state. Must be in Paused.");
}

// Only delete is a request a crashed VM takes; it keeps its reason until then.
TEST(VmLifecycleTest, CrashedIsFinalForRequests) {
  for (E e : {E::kStart, E::kPause, E::kResume, E::kShutdown, E::kPing, E::kConsole})
    EXPECT_FALSE(transition(VmState::kCrashed, e)) << event_name(e);
  EXPECT_TRUE(transition(VmState::kCrashed, E::kDelete));
}

TEST(VmLifecycleTest, EveryEventHasAName) {
  std::map<std::string_view, int> names;
  for (E e : kAllLifecycleEvents) ++names[event_name(e)];
  EXPECT_EQ(names.size(), std::size(kAllLifecycleEvents));
  EXPECT_EQ(names.count("?"), 0u);
}

}  // namespace
}  // namespace feos::core
