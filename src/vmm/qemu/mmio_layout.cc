#include "vmm/qemu/mmio_layout.h"

#include <algorithm>
#include <bit>
#include <limits>

namespace feos::vmm::qemu {
namespace {

constexpr uint64_t kMaxBarSize = uint64_t{1} << kMaxPhysBits;

uint64_t round_up(uint64_t value, uint64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Sums that cannot overflow: a layout this large is refused anyway.
uint64_t add_capped(uint64_t a, uint64_t b) {
  constexpr uint64_t kCap = uint64_t{1} << 62;
  return std::min(kCap, std::min(kCap, a) + std::min(kCap, b));
}

// One bridge window holding `sizes` (powers of two <= 2^52): largest first, each aligned to its
// size, rounded up to the largest (at least the bridge granularity).
uint64_t window_size(std::vector<uint64_t> sizes) {
  if (sizes.empty()) return 0;
  std::sort(sizes.begin(), sizes.end(), std::greater<>());
  uint64_t offset = 0;
  for (uint64_t size : sizes) offset = round_up(offset, size) + size;
  return round_up(offset, std::max(sizes.front(), kBridgeWindowGranularity));
}

}  // namespace

std::string format_bytes(uint64_t bytes) {
  static constexpr struct {
    uint64_t unit;
    const char* name;
  } kUnits[] = {{kTiB, "TiB"}, {kGiB, "GiB"}, {kMiB, "MiB"}, {uint64_t{1} << 10, "KiB"}};
  for (const auto& [unit, name] : kUnits)
    if (bytes >= unit && bytes % unit == 0) return std::to_string(bytes / unit) + " " + name;
  return std::to_string(bytes) + " bytes";
}

std::string describe_reach(const AddressLayout& layout, uint64_t ram_bytes) {
  return "the guest address space must reach " + format_bytes(layout.address_end) +
         " (64-bit PCI hole of " + format_bytes(layout.hole64_size) + " at " +
         format_bytes(layout.hole64_start) + ", after " + format_bytes(ram_bytes) +
         " of RAM), which needs " + std::to_string(layout.phys_bits) +
         " physical address bits";
}

Result<BridgeWindows> bridge_windows(const std::vector<model::PassthroughFunction>& functions) {
  std::vector<uint64_t> pref;
  std::vector<uint64_t> non_pref;
  bool pref_below_4g = false;
  for (const auto& function : functions) {
    for (const auto& bar : function.bars) {
      if (bar.is_io || bar.size == 0) continue;
      std::string where = "function " + function.address.to_string() + " BAR " + std::to_string(bar.index);
      if (bar.size > kMaxBarSize)
        return fail(Code::kInvalidArgument, where + ": " + std::to_string(bar.size) +
                                                " bytes exceed a 52-bit address space");
      if (!std::has_single_bit(bar.size))
        return fail(Code::kInvalidArgument,
                    where + ": size " + std::to_string(bar.size) + " is not a power of two");
      if (bar.prefetchable) {
        pref.push_back(bar.size);
        if (!bar.is_64bit) pref_below_4g = true;
      } else {
        non_pref.push_back(bar.size);
      }
    }
  }
  BridgeWindows windows;
  windows.mmio32 = window_size(non_pref);
  uint64_t pref_window = window_size(pref);
  if (pref_below_4g) {
    windows.mmio32 += pref_window;
  } else if (pref_window != 0) {
    windows.pref64 = pref_window;
    windows.pref64_align = std::max(*std::max_element(pref.begin(), pref.end()),
                                    kBridgeWindowGranularity);
  }
  return windows;
}

Result<AddressLayout> plan_address_layout(uint64_t ram_bytes,
                                          const std::vector<BridgeWindows>& ports) {
  AddressLayout layout;
  uint64_t pref_sum = 0;
  uint64_t max_align = 0;
  for (const auto& port : ports) {
    pref_sum = add_capped(pref_sum, port.pref64);
    max_align = std::max(max_align, port.pref64_align);
    layout.mmio32_needed = add_capped(layout.mmio32_needed, port.mmio32);
  }
  if (layout.mmio32_needed > kMmio32Budget)
    return fail(Code::kFailedPrecondition,
                "the devices need " + format_bytes(layout.mmio32_needed) +
                    " of MMIO below 4 GiB (non-prefetchable and 32-bit BARs, per root port), more "
                    "than the " + format_bytes(kMmio32Budget) +
                    " q35's 32-bit PCI hole leaves for passed-through devices");
  // Windows placed largest alignment first stay aligned (each size is a multiple of its own
  // alignment, and alignments are powers of two), so only the first one needs slack.
  if (pref_sum != 0) layout.hole64_needed = round_up(add_capped(pref_sum, max_align), kGiB);
  layout.hole64_is_default = layout.hole64_needed <= kQ35DefaultHole64Size;
  layout.hole64_size = std::max(layout.hole64_needed, kQ35DefaultHole64Size);

  uint64_t ram = std::min(ram_bytes, uint64_t{1} << 60);
  uint64_t below_4g = ram >= kQ35LowRamSplitThreshold ? kQ35LowRamWhenSplit : ram;
  uint64_t above_4g = ram - below_4g;
  layout.hole64_start = round_up(4 * kGiB + above_4g, kGiB);
  if (add_capped(layout.hole64_start, layout.hole64_size) - 1 >= kAmdHtStart)
    layout.hole64_start = round_up(kAmdAbove1TbStart + above_4g, kGiB);
  layout.address_end = add_capped(layout.hole64_start, layout.hole64_size);
  layout.phys_bits = std::max(kMinPhysBits, static_cast<int>(std::bit_width(layout.address_end - 1)));
  if (layout.phys_bits > kMaxPhysBits)
    return fail(Code::kFailedPrecondition, describe_reach(layout, ram_bytes) +
                                               "; x86-64 has at most " +
                                               std::to_string(kMaxPhysBits));
  return layout;
}

Result<UefiAperture> plan_uefi_aperture(const AddressLayout& layout) {
  UefiAperture aperture;
  aperture.size = std::max(kOvmfDefaultAperture, std::bit_ceil(layout.hole64_needed));
  aperture.needs_fw_cfg = aperture.size > kOvmfDefaultAperture;
  aperture.base = round_up(layout.hole64_start, aperture.size);
  const uint64_t end = add_capped(aperture.base, aperture.size);
  aperture.phys_bits = std::max(layout.phys_bits, static_cast<int>(std::bit_width(end - 1)));
  if (aperture.phys_bits > kMaxPhysBits)
    return fail(Code::kFailedPrecondition,
                "UEFI firmware: the 64-bit windows need an aperture of " + format_bytes(aperture.size) +
                    " at " + format_bytes(aperture.base) + ", which needs " + std::to_string(aperture.phys_bits) +
                    " physical address bits; the limit is " + std::to_string(kMaxPhysBits));
  return aperture;
}


Result<std::vector<BridgeWindows>> card_ports(const model::AssignedGpu& gpu) {
  std::vector<BridgeWindows> ports;
  FEOS_ASSIGN_OR_RETURN(BridgeWindows card, bridge_windows(gpu.functions));
  ports.push_back(card);
  // Group peers and NVSwitches are devices of their own: each behind its own root port.
  for (const auto* list : {&gpu.group_peers, &gpu.fabric}) {
    for (const auto& device : *list) {
      FEOS_ASSIGN_OR_RETURN(BridgeWindows own, bridge_windows({device}));
      ports.push_back(own);
    }
  }
  return ports;
}

Result<GuestAddressSpace> plan_guest_address_space(uint64_t ram_bytes,
                                                   const std::vector<BridgeWindows>& ports, bool uefi) {
  GuestAddressSpace space;
  auto layout = plan_address_layout(ram_bytes, ports);
  if (!layout) return fail(layout.error().context("gpus"));
  space.layout = *layout;
  space.phys_bits = layout->phys_bits;
  space.reach = describe_reach(*layout, ram_bytes);
  if (uefi) {
    auto aperture = plan_uefi_aperture(*layout);
    if (!aperture) return fail(aperture.error().context("gpus"));
    space.aperture = *aperture;
    space.phys_bits = aperture->phys_bits;
    space.reach = "with UEFI firmware the 64-bit windows need an aperture of " +
                  format_bytes(aperture->size) + " at " + format_bytes(aperture->base) +
                  ", which needs " + std::to_string(aperture->phys_bits) + " physical address bits";
  }
  return space;
}

Status check_host_reach(const GuestAddressSpace& space, int host_phys_bits,
                        const std::vector<model::AssignedGpu>& gpus) {
  if (host_phys_bits <= 0 || space.phys_bits <= host_phys_bits) return ok();
  // "0000:18:00.0 256 GiB, 0000:2a:00.0 256 GiB": each card's 64-bit window.
  std::string windows;
  for (const auto& gpu : gpus) {
    auto card = bridge_windows(gpu.functions);
    windows += (windows.empty() ? "" : ", ") + gpu.functions.front().address.to_string() + " " +
               format_bytes(card ? card->pref64 : 0);
  }
  return fail(Code::kFailedPrecondition,
              "gpus: " + std::to_string(gpus.size()) + " GPU(s) with 64-bit windows of " + windows +
                  " do not fit on this host: " + space.reach + "; the host CPU has " +
                  std::to_string(host_phys_bits) + " (kvm guests get the host's address bits)");
}


model::FirmwareFit fit_cards(uint64_t ram_bytes, bool uefi, int host_phys_bits,
                             const std::vector<model::AssignedGpu>& cards) {
  model::FirmwareFit out;
  std::vector<BridgeWindows> ports;
  for (size_t n = 1; n <= cards.size(); ++n) {
    const std::vector<model::AssignedGpu> first(cards.begin(), cards.begin() + static_cast<long>(n));
    auto card = card_ports(cards[n - 1]);
    if (!card) {
      out.limit = card.error().message;
      break;
    }
    ports.insert(ports.end(), card->begin(), card->end());
    auto space = plan_guest_address_space(ram_bytes, ports, uefi);
    Status reach = space ? check_host_reach(*space, host_phys_bits, first) : fail(space.error());
    if (!reach) {
      out.limit = reach.error().message;
      break;
    }
    out.fit = static_cast<int>(n);
    out.phys_bits_needed = space->phys_bits;
  }
  return out;
}

}  // namespace feos::vmm::qemu
