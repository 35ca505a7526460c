#pragma once
// Internal to src/hostdev: GPUs by count. Picks free GPUs for a VM by host topology, with no side
// effects; HostDevices::claim_plan() runs it and the ledger claim under one lock, so concurrent
// requests never pick the same GPU and none is lost between the pick and the claim.
//
// The rules, in order (the same host state always gives the same answer):
//   1. Candidates: the GPU of each slot (its lowest display function) whose model matches, that no
//      VM holds and that a request for it alone would pass (make_plan()), minus the VM's own.
//   2. One NUMA node when one has enough: the node with the fewest free candidates that still
//      holds the request (keeps larger blocks free for larger VMs; ties: the lower node). With
//      p2p (2 or more GPUs), a node where one PCIe switch holds the whole request comes first,
//      the one whose such switch has the fewest free GPUs. Else the fewest nodes: nodes by free
//      count, largest first (ties: the lower node).
//   3. Within the chosen nodes, with p2p: GPUs under one PCIe switch together, switches with
//      the most free GPUs first; without: address order.
// On a host with NVSwitches, when the model matches the board's GPUs, the fabric decides instead
// (policy.h, "NVSwitch fabric"): full passthrough (or no mode) takes the whole board or nothing
// (FAILED_PRECONDITION for another count, RESOURCE_EXHAUSTED naming the GPUs not free); shared
// takes the first partition of exactly the asked size, in the policy's order, whose GPUs are all
// free (FAILED_PRECONDITION when no partition has that size, RESOURCE_EXHAUSTED naming each
// partition of that size and which of its GPUs are held). NUMA nodes and p2p play no part there:
// a partition already is the fabric's choice.
#include <string>
#include <vector>

#include "common/error.h"
#include "hostdev/planning.h"
#include "model/gpu.h"

namespace feos::hostdev::detail {

struct Placement {
  std::vector<model::GpuSpec> gpus;    // the picked GPUs, as requests (default options)
  std::vector<std::string> decisions;  // why these, one sentence each (shown by a dry run)
};

// Whether a device matches `model`: "vvvv:dddd" compares ids; anything else is a case-insensitive
// part of its pci.ids product name (no match without a name).
bool matches_model(const pci::Device& device, const std::string& model, const pci::PciIds* ids);

// Picks `request.count` GPUs besides `taken` (the VM's GPUs by address). Needs context.view()'s
// display functions loaded (load_displays() or load_all()).
// Errors: NOT_FOUND when no GPU of the host matches the model (naming the models there);
// RESOURCE_EXHAUSTED when fewer are free than asked, naming the free ones by NUMA node and
// counting the others (held by VMs, not assignable); INTERNAL for unreadable sysfs.
Result<Placement> place_gpus(PlanContext& context, const model::GpuCount& request,
                             const std::vector<model::GpuSpec>& taken);

}  // namespace feos::hostdev::detail
