#pragma once
// Internal to src/hostdev: turning GPU requests into the devices to take, with every check done
// before any side effect. Shared by HostDevices::plan/prepare and by HostInventory (which asks, per
// GPU, "would a request for it pass?" and shows the short reason when not).
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "common/error.h"
#include "hostdev/host_view.h"
#include "hostdev/open_nodes.h"
#include "hostdev/options.h"
#include "hostdev/policy.h"
#include "model/gpu.h"
#include "pci/address.h"
#include "pci/iommu_group.h"
#include "store/device_assignment.h"
#include "store/device_ledger.h"

namespace feos::hostdev::detail {

// One device prepare() takes.
struct Target {
  pci::Address address;           // the ledger's key
  store::DeviceRole role = store::DeviceRole::kRequested;
  pci::IommuGroup group{0};       // its IOMMU group (every target has one)
  std::string original_driver;    // "" unbound
  std::string original_override;  // "" none
};

struct Plan {
  std::vector<model::AssignedGpu> gpus;
  std::vector<Target> targets;  // every device, sorted by address
  // What was decided and why (policy, whole cards, group peers and bridges, drivers), one
  // sentence each: shown by a dry run.
  std::vector<std::string> decisions;
};

// The targets of each IOMMU group, in address order, keyed by group. Pointers into plan.targets.
std::map<pci::IommuGroup, std::vector<const Target*>> targets_by_group(const Plan& plan);

// Why a request cannot be planned: the error for the caller and a short reason for inventory
// ("boot VGA", "no IOMMU group", "IOMMU group 20 also holds 0000:04:00.0 (8086:1521, not a GPU
// companion)").
struct Problem {
  Error error;
  std::string reason;
};

tl::unexpected<Problem> problem(Code code, std::string message, std::string reason);
// A read error as a Problem, its message as the reason.
tl::unexpected<Problem> problem(const Error& error);

// The NVSwitch fabric of an HGX board (policy.h, "NVSwitch fabric").
struct Fabric {
  std::vector<const pci::Device*> nvswitches;  // by address; empty: no fabric, no rule applies
  // The board's GPUs: the lowest display function of each slot with an NVIDIA display function,
  // in address order; empty without NVSwitches.
  std::vector<pci::Address> gpus;

  bool present() const { return !nvswitches.empty(); }
  // Whether `address` is a function of one of the board's GPUs.
  bool is_board_gpu(const pci::Address& address) const;
  // "4 NVSwitches (10de:22a3, IOMMU group 114)".
  std::string describe() const;
};

// The refusal of a VM with some but not all of the board's GPUs in full-passthrough mode (or with
// no mode set), FAILED_PRECONDITION; `who` leads the message ("0000:18:00.0", "gpu_count").
Error partial_board_error(const Fabric& fabric, const Policy& policy, const std::string& who);

// What planning reads besides PCI facts, loaded on first use and cached for one operation.
class PlanContext {
 public:
  PlanContext(const sys::Filesystem& fs, const sys::HostPaths& paths, store::DeviceLedger& ledger,
              const Policy& policy, const Options& options, HostView& view);

  const sys::Filesystem& fs() const { return fs_; }
  const sys::HostPaths& paths() const { return paths_; }
  const Policy& policy() const { return policy_; }
  const Options& options() const { return options_; }
  HostView& view() { return view_; }

  // Device -> holding VM, from the ledger.
  Result<const std::map<pci::Address, std::string>*> ledger();
  // Host processes' open device nodes. With `tolerate_scan_errors` (inventory) a failed scan
  // counts as "nothing open".
  Result<const OpenNodes*> open_nodes();
  void tolerate_scan_errors() { tolerate_scan_errors_ = true; }
  // Entries under <sysfs>/kernel/iommu_groups.
  Result<size_t> iommu_group_count();
  bool vfio_available();
  // The host's NVSwitches and board GPUs. Needs view() loaded (load_displays() or load_all()):
  // INTERNAL otherwise, since an unloaded view would look like a host without a fabric.
  Result<const Fabric*> fabric();

 private:
  const sys::Filesystem& fs_;
  const sys::HostPaths& paths_;
  store::DeviceLedger& ledger_;
  const Policy& policy_;
  const Options& options_;
  HostView& view_;
  std::optional<std::map<pci::Address, std::string>> holders_;  // ledger(), once read
  std::optional<OpenNodes> open_;
  std::optional<size_t> iommu_groups_;
  std::optional<bool> vfio_;
  std::optional<Fabric> fabric_;
  bool tolerate_scan_errors_ = false;
};

// What a plan stands for: a VM's whole request, or one GPU probed alone (inventory's "would a
// request for it pass?", placement's candidates), which skips the NVSwitch fabric rules: they
// judge a VM's set of GPUs, not one GPU.
enum class PlanScope { kVm, kOneGpu };

// Resolves and validates `gpus` (see HostDevices::plan for the checks, their order and codes).
// On a host with NVSwitches and scope kVm, also the fabric rules of the policy's nvswitch_mode:
// all board GPUs and the NVSwitches with them, or exactly one partition.
// What the fabric rules add to a VM's plan: the NVSwitch functions and the GPU that carries them.
struct FabricPart {
  std::optional<size_t> owner;  // index into the request: its first board GPU
  std::vector<const pci::Device*> devices;
};

// The fabric rules for a VM's request `requested` (fabric.cc); decisions are appended.
tl::expected<FabricPart, Problem> fabric_part(PlanContext& context, const std::vector<pci::Address>& requested,
                                              std::vector<std::string>& decisions);

tl::expected<Plan, Problem> make_plan(PlanContext& context, const std::vector<model::GpuSpec>& gpus,
                                      PlanScope scope = PlanScope::kVm);

// Where GPU `gpu` reaches its peers (peer_path.cc): root bus and PCIe switch, NVLink when the
// host's NVSwitch fabric joins it (known once the view's displays are loaded), and the room for
// the GPUDirect capability in its config space. Unreadable facts stay unknown: never an error.
model::GpuPeerPath peer_path_of(PlanContext& context, const pci::Device& gpu);

// A device as the function a VM is given: address, id, class, IOMMU group, driver, present BARs.
model::PassthroughFunction function_of(const pci::Device& device);

}  // namespace feos::hostdev::detail
