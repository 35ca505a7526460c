#include "vmm/qemu/run_as_grants.h"

#include <set>

#include "common/log.h"
#include "model/field_path.h"

namespace feos::vmm::qemu {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("qemu"); }

}  // namespace

Status RunAsGrants::grant(const sys::RunAs& user, const RuntimeDir& dir, bool with_ignition,
                          bool with_uefi_vars, const std::vector<std::string>& vfio_nodes) {
  auto give = [&](const std::string& path, sys::FileOwner to, sys::FileOwner back) -> Status {
    {
      // Recorded first: a chown that worked before a failed chmod is given back too.
      std::lock_guard lock(mutex_);
      given_.push_back({path, back});
    }
    return permissions_.set_owner(path, to);
  };
  FEOS_TRY(give(dir.path(), {0, user.gid, 01770}, kRootDir));
  if (with_ignition) FEOS_TRY(give(dir.files().ignition_file, {0, user.gid, 0640}, kRootPrivate));
  if (with_uefi_vars) FEOS_TRY(give(dir.files().uefi_vars, {user.uid, user.gid, 0600}, kRootPrivate));
  for (const auto& node : vfio_nodes) FEOS_TRY(give(node, {user.uid, user.gid, 0600}, kRootPrivate));
  return ok();
}

void RunAsGrants::take_over(std::vector<Grant> given) {
  std::lock_guard lock(mutex_);
  given_ = std::move(given);
}

void RunAsGrants::give_back() {
  std::vector<Grant> given;
  {
    std::lock_guard lock(mutex_);
    given.swap(given_);
  }
  for (auto it = given.rbegin(); it != given.rend(); ++it) {
    auto restored = permissions_.set_owner(it->path, it->back);
    if (restored)
      logger()->debug("gave back vm={} path={} owner={}:{} mode={:04o}", vm_id_, it->path,
                      it->back.uid, it->back.gid, it->back.mode);
    else if (restored.error().code == Code::kNotFound)  // a group node goes with its unbind
      logger()->debug("nothing to give back vm={} path={} (gone)", vm_id_, it->path);
    else
      logger()->warn("cannot give back vm={} path={} error=\"{}\"", vm_id_, it->path,
                     restored.error().message);
  }
}

std::vector<Grant> RunAsGrants::recorded() const {
  std::lock_guard lock(mutex_);
  return given_;
}

std::vector<std::string> vfio_group_nodes(const sys::HostPaths& paths,
                                          const std::vector<model::AssignedGpu>& gpus) {
  std::vector<std::string> nodes;
  std::set<std::string> seen;
  for (const auto& gpu : gpus) {
    for (const auto* function : model::passed_functions(gpu)) {
      if (!function->iommu_group) continue;  // build_argv() refused it already
      std::string node = paths.vfio_group(function->iommu_group->to_string());
      if (seen.insert(node).second) nodes.push_back(node);
    }
  }
  return nodes;
}

std::vector<Grant> adopted_grants(const sys::Filesystem& fs, const sys::HostPaths& paths, int pid,
                                  const std::vector<pci::Address>& vfio_functions,
                                  const RuntimeDir& dir, const std::string& vm_id) {
  // Only a qemu running as another user was given anything ("Uid:" lists the real uid first).
  auto status = fs.read_file(paths.process_file(pid, "status"));
  if (!status) return {};
  auto at = status->find("\nUid:");
  if (at == std::string::npos) return {};
  size_t digit = status->find_first_not_of(" \t", at + 5);
  if (digit == std::string::npos || (*status)[digit] == '0') return {};  // root (no leading zeros)
  std::vector<Grant> grants{{dir.path(), kRootDir}};
  if (fs.exists(dir.files().ignition_file)) grants.push_back({dir.files().ignition_file, kRootPrivate});
  if (fs.exists(dir.files().uefi_vars)) grants.push_back({dir.files().uefi_vars, kRootPrivate});
  std::set<std::string> seen;
  for (const auto& address : vfio_functions) {
    std::string link = paths.pci_device_attr(address.to_string(), "iommu_group");
    auto group = fs.read_link(link);
    if (!group) {
      logger()->warn("adopted qemu vm={} pid={}: no IOMMU group for {} ({}): its vfio node will "
                     "not be given back at exit",
                     vm_id, pid, address.to_string(), group.error().message);
      continue;
    }
    // Outside data (a link in sysfs): only a group number becomes a path component.
    auto number = pci::IommuGroup::parse(sys::basename_of(*group));
    if (!number) continue;
    std::string node = paths.vfio_group(number->to_string());
    if (seen.insert(node).second) grants.push_back({node, kRootPrivate});
  }
  return grants;
}

