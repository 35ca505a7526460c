#pragma once
// What an unprivileged qemu user (QemuConfig::run_as) is given for one VM, and the give-back of
// all of it when the process ends or its start fails. Only the daemon's own paths change owner:
// the runtime directory, the ignition file and the VM's /dev/vfio/<group> nodes. Request files
// are never given away; the user must be able to open them already (run_as_access_checks()).
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "model/gpu.h"
#include "pci/address.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"
#include "sys/permissions.h"
#include "sys/run_as.h"
#include "vmm/qemu/request_files.h"
#include "vmm/qemu/firmware.h"
#include "vmm/qemu/runtime_dir.h"

namespace feos::vmm::qemu {

// A path given to the user, and the owner it gets back.
struct Grant {
  std::string path;
  sys::FileOwner back;
};

// What the paths get back: the kernel's owner and mode of a vfio group node, and the daemon's of
// its own files.
inline constexpr sys::FileOwner kRootPrivate{0, 0, 0600};
inline constexpr sys::FileOwner kRootDir{0, 0, 0755};

// The ledger of one qemu process's grants. Thread-safe: give_back() runs on the exit watcher's
// thread.
class RunAsGrants {
 public:
  // `permissions` must outlive every call; `vm_id` names the VM in logs.
  RunAsGrants(sys::Permissions& permissions, std::string vm_id)
      : permissions_(permissions), vm_id_(std::move(vm_id)) {}

  // Gives `user`, in this order: `dir` as root:<user's gid> 01770 (qemu creates its sockets and
  // pidfile there; the sticky bit keeps it from replacing the daemon's files), the ignition file
  // as root:<gid> 0640 when `with_ignition`, the UEFI variable store as <uid>:<gid> 0600 when
  // `with_uefi_vars` (qemu writes it), and each of `vfio_nodes` as <uid>:<gid> 0600
  // (<dev>/vfio/vfio, the container, stays as the kernel made it, 0666). Each path is recorded
  // before it changes, so a chown that worked before a failed chmod is given back too.
  // Errors: set_owner()'s for the first path that fails (what was given stays recorded).
  Status grant(const sys::RunAs& user, const RuntimeDir& dir, bool with_ignition, bool with_uefi_vars,
               const std::vector<std::string>& vfio_nodes);

  // Records what the daemon that started an adopted qemu gave its user (adopted_grants()), to be
  // given back like the rest. Replaces the list; changes no owner.
  void take_over(std::vector<Grant> given);

  // Gives every recorded path back to its owner, newest first, and forgets them. Failures are
  // logged, not returned: the process is gone either way (a group node that went away with its
  // unbind is no failure).
  void give_back();

  // What give_back() would give back now, oldest first.
  std::vector<Grant> recorded() const;

 private:
  sys::Permissions& permissions_;
  const std::string vm_id_;
  mutable std::mutex mutex_;
  std::vector<Grant> given_;
};

// The distinct <dev>/vfio/<group> nodes of `gpus` (functions and group peers), in order.
std::vector<std::string> vfio_group_nodes(const sys::HostPaths& paths,
                                          const std::vector<model::AssignedGpu>& gpus);

// What RunAsGrants::grant() gave the user of adopted qemu `pid`, read from the host: nothing when
// the process runs as root or its <proc>/<pid>/status cannot be read ("Uid:", the real uid);
// otherwise `dir`, the ignition file and the UEFI variable store when they exist, and the vfio node of the IOMMU group of each
// of `vfio_functions` (the group from <sysfs>/bus/pci/devices/<address>/iommu_group; a function
// without one is logged and skipped, a group named twice given back once). `vm_id` names the VM in
// logs.
std::vector<Grant> adopted_grants(const sys::Filesystem& fs, const sys::HostPaths& paths, int pid,
                                  const std::vector<pci::Address>& vfio_functions,
                                  const RuntimeDir& dir, const std::string& vm_id);

// What the user must reach of one disk's image graph (`chain`, the top image first), named
// `field` (its backing files "<field> (backing file k)", data files "... (data file)"): the top
// image and its data file read and write when `writable`, else read; every backing file and its
// data file read. The top image is shown as `requested` (the path as the request gave it).
std::vector<sys::AccessCheck> chain_access_checks(const std::string& field, const ImageChain& chain,
                                                  bool writable, const std::string& requested);

// What the user must reach for qemu to start, checked in a child holding only its identity
// (Permissions::check_access) before launch, in this order: each of `vfio_nodes` read and write;
// the kernel and initramfs read; every file of each disk's image graph (the root image is
// "config.image_ref", disk i "config.disks[i].path"): the top image and its data file read and
// write unless the disk is read-only, the backing files and their data files read; `dir` create files in; the
// ignition file read when the spec has one; `hugepages_dir` (the hugetlbfs mount of the VM's page
// size) create files in when the spec asks for hugepages;
// <dev>/kvm read and write when `with_kvm`; with `uefi`, its code read and the VM's variable
// store read and write. Request files are named as the request gave them.
std::vector<sys::AccessCheck> run_as_access_checks(const CheckedFiles& files, const RuntimeDir& dir,
                                                   const std::vector<std::string>& vfio_nodes,
                                                   const sys::HostPaths& paths, bool with_kvm,
                                                   const std::optional<UefiFirmware>& uefi,
                                                   const std::string& hugepages_dir);

}  // namespace feos::vmm::qemu
