#pragma once
// Guest address-space arithmetic for passed-through PCI devices on QEMU 7.2's q35 machine: how
// much MMIO the firmware must place behind each pcie-root-port, how large q35's 64-bit PCI hole
// must be, where it ends, and how many guest physical address bits reach its end. Pure: a
// function of the guest RAM size and the devices' BARs.
//
// The QEMU facts below were read from QEMU 7.2's q35/pc code and checked against
// qemu-system-x86_64 7.2.22 with `qom-get /machine/q35 pci-hole64-start|end|size`:
//   - default 64-bit hole: 32 GiB (Q35_PCI_HOST_HOLE64_SIZE_DEFAULT = 1 << 35);
//   - RAM split: with RAM >= 2.75 GiB, 2 GiB stay below 4 GiB and the rest starts at 4 GiB;
//     smaller RAM lies entirely below 4 GiB;
//   - the 64-bit hole starts at the end of the RAM above 4 GiB (at 4 GiB when there is none),
//     rounded up to 1 GiB;
//   - for an AMD guest CPU (TCG's `-cpu max` is AuthenticAMD, KVM's `-cpu host` on an AMD host)
//     QEMU moves the RAM above 4 GiB to 1 TiB when the hole would reach the HyperTransport range
//     at 1012 GiB (so 8 H100s start their hole at 1 TiB + RAM above 4 GiB);
//   - QEMU refuses to start when hole start + size - 1 exceeds the CPU's phys-bits
//     ("Address space limit ... phys-bits too low"); phys-bits must be 32..52.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/capacity.h"
#include "model/gpu.h"