std::vector<sys::AccessCheck> chain_access_checks(const std::string& field, const ImageChain& chain,
                                                  bool writable, const std::string& requested) {
  // The top image and its data file as the disk is used, the backing files (and theirs)
  // read-only, as qemu opens them.
  std::vector<sys::AccessCheck> checks;
  auto need = [&](std::string what, const std::string& path, sys::Access access, std::string shown = {}) {
    if (!path.empty()) checks.push_back({std::move(what), path, access, std::move(shown)});
  };
  for (size_t k = 0; k < chain.size(); ++k) {
    std::string what = k == 0 ? field : field + " (backing file " + std::to_string(k) + ")";
    auto access = k == 0 && writable ? sys::Access::kReadWrite : sys::Access::kRead;
    need(what, chain[k].path, access, k == 0 ? requested : std::string());
    need(what + " (data file)", chain[k].data_file, access);
  }
  return checks;
}

std::vector<sys::AccessCheck> run_as_access_checks(const CheckedFiles& files, const RuntimeDir& dir,
                                                   const std::vector<std::string>& vfio_nodes,
                                                   const sys::HostPaths& paths, bool with_kvm,
                                                   const std::optional<UefiFirmware>& uefi,
                                                   const std::string& hugepages_dir) {
  const model::VmSpec& spec = files.spec;
  std::vector<sys::AccessCheck> checks;
  for (const auto& node : vfio_nodes) checks.push_back({"vfio group", node, sys::Access::kReadWrite});
  // `shown`: the path as requested, for files the request named (messages never show what they
  // resolved to).
  auto need = [&](std::string what, const std::string& path, sys::Access access, std::string shown = {}) {
    if (!path.empty()) checks.push_back({std::move(what), path, access, std::move(shown)});
  };
  need(model::field::kBootKernel, files.kernel, sys::Access::kRead, spec.boot.kernel);
  need(model::field::kBootInitramfs, files.initramfs, sys::Access::kRead, spec.boot.initramfs);
  auto need_chain = [&](const std::string& field, const ImageChain& chain, bool writable,
                        const std::string& requested) {
    auto chain_checks = chain_access_checks(field, chain, writable, requested);
    checks.insert(checks.end(), chain_checks.begin(), chain_checks.end());
  };
  need_chain(model::field::kImageRef, files.images.root, true, spec.image_path);
  for (size_t i = 0; i < spec.disks.size(); ++i)
    need_chain(model::field::disk(i, "path"), files.images.disks[i], !spec.disks[i].readonly,
               spec.disks[i].path);
  need("runtime dir", dir.path(), sys::Access::kCreateIn);
  if (spec.ignition) need(model::field::kIgnition, dir.files().ignition_file, sys::Access::kRead);
  if (spec.memory.hugepages) need(model::field::kMemoryHugepages, hugepages_dir, sys::Access::kCreateIn);
  if (with_kvm) need("accel kvm", paths.kvm(), sys::Access::kReadWrite);
  if (uefi) {
    need("UEFI firmware", uefi->code, sys::Access::kRead);
    need("UEFI variable store", dir.files().uefi_vars, sys::Access::kReadWrite);
  }
  return checks;
}

}  // namespace feos::vmm::qemu
