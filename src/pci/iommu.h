#pragma once
// IOMMU facts beside the groups themselves (PciSysfs counts and lists those; a group's name is
// pci::IommuGroup): whether the IOMMU remaps interrupts (without interrupt remapping a device given to a
// VM can forge MSIs). Read through sys::Filesystem and sys::HostPaths.
#include <string>
#include <string_view>

#include "sys/filesystem.h"
#include "sys/host_paths.h"

namespace feos::pci {

struct InterruptRemapping {
  enum class State { kOn, kOff, kUnknown };
  State state = State::kUnknown;
  std::string detail;  // why, naming the file or the command-line word it was read from
};

// Intel VT-d reports each DMAR unit's extended capabilities in
// <sysfs>/class/iommu/dmarN/intel-iommu/ecap; bit 3 (IR) is interrupt remapping support. The
// kernel uses it unless the command line says intremap=off / nointremap. AMD-Vi does not show
// its state in sysfs (dmesg: "AMD-Vi: Interrupt remapping enabled"), so it is kUnknown there.
// `iommu_enabled`: the host has IOMMU groups (kOff when not). Never fails: what cannot be read
// makes the answer kUnknown, and `detail` says which file.
InterruptRemapping read_interrupt_remapping(const sys::Filesystem& fs, const sys::HostPaths& paths,
                                            bool iommu_enabled);

}  // namespace feos::pci
