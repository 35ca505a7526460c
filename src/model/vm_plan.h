#pragma once
// What a CreateVm and the start after it would do, resolved on the host with nothing changed:
// the answer of a dry run (CreateVmRequest.dry_run). core/ assembles it from the host side's plan
// (hostdev) and the hypervisor's (vmm), each computed by the functions the real create and start
// run. No protobuf here: api/ converts.
#include <cstdint>
#include <string>
#include <vector>

#include "model/gpu.h"

namespace feos::model {

// The guest's physical address space as the hypervisor lays it out.
struct AddressSpacePlan {
  uint64_t ram_bytes = 0;
  uint64_t mmio32_bytes = 0;  // the below-4-GiB windows of the passed-through devices
  uint64_t hole64_start = 0;  // q35's 64-bit PCI hole, as QEMU places it
  uint64_t hole64_size = 0;
  int phys_bits = 0;          // the guest's physical address bits
};

// What the hypervisor's start would run (vmm::Hypervisor::plan_start).
struct LaunchPlan {
  std::vector<std::string> argv;  // argv[0] = the hypervisor binary
  AddressSpacePlan address_space;
  std::vector<std::string> decisions;  // one sentence each
};

struct VmPlan {
  std::string vm_id;              // the id a create would store
  std::vector<AssignedGpu> gpus;  // as the host side would take them
  // The host side's decisions (policy, whole cards, group peers, drivers), then the
  // hypervisor's (address space), one sentence each.
  std::vector<std::string> decisions;
  AddressSpacePlan address_space;
  std::vector<std::string> qemu_argv;
};

}  // namespace feos::model
