#pragma once
// Rows of the host-device ownership ledger (table device_assignments, see migrations.cc): which
// VM holds which host PCI function and how far binding it to vfio-pci has come. The hostdev layer
// writes them through DeviceLedger (device_ledger.h).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pci/address.h"
#include "pci/iommu_group.h"

namespace feos::store {

// Why a VM holds a device.
enum class DeviceRole {
  kRequested,  // the GPU function the client named
  kFunction,   // another function of that card's slot
  kGroupPeer,  // another endpoint of its IOMMU group, passed along by operator policy
  kFabric,     // an NVSwitch of the HGX board whose every GPU the VM takes (policy nvswitch_mode)
};

// Progress of one device, written BEFORE the sysfs write it announces, so after a crash the step
// says which writes may have happened (the announced one may or may not have reached the kernel).
enum class AssignmentStep {
  kClaimed,      // held in the ledger; nothing written to sysfs yet
  kOverrideSet,  // driver_override is being / was set to vfio-pci
  kUnbound,      // being / was detached from the original driver
  kBound,        // being / was probed onto vfio-pci; once prepare returned: on vfio-pci, ready
  kReleasing,    // being returned to the host (or rolled back); a row left here failed to return
};

// "requested", "function", "group_peer", "fabric" (the stored form).
std::string_view role_name(DeviceRole role);
std::optional<DeviceRole> role_from_name(std::string_view name);
// "claimed", "override_set", "unbound", "bound", "releasing" (the stored form).
std::string_view step_name(AssignmentStep step);
std::optional<AssignmentStep> step_from_name(std::string_view name);

struct DeviceAssignment {
  pci::Address bdf;   // stored as its canonical text "0000:18:00.0"
  std::string vm_id;  // the holder
  DeviceRole role = DeviceRole::kRequested;
  std::optional<pci::IommuGroup> iommu_group;  // stored as "41", or "" without a group
  std::string original_driver;    // bound before vfio-pci took it; "" when unbound
  std::string original_override;  // driver_override before we set it; "" for none
  AssignmentStep step = AssignmentStep::kClaimed;
  int64_t updated_unix_ms = 0;
  friend bool operator==(const DeviceAssignment&, const DeviceAssignment&) = default;
};

}  // namespace feos::store
