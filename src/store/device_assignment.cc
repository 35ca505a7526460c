#include "store/device_assignment.h"

namespace feos::store {

std::string_view role_name(DeviceRole role) {
  switch (role) {
    case DeviceRole::kRequested: return "requested";
    case DeviceRole::kFunction: return "function";
    case DeviceRole::kGroupPeer: return "group_peer";
    case DeviceRole::kFabric: return "fabric";
  }
  return "requested";  // unreachable: every enumerator is listed above
}

std::optional<DeviceRole> role_from_name(std::string_view name) {
  for (DeviceRole role : {DeviceRole::kRequested, DeviceRole::kFunction, DeviceRole::kGroupPeer,
                          DeviceRole::kFabric}) {
    if (name == role_name(role)) return role;
  }
  return std::nullopt;
}

std::string_view step_name(AssignmentStep step) {
  switch (step) {
    case AssignmentStep::kClaimed: return "claimed";
    case AssignmentStep::kOverrideSet: return "override_set";
    case AssignmentStep::kUnbound: return "unbound";
    case AssignmentStep::kBound: return "bound";
    case AssignmentStep::kReleasing: return "releasing";
  }
  return "claimed";  // unreachable: every enumerator is listed above
}

std::optional<AssignmentStep> step_from_name(std::string_view name) {
  for (AssignmentStep step : {AssignmentStep::kClaimed, AssignmentStep::kOverrideSet,
                              AssignmentStep::kUnbound, AssignmentStep::kBound,
                              AssignmentStep::kReleasing}) {
    if (name == step_name(step)) return step;
  }
  return std::nullopt;
}

}  // namespace feos::store
