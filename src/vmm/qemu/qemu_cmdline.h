#pragma once
// Reading back, from /proc/<pid>/cmdline, what build_argv() wrote: which VM a qemu process belongs
// to, where its runtime files are, its accelerator, the host PCI functions it holds and the host
// NUMA node of each vCPU. A daemon
// that restarts uses it to find and adopt the processes of its VMs. The only reader of qemu's
// command line; the format's shared parts are in argv_builder.h.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "pci/address.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"
#include "vmm/qemu/argv_builder.h"

namespace feos::vmm::qemu {

struct QemuIdentity {
  std::string vm_id;                    // from "-name guest=<id>,..."
  std::string runtime_dir;              // the directory of "-pidfile <dir>/qemu.pid" ("" if none)
  Accel accel = Accel::kTcg;            // from "-accel"
  // The "host=" of each "-device vfio-pci,...", parsed; one that is not a PCI address is left out
  // (not one build_argv() wrote).
  std::vector<pci::Address> vfio_functions;
  // The host NUMA node of each vCPU index of a guest NUMA layout (guest_numa.h): "-numa
  // node,...,cpus=A-B,memdev=M" and the "host-nodes=N" of memory backend M. Empty without one.
  std::map<int, int> vcpu_host_nodes;
};

// Whether two VM ids name the same VM: ids are UUIDs, compared case-insensitively (a qemu started
// before ids were stored in lower case runs under the client's spelling).
bool same_vm_id(std::string_view a, std::string_view b);

// Splits the contents of /proc/<pid>/cmdline (arguments each ended by a NUL) into arguments.
std::vector<std::string> split_cmdline(std::string_view raw);

// The identity of a command line that build_argv() wrote; nullopt when `args` has no
// "-name guest=..." (not a qemu of feosd's).
std::optional<QemuIdentity> read_qemu_identity(const std::vector<std::string>& args);

// The identity of process `pid` from <proc>/<pid>/cmdline. NOT_FOUND "<where>: <read error>" when
// it is gone, "<where> is not a qemu started by feosd" when read_qemu_identity() finds none.
Result<QemuIdentity> read_process_identity(const sys::Filesystem& fs, const sys::HostPaths& paths,
                                           int pid, const std::string& where);

}  // namespace feos::vmm::qemu
