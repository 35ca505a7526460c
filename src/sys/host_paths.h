#pragma once
// The only place that knows where the host's kernel interfaces live and how their paths are
// composed. Every other layer asks HostPaths for a path, so tests (and `feosd
// --sysfs-root/--dev-root/--proc-root`) can point the whole daemon at a fake tree.
//
// Arguments that become path components (bdf, driver, group, unit, attribute and file names) must
// already be validated by the caller (see pci::Address): nothing here checks them.
#include <cstdint>
#include <string>
#include <string_view>

namespace feos::sys {

struct HostPaths {
  std::string sysfs_root = "/sys";
  std::string dev_root = "/dev";
  std::string proc_root = "/proc";

  // --- sysfs: PCI devices and drivers ---

  // <sysfs>/bus/pci/devices
  std::string pci_devices() const { return sysfs_root + "/bus/pci/devices"; }
  // <sysfs>/bus/pci/devices/<bdf>
  std::string pci_device(const std::string& bdf) const { return pci_devices() + "/" + bdf; }
  // <sysfs>/bus/pci/devices/<bdf>/<attribute>: an attribute or link of the device (vendor,
  // driver, driver_override, iommu_group, resource, config, drm, ...).
  std::string pci_device_attr(const std::string& bdf, std::string_view attribute) const {
    return pci_device(bdf) + "/" + std::string(attribute);
  }
  // <sysfs>/bus/pci/drivers
  std::string pci_drivers() const { return sysfs_root + "/bus/pci/drivers"; }
  // <sysfs>/bus/pci/drivers/<driver>
  std::string pci_driver(const std::string& name) const { return pci_drivers() + "/" + name; }
  // <sysfs>/bus/pci/drivers/<driver>/<file>: bind, unbind, new_id, remove_id.
  std::string pci_driver_file(const std::string& driver, std::string_view file) const {
    return pci_driver(driver) + "/" + std::string(file);
  }
  // <sysfs>/bus/pci/drivers_probe
  std::string pci_drivers_probe() const { return sysfs_root + "/bus/pci/drivers_probe"; }

  // --- sysfs: IOMMU ---

  // <sysfs>/kernel/iommu_groups
  std::string iommu_groups() const { return sysfs_root + "/kernel/iommu_groups"; }
  // <sysfs>/kernel/iommu_groups/<group>/devices: one link per member.
  std::string iommu_group_devices(const std::string& group) const {
    return iommu_groups() + "/" + group + "/devices";
  }
  // <sysfs>/class/iommu: one entry per IOMMU unit (dmar0, ivhd0, ...).
  std::string iommu_class() const { return sysfs_root + "/class/iommu"; }
  // <sysfs>/class/iommu/<unit>/intel-iommu/ecap: an Intel DMAR unit's extended capabilities.
  std::string intel_iommu_ecap(const std::string& unit) const {
    return iommu_class() + "/" + unit + "/intel-iommu/ecap";
  }
  // <sysfs>/class/iommu/<unit>/amd-iommu: present for AMD-Vi units.
  std::string amd_iommu(const std::string& unit) const {
    return iommu_class() + "/" + unit + "/amd-iommu";
  }

  // <sysfs>/module/<name>
  std::string kernel_module(const std::string& name) const { return sysfs_root + "/module/" + name; }

  // --- device nodes ---

  // "<dev>/": every device node's path starts with it.
  std::string dev_prefix() const { return dev_root + "/"; }
  // <dev>/vfio/<group>
  std::string vfio_group(const std::string& group) const { return dev_root + "/vfio/" + group; }
  // <dev>/net/tun: every tap is opened through it.
  std::string tun() const { return dev_root + "/net/tun"; }
  // <dev>/kvm
  std::string kvm() const { return dev_root + "/kvm"; }
  // <sysfs>/devices/system/node/online: the online NUMA nodes ("0-1")
  std::string numa_nodes_online() const { return sysfs_root + "/devices/system/node/online"; }
  // <sysfs>/kernel/mm/hugepages/hugepages-<kib>kB/<file>: the host's pool of one hugepage size
  // (free_hugepages, nr_hugepages), all nodes together.
  std::string hugepage_pool(uint64_t kib, std::string_view file) const {
    return sysfs_root + "/kernel/mm/hugepages/hugepages-" + std::to_string(kib) + "kB/" + std::string(file);
  }
  // <sysfs>/devices/system/node/node<N>/hugepages/hugepages-<kib>kB/<file>: one node's pool.
  std::string node_hugepage_pool(int node, uint64_t kib, std::string_view file) const {
    return numa_node(node) + "/hugepages/hugepages-" + std::to_string(kib) + "kB/" + std::string(file);
  }
  // <sysfs>/class/net/<interface>
  std::string net_interface(const std::string& name) const { return sysfs_root + "/class/net/" + name; }
  // <sysfs>/class/net/<interface>/<attribute>: a tap's tun_flags, owner, group.
  std::string net_interface_attr(const std::string& name, std::string_view attribute) const {
    return net_interface(name) + "/" + std::string(attribute);
  }
  // <sysfs>/devices/system/node/node<N>: its meminfo, cpulist, hugepages/
  std::string numa_node(int node) const { return sysfs_root + "/devices/system/node/node" + std::to_string(node); }
  // <dev>/dri/<name>: a DRM node (card1, renderD129).
  std::string dri_node(const std::string& name) const { return dev_root + "/dri/" + name; }
  // <dev>/nvidia: followed by a minor it names one NVIDIA GPU's node.
  std::string nvidia_node_prefix() const { return dev_root + "/nvidia"; }
  // <dev>/nvidia<minor>
  std::string nvidia_node(int minor) const { return nvidia_node_prefix() + std::to_string(minor); }

  // --- proc ---

  // <proc>/<pid>
  std::string process(long pid) const { return proc_root + "/" + std::to_string(pid); }
  // <proc>/<pid>/<name>: comm, status, cmdline, ...
  std::string process_file(long pid, std::string_view name) const {
    return process(pid) + "/" + std::string(name);
  }
  // <proc>/<pid>/fd: one link per open file descriptor.
  std::string process_fd_dir(long pid) const { return process_file(pid, "fd"); }
  // <proc>/<pid>/fd/<fd>
  std::string process_fd(long pid, const std::string& fd) const {
    return process_fd_dir(pid) + "/" + fd;
  }
  // <proc>/cpuinfo ("address sizes": the CPU's physical address bits)
  std::string cpuinfo() const { return proc_root + "/cpuinfo"; }
  // <proc>/mounts (the hugetlbfs mounts and their page sizes)
  std::string mounts() const { return proc_root + "/mounts"; }
  // <proc>/meminfo ("MemTotal:": the host's RAM)
  std::string meminfo() const { return proc_root + "/meminfo"; }
  // <proc>/cmdline (the host kernel's command line: intel_iommu=on, ...)
  std::string kernel_cmdline() const { return proc_root + "/cmdline"; }
  // <proc>/driver/nvidia/version (the NVIDIA kernel driver's version)
  std::string nvidia_driver_version() const { return proc_root + "/driver/nvidia/version"; }
  // <proc>/driver/nvidia/gpus/<bdf>/information ("Device Minor: N" -> <dev>/nvidiaN)
  std::string nvidia_gpu_information(const std::string& bdf) const {
    return proc_root + "/driver/nvidia/gpus/" + bdf + "/information";
  }
};

}  // namespace feos::sys
