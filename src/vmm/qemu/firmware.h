#pragma once
// UEFI firmware for q35 guests, as QEMU's firmware interop descriptors offer it (QEMU's
// docs/interop/firmware.json; Debian's `ovmf` package installs them in /usr/share/qemu/firmware),
// and the check of a VM's own UEFI variable store. BIOS guests need nothing from here: qemu's
// default firmware is SeaBIOS.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "sys/filesystem.h"

namespace feos::vmm::qemu {

// Where QEMU looks for descriptors, in priority order: a file in an earlier directory hides a
// file of the same name in a later one (the interop spec's rule).
inline const std::vector<std::string> kFirmwareDescriptorDirs = {"/etc/qemu/firmware",
                                                                "/usr/share/qemu/firmware"};
// What `-machine q35` is in Debian 12's QEMU, matched against the descriptors' machine globs.
inline constexpr std::string_view kQ35MachineType = "pc-q35-7.2";

struct UefiFirmware {
  std::string descriptor;     // the JSON file that offered it
  std::string code;           // the executable flash image, mapped read-only (pflash0)
  std::string vars_template;  // the variable store each new VM starts from (pflash1)
  uint64_t vars_size = 0;     // the template's size: every VM's store must have it
  bool requires_smm = false;  // Secure Boot builds: q35 with smm=on and a secure pflash
};

// The first descriptor (by file name, across `dirs` as above) for x86_64 q35 with interface
// "uefi" on raw flash that matches the request: with `secure_boot`, one whose features include
// "secure-boot", "enrolled-keys" and "requires-smm" (Secure Boot enforced from the first boot);
// without, one that does not require SMM. Its code and variable-store files must exist.
// Errors: FAILED_PRECONDITION "UEFI firmware: no QEMU firmware descriptor in <dirs> offers <what>
// (Debian's ovmf package installs them)"; FAILED_PRECONDITION naming the descriptor and the path
// when a matching descriptor names a file that is missing. Descriptors that are not valid JSON or
// not of this shape are skipped (and named in the first error when nothing matched).
Result<UefiFirmware> find_uefi_firmware(const sys::Filesystem& fs,
                                        const std::vector<std::string>& dirs, bool secure_boot);

// Checks the bytes of a VM's variable store at `path` before qemu gets it: the template's size,
// an EFI firmware volume header (signature "_FVH", length = the file's size, header checksum 0)
// and after it a variable store header marked formatted (0x5a) and healthy (0xfe).
// Errors: FAILED_PRECONDITION "UEFI variable store <path>: <what is wrong>; delete the VM, or
// replace the file by a copy of <template> (its variables are lost)".
Status check_uefi_vars(std::string_view bytes, const UefiFirmware& firmware, const std::string& path);

}  // namespace feos::vmm::qemu