namespace feos::vmm::qemu {

inline constexpr uint64_t kMiB = uint64_t{1} << 20;
inline constexpr uint64_t kGiB = uint64_t{1} << 30;
inline constexpr uint64_t kTiB = uint64_t{1} << 40;

// q35's 64-bit PCI hole when `-global q35-pcihost.pci-hole64-size` is not given.
inline constexpr uint64_t kQ35DefaultHole64Size = 32 * kGiB;
// RAM at or above this size is split 2 GiB below 4 GiB, the rest above.
inline constexpr uint64_t kQ35LowRamSplitThreshold = 0xB0000000;
inline constexpr uint64_t kQ35LowRamWhenSplit = 2 * kGiB;
// AMD guests: the HyperTransport range starts here; RAM above 4 GiB then moves to 1 TiB.
inline constexpr uint64_t kAmdHtStart = 0xFD00000000;
inline constexpr uint64_t kAmdAbove1TbStart = kTiB;
// Guest physical address bits: 40 is QEMU's TCG default and a floor every x86-64 host meets;
// 52 is the architectural maximum (and QEMU's limit).
inline constexpr int kMinPhysBits = 40;
inline constexpr int kMaxPhysBits = 52;

// The 32-bit MMIO that passed-through devices may use. SeaBIOS (QEMU 7.2's default firmware,
// which also runs direct kernel boot) allocates below-4-GiB BARs on q35 from the end of the
// MMCONFIG window (0xB0000000 + 256 MiB = 0xC0000000) up to the IO-APIC at 0xFEC00000: 1004 MiB.
// 256 MiB of that stay reserved for the machine's own devices (virtio disks and NICs, ICH9
// functions, the root ports' minimum windows), leaving 748 MiB. (OVMF's 32-bit aperture on q35
// is at least as large.)
inline constexpr uint64_t kMmio32Window = 0xFEC00000 - 0xC0000000;
inline constexpr uint64_t kMmio32Reserved = 256 * kMiB;
inline constexpr uint64_t kMmio32Budget = kMmio32Window - kMmio32Reserved;

// A PCI bridge memory window has 1 MiB granularity.
inline constexpr uint64_t kBridgeWindowGranularity = kMiB;

// The memory windows firmware opens on one pcie-root-port for the functions behind it. A window
// packs its BARs largest first, each aligned to its size, and is rounded up to a multiple of its
// largest BAR (at least 1 MiB), since a bridge window must be aligned to the largest BAR it
// holds: an H100 (128 GiB + 32 MiB prefetchable) needs a 256 GiB window.
struct BridgeWindows {
  uint64_t pref64 = 0;        // 64-bit prefetchable window, placed in the 64-bit hole (0: none)
  uint64_t pref64_align = 0;  // its alignment (its largest BAR)
  // Windows placed below 4 GiB: the non-prefetchable one (which holds 64-bit non-prefetchable
  // BARs too, e.g. an NVIDIA BAR0) and, when any prefetchable BAR behind the port is 32-bit,
  // the whole prefetchable one (a bridge's prefetchable window is 64-bit only if all its BARs are).
  uint64_t mmio32 = 0;
};

// The windows of one root port holding `functions`. I/O BARs are ignored (x86 port I/O, not
// MMIO). Errors: INVALID_ARGUMENT naming the function when a BAR is larger than 2^52 bytes or
// not a power of two.
Result<BridgeWindows> bridge_windows(const std::vector<model::PassthroughFunction>& functions);

struct AddressLayout {
  // Sum of the 64-bit windows, plus one largest window alignment of slack (the hole starts on a
  // 1 GiB boundary, the first window needs its own alignment), rounded up to 1 GiB; 0 if none.
  uint64_t hole64_needed = 0;
  uint64_t hole64_size = 0;   // max(hole64_needed, kQ35DefaultHole64Size): the guest's hole
  bool hole64_is_default = true;  // hole64_needed fits the default: no -global needed
  uint64_t mmio32_needed = 0;     // sum of the below-4-GiB windows
  uint64_t hole64_start = 0;      // as QEMU places it (see the file comment)
  uint64_t address_end = 0;       // hole64_start + hole64_size: highest guest address + 1
  int phys_bits = 0;              // max(kMinPhysBits, bits to address address_end - 1)
};

// Lays out a guest with `ram_bytes` of RAM and one root port per entry of `ports`. The AMD
// relocation to 1 TiB is assumed whenever it would apply, whatever the host's vendor: on an
// Intel host that can only ask for more address bits than needed, never fewer.
// Errors: FAILED_PRECONDITION naming the numbers when the below-4-GiB windows exceed
// kMmio32Budget, or the layout needs more than kMaxPhysBits address bits.
Result<AddressLayout> plan_address_layout(uint64_t ram_bytes,
                                          const std::vector<BridgeWindows>& ports);

// OVMF (edk2 2022.11 as Debian 12 ships it) does not place 64-bit BARs in QEMU's hole but in an
// aperture of its own: kOvmfDefaultAperture, or the size fw_cfg `opt/ovmf/X-PciMmio64Mb` gives
// (in MiB), at the first address above RAM rounded up to that size (its power-of-two alignment).
// With guest phys-bits of 41 or more it takes the top eighth of the address space instead when
// that is larger. Measured here: eight 256 GiB BARs with phys-bits 43 and no fw_cfg get a
// 1 TiB aperture and only 3 of 8 are assigned; X-PciMmio64Mb=4194304 assigns all 8.
inline constexpr uint64_t kOvmfDefaultAperture = 32 * kGiB;

struct UefiAperture {
  uint64_t size = 0;          // the aperture OVMF uses (a power of two, >= kOvmfDefaultAperture)
  bool needs_fw_cfg = false;  // size exceeds the default: X-PciMmio64Mb = size / MiB
  uint64_t base = 0;          // hole64_start (the end of RAM) rounded up to size
  int phys_bits = 0;          // max(layout.phys_bits, bits to address base + size - 1)
};

// The aperture a UEFI guest with `layout` needs: the 64-bit windows (hole64_needed, which already
// holds the alignment slack) rounded up to a power of two, at least OVMF's default. A power of
// two aligned to itself holds windows that are powers of two themselves when placed largest first.
// Errors: FAILED_PRECONDITION when it needs more than kMaxPhysBits address bits.
Result<UefiAperture> plan_uefi_aperture(const AddressLayout& layout);

// The root ports build_argv() gives one card: its functions behind the first, each group peer
// behind one of its own. Errors: bridge_windows()'s.
Result<std::vector<BridgeWindows>> card_ports(const model::AssignedGpu& gpu);

// A guest's address space as a start plans it: QEMU's layout, with OVMF's aperture on top for a
// UEFI guest.
struct GuestAddressSpace {
  AddressLayout layout;
  std::optional<UefiAperture> aperture;  // UEFI guests only
  int phys_bits = 0;   // what the guest needs: the aperture's (UEFI), else the layout's
  std::string reach;   // the sentence behind phys_bits, for refusals
};

// plan_address_layout(), then plan_uefi_aperture() when `uefi`. Errors: theirs, with "gpus: ".
Result<GuestAddressSpace> plan_guest_address_space(uint64_t ram_bytes,
                                                   const std::vector<BridgeWindows>& ports, bool uefi);

// A kvm guest gets the host CPU's address bits: FAILED_PRECONDITION when `space` needs more than
// `host_phys_bits`, naming each of `gpus` with its card's 64-bit window. OK when host_phys_bits
// is 0 (unknown).
Status check_host_reach(const GuestAddressSpace& space, int host_phys_bits,
                        const std::vector<model::AssignedGpu>& gpus);

// How many of `cards`, taken in order, fit one guest with `ram_bytes` of RAM (with OVMF's aperture
// when `uefi`): the largest n for which a start of the first n would pass plan_guest_address_space()
// and, when host_phys_bits > 0 (kvm), check_host_reach(). The limit is that start's refusal.
model::FirmwareFit fit_cards(uint64_t ram_bytes, bool uefi, int host_phys_bits,
                             const std::vector<model::AssignedGpu>& cards);

// "the guest address space must reach <end> (64-bit PCI hole of <size> at <start>, after <ram> of
// RAM), which needs <phys_bits> physical address bits": the numbers behind a refusal.
std::string describe_reach(const AddressLayout& layout, uint64_t ram_bytes);

// "128 GiB", "16 MiB", "100 bytes": the largest binary unit that divides `bytes` exactly.
std::string format_bytes(uint64_t bytes);

}  // namespace feos::vmm::qemu
