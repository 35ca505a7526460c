// The GPU component of the argv: one pcie-root-port per card with the card's functions as
// vfio-pci devices, group peers on ports of their own, and the address space they need (QEMU's
// 64-bit hole, OVMF's aperture, phys-bits; mmio_layout.h). See build_argv() for the argv it writes.
#include <set>

#include "model/field_path.h"
#include "pci/address.h"
#include "vmm/qemu/gpudirect.h"
#include "vmm/qemu/machine_plan.h"

namespace feos::vmm::qemu::internal {
namespace {

// Checks that one passed-through function has an IOMMU group (the adapter opens its /dev/vfio node)
// and returns its address. `seen` catches a function passed twice.
Result<pci::Address> check_function(const model::PassthroughFunction& function,
                                    const std::string& field, std::set<pci::Address>& seen) {
  const pci::Address& address = function.address;
  if (!seen.insert(address).second)
    return fail(Code::kInvalidArgument, field + ": " + address.to_string() + " is passed twice");
  if (!function.iommu_group)
    return fail(Code::kInvalidArgument, field + ": " + address.to_string() + " has no IOMMU group");
  return address;
}

std::string class_hex(uint32_t class_code) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "0x";
  for (int shift = 20; shift >= 0; shift -= 4) out += kDigits[(class_code >> shift) & 0xf];
  return out;
}

bool is_vga(const model::PassthroughFunction& function) {
  return (function.class_code >> 8) == 0x0300;
}

bool is_nvidia_display(const model::PassthroughFunction& function) {
  bool nvidia = function.id.size() >= 5 && (function.id.compare(0, 5, "10de:") == 0 ||
                                            function.id.compare(0, 5, "10DE:") == 0);
  return nvidia && (function.class_code >> 16) == 0x03;
}

bool has_io_bar(const std::vector<model::PassthroughFunction>& functions) {
  for (const auto& function : functions)
    for (const auto& bar : function.bars)
      if (bar.is_io) return true;
  return false;
}

// One pcie-root-port for `functions` on `bus` (pcie.0, or a guest NUMA node's expander bus). Unique (chassis, slot) pairs: qemu
// refuses duplicates, and the guest names hotplug slots by slot number. Without an I/O BAR behind
// it the port reserves no I/O ports: OVMF otherwise pads each hotplug port with 4 KiB of q35's
// 40 KiB of I/O space, and past ten ports (a board's 8 GPUs and 4 NVSwitches) the ports it cannot
// pad get no windows at all (shown by tests/firmware's ovmf_h200_board).
QemuOpts root_port(const std::string& id, const std::string& bus, int slot,
                   const std::vector<model::PassthroughFunction>& functions) {
  QemuOpts port("pcie-root-port");
  port.set("id", id).set("bus", bus).set("chassis", "1").set("slot", std::to_string(slot));
  if (!has_io_bar(functions)) port.set("io-reserve", "0");
  return port;
}

struct FunctionOptions {
  bool multifunction = false;
  bool rombar_off = false;
  bool x_vga = false;
  std::optional<int> clique;  // x-nv-gpudirect-clique, on an NVIDIA display function only
};

// Host function `address` as guest function `guest_function` of slot 0 behind root port `bus`.
QemuOpts vfio_function(const model::PassthroughFunction& function, const pci::Address& address,
                       uint8_t guest_function, const std::string& id, const std::string& bus,
                       const FunctionOptions& options) {
  QemuOpts device{std::string(kVfioDriver)};
  device.set(std::string(kVfioHostKey), address.to_string())
      .set("id", id)
      .set("bus", bus)
      .set("addr", "0x0." + std::to_string(guest_function));
  if (options.multifunction) device.set("multifunction", "on");
  if (options.rombar_off) device.set("rombar", "0");
  if (options.x_vga) device.set("x-vga", "on");
  if (options.clique && is_nvidia_display(function))
    device.set("x-nv-gpudirect-clique", std::to_string(*options.clique));
  return device;
}

}  // namespace

