#pragma once
// The machine build_argv() composes, section by section (argv_builder.cc), and the components
// that fill it from other files. Internal to the argv builder: include it only there.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "model/gpu.h"
#include "model/vm.h"
#include "vmm/qemu/argv_builder.h"
#include "vmm/qemu/mmio_layout.h"
#include "vmm/qemu/qemu_options.h"

namespace feos::vmm::qemu::internal {

// The composed machine, filled section by section and rendered in a fixed order. A component
// (memory, disks, nets, vfio cards with their pcie-root-ports) adds machine and cpu
// properties, -global settings, backends and devices without knowing about the others.
struct MachinePlan {
  QemuOpts machine{"q35"};
  QemuOpts cpu;
  std::vector<QemuOpts> objects;  // -object
  std::vector<QemuOpts> globals;  // -global
  // -blockdev / -netdev values, rendered, in device order
  std::vector<std::pair<std::string, std::string>> backends;
  std::vector<QemuOpts> devices;  // -device
  std::vector<QemuOpts> fw_cfg;   // -fw_cfg
  std::vector<QemuOpts> numa;     // -numa
  // The bus of each GPU's root ports (by index into the VM's GPUs): pcie.0, or the pxb-pcie of
  // its guest NUMA node (guest_numa.h); empty means pcie.0 for all.
  std::vector<std::string> gpu_bus;
  std::optional<AddressLayout> layout;  // set by add_gpus() for a VM with GPUs
  std::optional<UefiAperture> aperture;  // set by add_gpus() for a UEFI VM with GPUs
  std::vector<std::string> decisions;   // why the machine looks as it does, one sentence each
};

// Root ports and vfio-pci functions for `gpus`, plus the 64-bit hole, OVMF's aperture and the
// phys-bits they need (gpu_devices.cc; see build_argv()). Errors as build_argv()'s for GPUs,
// without the "vm <id>: " prefix.
Status add_gpus(MachinePlan& plan, const ArgvConfig& config, const model::VmSpec& spec,
                const std::vector<model::AssignedGpu>& gpus);

// config.hotplug_ports empty pcie-root-ports on pcie.0 (hotplug_ports.h; chassis 2, slot 1..n:
// the GPUs' ports are chassis 1), added last so the devices before them keep the guest addresses
// they had. No I/O space is reserved: a virtio device behind a PCIe port is modern-only and has
// no I/O BAR (hotplug_ports.cc).
void add_hotplug_ports(MachinePlan& plan, const ArgvConfig& config);

}  // namespace feos::vmm::qemu::internal
