// The stop conditions of the streaming commands: console --until and events --until-state.
#include "cli/watch.h"

#include <gtest/gtest.h>

namespace feos::cli {
namespace {

TEST(TextMatcher, FindsTextWithinOneChunk) {
  TextMatcher matcher("login:");
  EXPECT_FALSE(matcher.feed("booting...\r\n"));
  EXPECT_TRUE(matcher.feed("host login: "));
  EXPECT_TRUE(matcher.feed("more"));  // stays satisfied
}

TEST(TextMatcher, FindsTextSplitAcrossChunks) {
  TextMatcher matcher("login:");
  EXPECT_FALSE(matcher.feed("host lo"));
  EXPECT_FALSE(matcher.feed("g"));
  EXPECT_FALSE(matcher.feed(""));
  EXPECT_TRUE(matcher.feed("in: "));
}

TEST(TextMatcher, DoesNotMatchScatteredPieces) {
  TextMatcher matcher("abc");
  EXPECT_FALSE(matcher.feed("ab"));
  EXPECT_FALSE(matcher.feed("xc"));
  EXPECT_FALSE(matcher.feed("a"));
  EXPECT_FALSE(matcher.feed("b"));
  EXPECT_TRUE(matcher.feed("c"));
}

TEST(TextMatcher, SingleByteNeedle) {
  TextMatcher matcher("#");
  EXPECT_FALSE(matcher.feed("root@vm"));
  EXPECT_TRUE(matcher.feed(":~# "));
}

v1::VmEvent state_event(const std::string& vm, v1::VmState state) {
  v1::VmEvent event;
  event.set_vm_id(vm);
  v1::VmStateChangedEvent change;
  change.set_new_state(state);
  event.mutable_data()->PackFrom(change);
  return event;
}

TEST(StateWatcher, OldStateInHistoryDoesNotCount) {
  StateWatcher watcher("vm-a", v1::VM_STATE_RUNNING);
  EXPECT_FALSE(watcher.on_event(state_event("vm-a", v1::VM_STATE_RUNNING)));
  EXPECT_FALSE(watcher.on_event(state_event("vm-a", v1::VM_STATE_STOPPED)));
  EXPECT_FALSE(watcher.on_idle());  // history over: the VM is stopped now
  EXPECT_TRUE(watcher.history_done());
  EXPECT_EQ(watcher.latest(), v1::VM_STATE_STOPPED);
  EXPECT_FALSE(watcher.on_event(state_event("vm-a", v1::VM_STATE_CREATED)));
  EXPECT_TRUE(watcher.on_event(state_event("vm-a", v1::VM_STATE_RUNNING)));
}

TEST(StateWatcher, CurrentStateAtEndOfHistoryCounts) {
  StateWatcher watcher("vm-a", v1::VM_STATE_RUNNING);
  EXPECT_FALSE(watcher.on_event(state_event("vm-a", v1::VM_STATE_RUNNING)));
  EXPECT_TRUE(watcher.on_idle());
}

TEST(StateWatcher, NoHistoryThenLiveEvent) {
  StateWatcher watcher("vm-a", v1::VM_STATE_STOPPED);
  EXPECT_FALSE(watcher.on_idle());
  EXPECT_FALSE(watcher.latest().has_value());
  EXPECT_TRUE(watcher.on_event(state_event("vm-a", v1::VM_STATE_STOPPED)));
}

TEST(StateWatcher, IgnoresOtherVmsAndOtherPayloads) {
  StateWatcher watcher("vm-a", v1::VM_STATE_RUNNING);
  watcher.on_idle();
  EXPECT_FALSE(watcher.on_event(state_event("vm-b", v1::VM_STATE_RUNNING)));
  v1::VmEvent other;
  other.set_vm_id("vm-a");
  other.mutable_data()->PackFrom(v1::PingVmResponse{});
  EXPECT_FALSE(watcher.on_event(other));
  EXPECT_FALSE(watcher.latest().has_value());
}

}  // namespace
}  // namespace feos::cli
