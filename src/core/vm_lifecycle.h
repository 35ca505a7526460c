#pragma once
// The VM lifecycle as one table: for every event (a client's request, or a report from the
// hypervisor or the host) the states it may happen in, the state it leads to, and whether the VM
// holds its devices (GPUs bound to vfio-pci) afterwards. VmManager asks the table before any side
// effect and takes every target state from it; no state is decided anywhere else.
#include <optional>
#include <string_view>

#include "common/error.h"
#include "model/vm.h"

namespace feos::core {

enum class LifecycleEvent {
  // --- a client's requests: checked before anything is done ---
  kStart,     // launch the hypervisor and boot the guest
  kPause,     // stop the vCPUs
  kResume,    // run the vCPUs again
  kShutdown,  // press the ACPI power button; the guest powers off, or is forced off (kForcedOff)
  kDelete,    // stop what runs, return the devices, forget the VM
  kPing,      // ask the hypervisor (no change)
  kConsole,   // attach to the serial console (no change)
  // --- outcomes and reports ---
  kCreated,             // CreateVm's background part is done (image pulled, GPUs bound)
  kCreateFailed,        // ... failed (the pull, the image's checks, a bind): FeOS's crashed
  kCreateCutShort,      // a restarted daemon found the VM still creating
  kStartFailed,         // the start failed: nothing runs
  kStartRefused,        // the start was refused: a process of the VM is still alive
  kGuestPoweredOff,     // the hypervisor ended cleanly (the guest powered off, or asked to stop)
  kForcedOff,           // a requested shutdown's grace ran out: the hypervisor was stopped
  kHypervisorCrashed,   // the hypervisor ended unexpectedly
  kStoppedForDelete,    // DeleteVm stopped the hypervisor
  kAdoptedRunning,      // a restarted daemon found the VM's process with its guest running
  kAdoptedPaused,       // ... with its guest paused
  kStartCutShort,       // ... launched but never resumed (the daemon died mid-start): stopped
  kLostWhileDown,       // the process ended while the daemon was down
  kPoweredOffWhileDown, // ... after a shutdown the client had asked for
};

// Whether the VM holds its devices after an event.
enum class DeviceHold {
  kUnchanged,  // as before the event
  kHeld,       // taken (or kept) for the VM
  kReleased,   // back to the host (or never taken)
};

struct Transition {
  model::VmState to;  // the state after the event (the same state for events that keep it)
  DeviceHold devices;
};

std::string_view event_name(LifecycleEvent event);  // "start", "guest powered off", ...

// Where `event` leads from `state`; nullopt when it cannot happen there.
std::optional<Transition> transition(model::VmState state, LifecycleEvent event);

// OK when `event` can happen in `state`; otherwise FAILED_PRECONDITION in FeOS's words (its
// vm-service's InvalidState), which FeOS's clients look for, after the VM:
// "vm X: Invalid VM state for operation: Cannot pause VM in Stopped state. Must be in Running."
Status check(std::string_view vm_id, model::VmState state, LifecycleEvent event);

// A state as FeOS names it in messages ("Stopped": its enum's name).
std::string_view feos_state_name(model::VmState state);

// Whether a VM recorded in `state` holds its devices (when it has any): created, running, paused.
// What a restarted daemon keeps for its VMs.
bool holds_devices_in(model::VmState state);

// Every event, for tests and documentation.
inline constexpr LifecycleEvent kAllLifecycleEvents[] = {
    LifecycleEvent::kStart,           LifecycleEvent::kPause,           LifecycleEvent::kResume,
    LifecycleEvent::kShutdown,        LifecycleEvent::kDelete,          LifecycleEvent::kPing,
    LifecycleEvent::kConsole,         LifecycleEvent::kCreated,         LifecycleEvent::kCreateFailed,
    LifecycleEvent::kCreateCutShort,  LifecycleEvent::kStartFailed,
    LifecycleEvent::kStartRefused,
    LifecycleEvent::kGuestPoweredOff, LifecycleEvent::kForcedOff,       LifecycleEvent::kHypervisorCrashed,
    LifecycleEvent::kStoppedForDelete, LifecycleEvent::kAdoptedRunning, LifecycleEvent::kAdoptedPaused,
    LifecycleEvent::kStartCutShort,   LifecycleEvent::kLostWhileDown,   LifecycleEvent::kPoweredOffWhileDown,
};

}  // namespace feos::core
