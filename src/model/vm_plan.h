#pragma once
// What a CreateVm and the start after it would do, resolved on the host with nothing changed:
// the answer of a dry run (CreateVmRequest.dry_run). core/ assembles it from the host side's plan
// (hostdev) and the hypervisor's (vmm), each computed by the functions the real create and start
// run. No protobuf here: api/ converts.
#include <cstdint>
#include <string>
#include <vector>

#include "model/gpu.h"
#include "model/vm.h"

namespace feos::model {

// The guest's physical address space as the hypervisor lays it out.
struct AddressSpacePlan {
  uint64_t ram_bytes = 0;
  uint64_t mmio32_bytes = 0;  // the below-4-GiB windows of the passed-through devices
  uint64_t hole64_start = 0;  // q35's 64-bit PCI hole, as QEMU places it
  uint64_t hole64_size = 0;
  int phys_bits = 0;          // the guest's physical address bits
  // UEFI guests with GPUs: OVMF's 64-bit aperture (0 when none).
  uint64_t uefi_aperture_base = 0;
  uint64_t uefi_aperture_size = 0;
};

// The guest firmware a start would use.
struct FirmwarePlan {
  FirmwareSpec spec;
  std::string descriptor;     // UEFI: the QEMU firmware descriptor chosen
  std::string code;           // UEFI: the firmware image
  std::string vars_template;  // UEFI: the VM's store is copied from it at the first start
  std::string vars;           // UEFI: the VM's own variable store
};

// What the hypervisor's start would run (vmm::Hypervisor::plan_start).
struct LaunchPlan {
  std::vector<std::string> argv;  // argv[0] = the hypervisor binary
  AddressSpacePlan address_space;
  FirmwarePlan firmware;
  std::vector<std::string> decisions;  // one sentence each
};

struct VmPlan {
  std::string vm_id;              // the id a create would store
  std::vector<AssignedGpu> gpus;  // as the host side would take them
  // The host side's decisions (policy, whole cards, group peers, drivers), then the
  // hypervisor's (address space), one sentence each.
  std::vector<std::string> decisions;
  AddressSpacePlan address_space;
  FirmwarePlan firmware;
  std::vector<std::string> qemu_argv;
};

}  // namespace feos::model
