#pragma once
// CreateVm answers with the VM creating; its background part (image pull, GPU binding) follows
// in a thread. Tests that need the outcome wait for it here.
#include <chrono>
#include <thread>

#include "core/vm_manager.h"

namespace feos::core {

// Waits until the VM `id` names has left creating (at most `limit`) and returns its state then
// (creating when it did not leave it in time; unspecified when the VM is gone).
inline model::VmState wait_created(const VmManager& manager, const model::VmId& id,
                                   std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto record = manager.get(id);
    if (!record) return model::VmState::kUnspecified;
    if (record->state != model::VmState::kCreating || std::chrono::steady_clock::now() > deadline) return record->state;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace feos::core
