#pragma once
// What VmManager's files share (core-internal): the state reasons recover() reads back after a
// daemon restart to tell what an interrupted operation was, and the state facts both need.
#include <chrono>
#include <cstdint>
#include <string_view>

#include "model/vm.h"

namespace feos::core::detail {

// Prefix of state_reason that marks a shutdown the client asked for: a guest that powered off
// while feosd was down was stopped, not crashed.
inline constexpr std::string_view kShutdownRequested = "shutdown requested";
// state_reason while StartVm runs, stored before the hypervisor launches: a start cut short by a
// daemon crash is told from a VM that was simply created or stopped.
inline constexpr std::string_view kStarting = "starting";

inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace feos::core::detail
