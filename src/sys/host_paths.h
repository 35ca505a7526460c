#pragma once
// The only place that knows where the host's kernel interfaces live. Every other layer asks
// HostPaths for a path, so tests (and `feosd --sysfs-root/--dev-root/--proc-root`) can point the
// whole daemon at a fake tree.
#include <string>

namespace feos::sys {

struct HostPaths {
  std::string sysfs_root = "/sys";
  std::string dev_root = "/dev";
  std::string proc_root = "/proc";

  // <sysfs>/bus/pci/devices
  std::string pci_devices() const { return sysfs_root + "/bus/pci/devices"; }
  // <sysfs>/bus/pci/devices/<bdf>; `bdf` must already be validated (see pci::Address).
  std::string pci_device(const std::string& bdf) const { return pci_devices() + "/" + bdf; }
  // <sysfs>/bus/pci/drivers
  std::string pci_drivers() const { return sysfs_root + "/bus/pci/drivers"; }
  std::string pci_driver(const std::string& name) const { return pci_drivers() + "/" + name; }
  // <sysfs>/bus/pci/drivers_probe
  std::string pci_drivers_probe() const { return sysfs_root + "/bus/pci/drivers_probe"; }
  // <sysfs>/kernel/iommu_groups
  std::string iommu_groups() const { return sysfs_root + "/kernel/iommu_groups"; }
  // <sysfs>/module/<name>
  std::string kernel_module(const std::string& name) const { return sysfs_root + "/module/" + name; }
  // <dev>/vfio/<group>
  std::string vfio_group(const std::string& group) const { return dev_root + "/vfio/" + group; }
  // <dev>/kvm
  std::string kvm() const { return dev_root + "/kvm"; }
  // <dev>/hugepages (hugetlbfs mount used for guest RAM)
  std::string hugepages() const { return dev_root + "/hugepages"; }
  // <proc>/<pid>
  std::string process(long pid) const { return proc_root + "/" + std::to_string(pid); }
  // <proc>/cpuinfo ("address sizes": the CPU's physical address bits)
  std::string cpuinfo() const { return proc_root + "/cpuinfo"; }
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
