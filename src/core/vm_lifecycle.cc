#include "core/vm_lifecycle.h"

#include <initializer_list>
#include <string>
#include <vector>

namespace feos::core {
namespace {

using model::VmState;
using E = LifecycleEvent;
using D = DeviceHold;

constexpr VmState kSame = VmState::kUnspecified;  // in the table: the state does not change

struct Row {
  LifecycleEvent event;
  std::initializer_list<VmState> from;
  VmState to;
  DeviceHold devices;
};

constexpr auto kCreating = VmState::kCreating, kCreated = VmState::kCreated, kRunning = VmState::kRunning,
               kPaused = VmState::kPaused, kStopped = VmState::kStopped, kCrashed = VmState::kCrashed;

// The table. An event may have several rows (different from-states lead to different places);
// a state in no row of an event means the event cannot happen there. As in FeOS, crashed is
// final for requests: only delete (get, list and events need no row); a crashed VM keeps its
// reason and is replaced by a new one.
const Row kTable[] = {
    {E::kStart, {kCreated, kStopped}, kRunning, D::kHeld},
    {E::kPause, {kRunning}, kPaused, D::kUnchanged},
    {E::kResume, {kPaused}, kRunning, D::kUnchanged},
    {E::kShutdown, {kRunning}, kSame, D::kUnchanged},
    // A delete while creating stops the create's background part first (VmManager::remove).
    {E::kDelete, {kCreating, kCreated, kRunning, kPaused, kStopped, kCrashed}, kSame, D::kReleased},
    {E::kPing, {kRunning, kPaused}, kSame, D::kUnchanged},
    {E::kConsole, {kRunning, kPaused}, kSame, D::kUnchanged},
    {E::kCreated, {kCreating}, kCreated, D::kHeld},
    // As FeOS does when an image pull fails: crashed, the reason says what failed.
    {E::kCreateFailed, {kCreating}, kCrashed, D::kReleased},
    {E::kCreateCutShort, {kCreating}, kCrashed, D::kReleased},
    // Nothing runs after a failed start: the host gets the devices back, the next start takes
    // them again.
    {E::kStartFailed, {kCreated, kStopped}, kSame, D::kReleased},
    // ... but not while a process of the VM lives: it may be using them.
    {E::kStartRefused, {kCreated, kStopped}, kSame, D::kUnchanged},
    {E::kGuestPoweredOff, {kRunning, kPaused}, kStopped, D::kReleased},
    // A paused guest cannot react to the button: the grace runs out and it is forced off too.
    {E::kForcedOff, {kRunning, kPaused}, kStopped, D::kReleased},
    {E::kHypervisorCrashed, {kRunning, kPaused}, kCrashed, D::kReleased},
    {E::kStoppedForDelete, {kRunning, kPaused}, kStopped, D::kReleased},
    // A live process is the truth, whatever the record said (a crashed VM too: an older feosd
    // restarted crashed VMs, and one killed mid-start left its process running).
    {E::kAdoptedRunning, {kCreated, kRunning, kPaused, kStopped, kCrashed}, kRunning, D::kHeld},
    {E::kAdoptedPaused, {kCreated, kRunning, kPaused, kStopped, kCrashed}, kPaused, D::kHeld},
    // The half-started process is stopped; a created VM keeps what CreateVm gave it.
    {E::kStartCutShort, {kCreated}, kSame, D::kUnchanged},
    {E::kStartCutShort, {kStopped, kCrashed}, kSame, D::kReleased},
    {E::kStartCutShort, {kRunning, kPaused}, kStopped, D::kReleased},
    {E::kLostWhileDown, {kRunning, kPaused}, kCrashed, D::kReleased},
    {E::kPoweredOffWhileDown, {kRunning, kPaused}, kStopped, D::kReleased},
};

}  // namespace

std::string_view event_name(LifecycleEvent event) {
  switch (event) {
    case E::kStart: return "start";
    case E::kPause: return "pause";
    case E::kResume: return "resume";
    case E::kShutdown: return "shutdown";
    case E::kDelete: return "delete";
    case E::kPing: return "ping";
    case E::kConsole: return "console";
    case E::kCreated: return "created";
    case E::kCreateFailed: return "create failed";
    case E::kCreateCutShort: return "create cut short";
    case E::kStartFailed: return "start failed";
    case E::kStartRefused: return "start refused";
    case E::kGuestPoweredOff: return "guest powered off";
    case E::kForcedOff: return "forced off";
    case E::kHypervisorCrashed: return "hypervisor crashed";
    case E::kStoppedForDelete: return "stopped for delete";
    case E::kAdoptedRunning: return "adopted running";
    case E::kAdoptedPaused: return "adopted paused";
    case E::kStartCutShort: return "start cut short";
    case E::kLostWhileDown: return "lost while feosd was down";
    case E::kPoweredOffWhileDown: return "powered off while feosd was down";
  }
  return "?";
}

bool holds_devices_in(VmState state) {
  return state == kCreated || state == kRunning || state == kPaused;
}

std::optional<Transition> transition(VmState state, LifecycleEvent event) {
  for (const Row& row : kTable) {
    if (row.event != event) continue;
    for (VmState from : row.from)
      if (from == state) return Transition{row.to == kSame ? state : row.to, row.devices};
  }
  return std::nullopt;
}

std::string_view feos_state_name(VmState state) {
  switch (state) {
    case VmState::kUnspecified: return "Unspecified";
    case VmState::kCreating: return "Creating";
    case VmState::kCreated: return "Created";
    case VmState::kRunning: return "Running";
    case VmState::kPaused: return "Paused";
    case VmState::kStopped: return "Stopped";
    case VmState::kCrashed: return "Crashed";
  }
  return "Unspecified";
}

Status check(std::string_view vm_id, VmState state, LifecycleEvent event) {
  if (transition(state, event)) return ok();
  std::vector<VmState> allowed;
  for (const Row& row : kTable)
    if (row.event == event) allowed.insert(allowed.end(), row.from.begin(), row.from.end());
  std::string states;  // "Created or Stopped", "Created, Running or Paused"
  for (size_t i = 0; i < allowed.size(); ++i)
    states += std::string(i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") +
              std::string(feos_state_name(allowed[i]));
  const std::string action = event == E::kConsole ? "open console for" : std::string(event_name(event));
  return fail(Code::kFailedPrecondition, "vm " + std::string(vm_id) + ": Invalid VM state for operation: Cannot " +
                                             action + " VM in " + std::string(feos_state_name(state)) +
                                             " state. Must be in " + states + ".");
}

}  // namespace feos::core
