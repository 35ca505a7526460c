#include "core/state_machine.h"

#include <initializer_list>
#include <string>

namespace feos::core {
namespace {

using model::VmState;

struct Rule {
  Action action;
  std::initializer_list<VmState> from;
  VmState to;  // kUnspecified: unchanged
};

// The transition table. Process exits (running|paused -> stopped|crashed) come from the
// hypervisor, not from clients, and are applied by the manager directly.
const Rule kRules[] = {
    {Action::kStart, {VmState::kCreated, VmState::kStopped, VmState::kCrashed}, VmState::kRunning},
    {Action::kPause, {VmState::kRunning}, VmState::kPaused},
    {Action::kResume, {VmState::kPaused}, VmState::kRunning},
    {Action::kShutdown, {VmState::kRunning}, VmState::kUnspecified},
    {Action::kDelete,
     {VmState::kCreated, VmState::kRunning, VmState::kPaused, VmState::kStopped, VmState::kCrashed},
     VmState::kUnspecified},
    {Action::kPing, {VmState::kRunning, VmState::kPaused}, VmState::kUnspecified},
    {Action::kConsole, {VmState::kRunning, VmState::kPaused}, VmState::kUnspecified},
};

const Rule& rule_for(Action action) {
  for (const auto& rule : kRules)
    if (rule.action == action) return rule;
  return kRules[0];  // unreachable: every Action has a rule
}

}  // namespace

std::string_view action_name(Action action) {
  switch (action) {
    case Action::kStart: return "start";
    case Action::kPause: return "pause";
    case Action::kResume: return "resume";
    case Action::kShutdown: return "shutdown";
    case Action::kDelete: return "delete";
    case Action::kPing: return "ping";
    case Action::kConsole: return "console";
  }
  return "?";
}

Status check_action(std::string_view vm_id, VmState state, Action action) {
  const Rule& rule = rule_for(action);
  std::string allowed;
  for (VmState s : rule.from) {
    if (s == state) return ok();
    if (!allowed.empty()) allowed += ", ";
    allowed += model::state_name(s);
  }
  return fail(Code::kFailedPrecondition,
              "vm " + std::string(vm_id) + " is " + std::string(model::state_name(state)) + "; " +
                  std::string(action_name(action)) + " needs state " + allowed);
}

VmState state_after(VmState state, Action action) {
  VmState to = rule_for(action).to;
  return to == VmState::kUnspecified ? state : to;
}

}  // namespace feos::core
