#pragma once
// Reading back, from /proc/<pid>/cmdline, what build_argv() wrote: which VM a qemu process belongs
// to, where its runtime files are, its accelerator and the host PCI functions it holds. A daemon
// that restarts uses it to find and adopt the processes of its VMs.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/qemu/argv_builder.h"

namespace feos::vmm::qemu {

struct QemuIdentity {
  std::string vm_id;                    // from "-name guest=<id>,..."
  std::string runtime_dir;              // the directory of "-pidfile <dir>/qemu.pid" ("" if none)
  Accel accel = Accel::kTcg;            // from "-accel"
  std::vector<std::string> vfio_hosts;  // "host=" of each "-device vfio-pci,...", as written
};

// Whether two VM ids name the same VM: ids are UUIDs, compared case-insensitively (a qemu started
// before ids were stored in lower case runs under the client's spelling).
bool same_vm_id(std::string_view a, std::string_view b);

// Splits the contents of /proc/<pid>/cmdline (arguments each ended by a NUL) into arguments.
std::vector<std::string> split_cmdline(std::string_view raw);

// The identity of a command line that build_argv() wrote; nullopt when `args` has no
// "-name guest=..." (not a qemu of feosd's).
std::optional<QemuIdentity> read_qemu_identity(const std::vector<std::string>& args);

}  // namespace feos::vmm::qemu
