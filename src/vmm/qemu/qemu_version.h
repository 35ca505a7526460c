#pragma once
// The version of the qemu binary feosd runs, asked once at daemon start (`qemu -version`): what
// a VM's command line may use depends on it (QemuConfig::gpudirect_d4).
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace feos::vmm::qemu {

struct QemuVersion {
  int major = 0;
  int minor = 0;
  int micro = 0;
  bool at_least(int want_major, int want_minor) const {
    return major != want_major ? major > want_major : minor >= want_minor;
  }
};

// "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)" -> 7.2.19; nullopt for other text.
std::optional<QemuVersion> parse_qemu_version(std::string_view output);

// Runs `binary -version` and parses what it prints. NOT_FOUND when the binary cannot be run,
// INTERNAL when it fails or prints no version.
Result<QemuVersion> probe_qemu_version(const std::string& binary);

}  // namespace feos::vmm::qemu
