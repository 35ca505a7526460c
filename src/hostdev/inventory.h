#pragma once
// Read-only views of the host for `feosctl gpu list` and `feosctl host check`: every PCI function
// with its passthrough status, and whether the host is ready for passthrough (IOMMU, interrupt
// remapping, vfio-pci, each GPU). Answers "would prepare() take this GPU now?" with the same plan
// checks HostDevices runs, without side effects. Reads through sys::Filesystem and
// sys::HostPaths, the ledger only to see which VM holds what.
//
// Thread-safe: inventory() and check_host() may run concurrently (and with HostDevices).
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "hostdev/options.h"
#include "hostdev/policy.h"
#include "model/gpu.h"
#include "pci/address.h"
#include "pci/device.h"
#include "pci/topology.h"
#include "store/device_ledger.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"

namespace feos::hostdev {

namespace detail {
class DeviceCache;
}

enum class Readiness { kYes, kNo, kUnknown };

// Where a device stands for passthrough.
enum class DeviceStatus {
  kAvailable,      // a GPU (or a function of one) that prepare() would take now
  kAssigned,       // held by a VM in the ledger (assigned_vm)
  kNotAssignable,  // reason says why
};

// An endpoint under the same PCIe switch as a GPU (a NIC, an NVMe drive): traffic between them
// stays in the switch, which is why a VM that gets the GPU often wants its neighbours too.
struct SwitchPeer {
  pci::Address address;
  pci::DeviceId id;
  std::string class_name;  // as InventoryDevice::class_name
};

struct InventoryDevice {
  pci::Device device;  // local_cpus and numa_node say which CPUs are near it
  std::string vendor_name;  // pci.ids names; empty when unknown or no database
  std::string device_name;
  std::string class_name;    // pci.ids, else a built-in base-class name ("network controller")
  bool is_bridge = false;    // a PCI-to-PCI bridge: never passed, ignored in group checks
  bool is_gpu = false;       // display/3D class (03xx)
  std::string gpu;           // for a companion function: its GPU's address; for a GPU: itself
  std::vector<pci::Address> group_members;  // its IOMMU group's members (itself included)
  DeviceStatus status = DeviceStatus::kNotAssignable;
  std::string assigned_vm;   // kAssigned
  std::string reason;        // kNotAssignable (e.g. "boot VGA", "no IOMMU group"), or a note
  // Its root bus, the bridges above it and the upstream port of the PCIe switch it hangs under;
  // absent when its sysfs path is not a PCIe tree (pci::read_topology).
  std::optional<pci::Topology> topology;
  // For a GPU (the function `gpu` names itself): the other endpoints under its switch, functions
  // of its own slot excluded, in address order. Empty without a switch.
  std::vector<SwitchPeer> switch_peers;
  // For an NVIDIA GPU: the key of the GPUs it can share a GPUDirect clique with (its root bus,
  // "pci0000:15": under one PCIe switch or one root complex; model::p2p_domain) and those GPUs,
  // in address order. Empty for other vendors, an unknown place, and an HGX board's GPUs (NVLink
  // joins them: no clique needed).
  std::string p2p_domain;
  std::vector<pci::Address> p2p_peers;
};

// An NVSwitch of an HGX board (pci::Device::is_nvswitch).
struct NvSwitch {
  pci::Address address;
  pci::DeviceId id;
  std::string name;  // pci.ids name or ""
  std::optional<pci::IommuGroup> iommu_group;
};

struct Inventory {
  bool iommu_enabled = false;
  std::vector<InventoryDevice> devices;  // every PCI function, sorted by address
  std::vector<NvSwitch> nvswitches;      // by address; empty on hosts without NVSwitches
};

struct GpuReadiness {
  std::string address;  // "0000:18:00.0"
  std::string id;       // "10de:2330"
  std::string name;     // pci.ids name or ""
  std::string driver;   // current driver or ""
  bool ready = false;   // prepare() would accept it now (or it is held by a VM: see reason)
  std::string reason;   // why not ready; "assigned to vm X" for held ones; "" when ready
  // How vfio-pci can reset it between VMs (pci::Device::reset_methods); empty: none, so GPU
  // memory and state may carry over from one VM to the next.
  std::vector<std::string> reset_methods;
};

// The GPUs of one model on the host, each as a whole card: what `feosctl host check` asks the
// hypervisor to fit into one VM.
struct GpuModel {
  std::string id;    // "10de:2335"
  std::string name;  // pci.ids name or ""
  // In address order, whatever their status: every function of the card's slot, and the other
  // endpoints of its IOMMU groups as group peers (what a VM taking it would get at most).
  std::vector<model::AssignedGpu> cards;
  // On an HGX board, the GPU counts its NVSwitch fabric lets one VM take (fabric.cc's rules:
  // the whole board, or the sizes of the shared mode's partitions), ascending; empty: any count.
  // With the whole board, the first card carries the NVSwitches (`fabric`), as a start gives them.
  std::vector<size_t> fabric_counts;
  std::string fabric_rule;  // the rule in words, "" without one
};

struct HostCheck {
  bool iommu_enabled = false;
  std::string iommu_detail;  // "62 IOMMU groups" or the hint to enable it
  Readiness interrupt_remapping = Readiness::kUnknown;
  std::string interrupt_remapping_detail;
  bool vfio_pci_available = false;
  std::string vfio_pci_detail;
  std::string policy;  // Policy::describe()
  std::vector<GpuReadiness> gpus;
  std::vector<GpuModel> models;  // by id
  std::vector<NvSwitch> nvswitches;  // as Inventory::nvswitches
  // With NVSwitches: how the policy's nvswitch_mode uses them, one sentence ("fabric mode
  // full-passthrough: a VM with all 8 GPUs also gets the NVSwitches ..."); nvswitch_mode_set is
  // false (a warning, not a refusal) when the policy names no mode.
  bool nvswitch_mode_set = false;
  std::string nvswitch_mode_detail;
  // The host can pass a GPU now: IOMMU on, vfio-pci available, interrupt remapping not known to
  // be off (unknown is reported, not failed), and at least one GPU ready.
  bool ready = false;
};

class HostInventory {
 public:
  // `fs` and `ledger` must outlive this object. `policy` and `options` as HostDevices has them.
  HostInventory(const sys::Filesystem& fs, sys::HostPaths paths, store::DeviceLedger& ledger,
                Policy policy, Options options = {});
  ~HostInventory();
  HostInventory(const HostInventory&) = delete;
  HostInventory& operator=(const HostInventory&) = delete;

  // Every PCI function with its facts, names, IOMMU group, and passthrough status. Reads devices
  // in parallel; static facts are kept between calls (only what changes at run time is re-read).
  // Errors: NOT_FOUND when <sysfs>/bus/pci/devices is missing; INTERNAL for unreadable sysfs;
  // ledger errors.
  Result<Inventory> inventory() const;

  // Host readiness for passthrough: IOMMU, interrupt remapping, vfio-pci, and each GPU.
  // Errors: as inventory().
  Result<HostCheck> check_host() const;

 private:
  const sys::Filesystem& fs_;
  const sys::HostPaths paths_;
  store::DeviceLedger& ledger_;
  const Policy policy_;
  const Options options_;
  // Static PCI facts kept between inventory() calls.
  const std::unique_ptr<detail::DeviceCache> device_cache_;
};

}  // namespace feos::hostdev
