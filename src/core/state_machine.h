#pragma once
// The legal VM state transitions, as one table. core/ consults it before any side effect, so an
// illegal request fails with FAILED_PRECONDITION and changes nothing.
#include <string_view>

#include "common/error.h"
#include "model/vm.h"

namespace feos::core {

// What a client (or the hypervisor) asks of a VM.
enum class Action {
  kStart,     // created|stopped|crashed -> running
  kPause,     // running -> paused
  kResume,    // paused -> running
  kShutdown,  // running: ACPI request; the state changes when the guest powers off
  kDelete,    // any settled state -> removed
  kPing,      // running|paused: ask the hypervisor
  kConsole,   // running|paused: attach to the serial console
};

std::string_view action_name(Action action);

// OK when `action` is legal in `state`; FAILED_PRECONDITION naming the VM, its state and the
// states the action needs otherwise.
Status check_action(std::string_view vm_id, model::VmState state, Action action);

// The state a successful action leads to (the current state for actions that do not change it).
model::VmState state_after(model::VmState state, Action action);

}  // namespace feos::core
