#pragma once
// What one VM's guest address space can hold on this host: the answer `feosctl host check` gives
// per GPU model. The hypervisor computes it (vmm::Hypervisor::guest_limits, fit_gpus) with the
// address-space planner every start runs, so a count here is a start that would not be refused
// for its address bits. No protobuf here: api/ converts.
#include <cstdint>
#include <string>

namespace feos::model {

// The bounds of a guest on this host.
struct GuestLimits {
  int host_phys_bits = 0;        // the host CPU's physical address bits; 0 when unknown
  std::string accelerator;       // "kvm", "tcg": kvm guests get the host's bits
  int guest_phys_bits_max = 0;   // the most a guest may have here
  uint64_t guest_ram_bytes = 0;  // the guest RAM fit_gpus() assumes: the host's; 0 when unknown
  std::string uefi_firmware;     // the OVMF build a UEFI VM would use; "" when none
  std::string uefi_problem;      // why there is none (where it looked)
};

// How many of a list of cards fit one VM with one firmware.
struct FirmwareFit {
  int fit = 0;               // the first `fit` cards of the list fit together
  int phys_bits_needed = 0;  // what those `fit` cards need; 0 when fit is 0
  std::string limit;         // why card fit+1 does not fit (a start's own refusal); "" when all do
};

struct GpuFit {
  FirmwareFit bios;
  FirmwareFit uefi;
};

}  // namespace feos::model