// Root ports and vfio-pci functions for `gpus`, plus the 64-bit hole and phys-bits they need
// (see build_argv()). Errors as build_argv()'s for GPUs, without the "vm <id>: " prefix.
Status add_gpus(MachinePlan& plan, const ArgvConfig& config, const model::VmSpec& spec,
                const std::vector<model::AssignedGpu>& gpus) {
  if (gpus.empty()) return ok();
  std::set<pci::Address> seen;
  std::vector<BridgeWindows> ports;
  std::vector<QemuOpts> devices;
  int slot = 0;
  int boot_vga_cards = 0;
  FEOS_ASSIGN_OR_RETURN(GpudirectPlan cliques, plan_gpudirect(spec.gpu_p2p, gpus, config.gpudirect_d4));
  for (size_t i = 0; i < gpus.size(); ++i) {
    const auto& gpu = gpus[i];
    std::string field = model::field::gpu(i);
    if (gpu.functions.empty())
      return fail(Code::kInvalidArgument, field + ": no host functions were assigned");
    std::vector<pci::Address> addresses;
    for (const auto& function : gpu.functions) {
      auto address = check_function(function, field, seen);
      if (!address) return fail(address.error());
      addresses.push_back(*address);
    }
    if (addresses[0].function() != 0)
      return fail(Code::kInvalidArgument, field + ": the first function is " +
                                              addresses[0].to_string() + ", not function 0");
    for (const auto& address : addresses)
      if (!address.same_slot(addresses[0]))
        return fail(Code::kInvalidArgument, field + ": " + address.to_string() +
                                                " is not in the slot of " +
                                                addresses[0].to_string());
    bool x_vga = gpu.request.boot_vga;
    if (x_vga) {
      if (!is_vga(gpu.functions[0]))
        return fail(Code::kInvalidArgument,
                    field + ": boot_vga: " + addresses[0].to_string() +
                        " is not a VGA controller (class " +
                        class_hex(gpu.functions[0].class_code) + ")");
      // The legacy VGA ranges (0xa0000, ports 0x3b0-0x3df) can go to one device only.
      if (++boot_vga_cards > 1)
        return fail(Code::kInvalidArgument,
                    field + ": boot_vga: only one GPU can be the guest's VGA");
    }
    for (size_t j = 0; j < gpu.group_peers.size(); ++j) {
      auto peer = check_function(gpu.group_peers[j], field + ".group_peers[" + std::to_string(j) + "]", seen);
      if (!peer) return fail(peer.error());
    }
    for (size_t j = 0; j < gpu.fabric.size(); ++j) {
      auto nvswitch = check_function(gpu.fabric[j], field + ".fabric[" + std::to_string(j) + "]", seen);
      if (!nvswitch) return fail(nvswitch.error());
    }
    auto card_windows = card_ports(gpu);
    if (!card_windows) return fail(card_windows.error().context(field));
    ports.insert(ports.end(), card_windows->begin(), card_windows->end());

    std::string card = "feos-gpu" + std::to_string(i);
    std::string bus = card + "-rp";
    const std::string parent = i < plan.gpu_bus.size() ? plan.gpu_bus[i] : std::string("pcie.0");
    devices.push_back(root_port(bus, parent, ++slot, gpu.functions));
    for (size_t f = 0; f < gpu.functions.size(); ++f) {
      FunctionOptions options;
      options.multifunction = f == 0 && gpu.functions.size() > 1;
      options.rombar_off = gpu.request.rombar == model::RomBar::kOff;
      options.x_vga = f == 0 && x_vga;
      options.clique = cliques.clique[i];
      uint8_t function = addresses[f].function();
      devices.push_back(vfio_function(gpu.functions[f], addresses[f], function,
                                      card + "-f" + std::to_string(function), bus, options));
    }
    // A group peer is a device of its own (not part of the card): its own root port, function 0.
    for (size_t j = 0; j < gpu.group_peers.size(); ++j) {
      const auto& peer = gpu.group_peers[j];
      std::string peer_id = card + "-peer" + std::to_string(j);
      devices.push_back(root_port(peer_id + "-rp", parent, ++slot, {peer}));
      devices.push_back(vfio_function(peer, peer.address, 0, peer_id, peer_id + "-rp", {}));
    }
    // So is an NVSwitch of the board's fabric (the guest's fabric manager finds it by itself).
    for (size_t j = 0; j < gpu.fabric.size(); ++j) {
      const auto& nvswitch = gpu.fabric[j];
      std::string switch_id = card + "-fabric" + std::to_string(j);
      devices.push_back(root_port(switch_id + "-rp", parent, ++slot, {nvswitch}));
      devices.push_back(vfio_function(nvswitch, nvswitch.address, 0, switch_id, switch_id + "-rp", {}));
    }
  }

  for (auto& decision : cliques.decisions) plan.decisions.push_back(std::move(decision));

  uint64_t ram = spec.memory.size_mib * kMiB;
  const bool uefi = spec.firmware.kind == model::FirmwareKind::kUefi;
  FEOS_ASSIGN_OR_RETURN(GuestAddressSpace space, plan_guest_address_space(ram, ports, uefi));
  const AddressLayout& layout = space.layout;
  if (space.aperture) {
    const UefiAperture& aperture = *space.aperture;
    plan.aperture = aperture;
    plan.decisions.push_back("UEFI: OVMF's 64-bit aperture " + format_bytes(aperture.size) + " at " +
                             format_bytes(aperture.base) +
                             (aperture.needs_fw_cfg ? " (more than its default 32 GiB: X-PciMmio64Mb set)"
                                                    : " (its default)"));
    if (aperture.needs_fw_cfg)
      plan.fw_cfg.push_back(QemuOpts()
                                .set("name", "opt/ovmf/X-PciMmio64Mb")
                                .set("string", std::to_string(aperture.size / kMiB)));
  }
  if (config.accel == Accel::kKvm) {
    FEOS_TRY(check_host_reach(space, config.host_phys_bits, gpus));
    plan.cpu.set("host-phys-bits", "on");
    plan.decisions.push_back(
        "guest physical address bits: the host CPU's (host-phys-bits=on, " +
        (config.host_phys_bits > 0 ? std::to_string(config.host_phys_bits) + " bits"
                                   : std::string("not known")) +
        "); the layout needs " + std::to_string(layout.phys_bits));
  } else {
    plan.cpu.set("phys-bits", std::to_string(space.phys_bits));
    plan.decisions.push_back("guest physical address bits: " + std::to_string(space.phys_bits) +
                             " (-cpu max,phys-bits), to reach " +
                             format_bytes(plan.aperture ? plan.aperture->base + plan.aperture->size
                                                        : layout.address_end));
  }
  if (!layout.hole64_is_default)
    plan.globals.push_back(
        QemuOpts().set("q35-pcihost.pci-hole64-size", std::to_string(layout.hole64_size)));
  plan.decisions.push_back(
      "64-bit PCI hole: " + format_bytes(layout.hole64_size) + " at " +
      format_bytes(layout.hole64_start) + "; the 64-bit BAR windows need " +
      format_bytes(layout.hole64_needed) +
      (layout.hole64_is_default ? ", which q35's default 32 GiB holds"
                                 : ", more than q35's default 32 GiB: pci-hole64-size set"));
  plan.decisions.push_back("below 4 GiB: " + format_bytes(layout.mmio32_needed) + " of the " +
                           format_bytes(kMmio32Budget) + " q35 leaves for passed-through devices");
  plan.layout = layout;
  for (auto& device : devices) plan.devices.push_back(std::move(device));
  return ok();
}

}  // namespace feos::vmm::qemu::internal
