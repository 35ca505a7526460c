// Where a GPU reaches its peers (model::GpuPeerPath): its place in the PCIe tree, whether an
// NVSwitch fabric joins it, and where its config space has room for the GPUDirect capability.
// What the guest's GPUDirect cliques are planned from (vmm/qemu/gpudirect.h).
#include "hostdev/planning.h"
#include "pci/config_space.h"
#include "pci/topology.h"

namespace feos::hostdev::detail {
namespace {

// C8h is the GPUDirect spec's place for its 8-byte capability, D4h the revised spec's (Turing and
// newer have MSI-X at C8h). A place is taken when a standard capability starts there: QEMU 8.1's
// own test (vfio_add_nv_gpudirect_cap), which picks between the two the same way. Unreadable
// config space (a reader without CAP_SYS_ADMIN sees 64 bytes): unknown.
model::GpudirectSlot gpudirect_slot(const sys::Filesystem& fs, const sys::HostPaths& paths,
                                    const pci::Address& address) {
  const std::string path = paths.pci_device_attr(address.to_string(), "config");
  auto bytes = fs.read_file(path);
  if (!bytes || bytes->size() < pci::kConfigLegacySize) return model::GpudirectSlot::kUnknown;
  auto space = pci::parse_config_space(*bytes, path);
  if (!space || !space->problems.empty()) return model::GpudirectSlot::kUnknown;
  auto taken = [&](uint16_t at) {
    for (const auto& cap : space->capabilities)
      if (!cap.extended && cap.offset == at) return true;
    return false;
  };
  if (!taken(0xc8)) return model::GpudirectSlot::kC8;
  if (!taken(0xd4)) return model::GpudirectSlot::kD4;
  return model::GpudirectSlot::kNone;
}

}  // namespace

model::GpuPeerPath peer_path_of(PlanContext& context, const pci::Device& gpu) {
  model::GpuPeerPath path;
  auto known = context.view().topologies().find(gpu.address);
  std::optional<pci::Topology> topology;
  if (known != context.view().topologies().end()) {
    topology = known->second;
  } else if (auto read = pci::read_topology(context.fs(), context.paths(), gpu.address)) {
    topology = *read;
  }
  if (topology) {
    path.pcie_root = topology->pcie_root;
    path.pcie_switch = topology->switch_upstream;
  }
  if (context.view().displays_loaded()) {
    if (auto fabric = context.fabric(); fabric && (*fabric)->present())
      path.nvlink = (*fabric)->is_board_gpu(gpu.address);
  }
  if (gpu.vendor_id == pci::kVendorNvidia && gpu.is_display())
    path.cap_slot = gpudirect_slot(context.fs(), context.paths(), gpu.address);
  return path;
}

}  // namespace feos::hostdev::detail
