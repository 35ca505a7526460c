#pragma once
// NVIDIA GPUDirect P2P cliques of a VM's GPUs (issue 15; docs/topology.md). QEMU's vfio-pci option
// x-nv-gpudirect-clique=<id> adds an 8-byte vendor capability to the GPU's config space that tells
// the guest's NVIDIA driver which GPUs share a clique, i.e. can reach each other peer-to-peer; the
// driver enables P2P between GPUs of one clique only. Pure: the host facts are the GPUs' peer paths
// (model::GpuPeerPath, filled by hostdev).
//
// The rule (GpuP2pMode::kAuto): NVIDIA GPUs on one host root bus (under one PCIe switch, or on
// root ports of one root complex) form one clique; a clique needs two such GPUs; ids are given
// from 0 in the order of the clique's first GPU. GPUs joined by NVLink (an HGX board's) need none,
// other vendors' GPUs never get one (QEMU refuses it), nor do GPUs whose config space has no room
// for the capability (below). kOff: none. kExplicit: the spec's groups, ids in their order.
//
// Where the capability goes: QEMU puts it at C8h (the spec's place); QEMU 8.1 and newer take D4h
// when the GPU's own MSI-X capability holds C8h (Turing and newer GPUs). An older QEMU (Debian 12
// ships 7.2) then fails to start the VM (the capabilities overlap), so such GPUs get no clique
// unless `qemu_takes_d4` says the QEMU knows D4h.
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/gpu.h"
#include "model/vm.h"

namespace feos::vmm::qemu {

struct GpudirectPlan {
  std::vector<std::optional<int>> clique;  // by index into the VM's GPUs: its clique id, or none
  std::vector<std::string> decisions;      // why, one sentence each (shown by a dry run)
};

// Whether `gpu`'s function 0 is an NVIDIA display/3D controller (the only kind QEMU gives a clique).
bool is_nvidia_gpu(const model::AssignedGpu& gpu);

// The cliques of `gpus` under `p2p`. Errors (explicit cliques): INVALID_ARGUMENT naming the clique
// when an address is none of `gpus` or the GPU is not NVIDIA (naming the device and its id);
// FAILED_PRECONDITION naming the GPU when its config space has no room for the capability (or
// only D4h and the QEMU cannot use it).
Result<GpudirectPlan> plan_gpudirect(const model::GpuP2pSpec& p2p, const std::vector<model::AssignedGpu>& gpus,
                                     bool qemu_takes_d4);

}  // namespace feos::vmm::qemu
