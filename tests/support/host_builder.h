#pragma once
// Describes a host's PCI topology in C++ and writes it as a sysfs/dev/proc tree with the real
// kernel's layout, so the real PosixFilesystem and lspci read it like a live host:
//
//   <root>/sys/devices/pci<dom>:<bus>/<root port>/<switch port>/.../<bdf>/   attributes, config
//   <root>/sys/bus/pci/devices/<bdf> -> ../../../devices/pci.../<bdf>
//   <root>/sys/bus/pci/drivers/<drv>/{bind,unbind,new_id,remove_id,uevent,module,<bdf>}
//   <root>/sys/bus/pci/drivers_probe, <root>/sys/kernel/iommu_groups/<n>/devices/<bdf>
//   <root>/sys/module/<mod>/, <root>/dev/{vfio/vfio,nvidia*,dri/*}, <root>/proc/<pid>/{comm,fd/*}
//
// Usage:
//   HostBuilder b;
//   b.device("0000:18:00.0", 0x10de, 0x2330, 0x030200).driver("nvidia").group(41).numa(0)
//       .bar(0, 16 * kMiB, BarType::kMem32).bar(1, 128 * kGiB, BarType::kMem64Prefetch);
//   auto tree = b.build(dir.path());      // tree->paths: HostPaths for the daemon
//   FakeKernel kernel(*tree);             // reacts to bind/unbind/driver_override writes
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "support/kernel_model.h"
#include "sys/host_paths.h"

namespace feos::test {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;

// How a BAR decodes, which sets its `resource` flags and config-space type bits the way the
// kernel does: kMem32 0x40200, kMem32Prefetch 0x42208, kMem64 0x140204, kMem64Prefetch 0x14220c,
// kIo 0x40101. A 64-bit BAR takes two registers: the next index must stay free.
enum class BarType { kMem32, kMem32Prefetch, kMem64, kMem64Prefetch, kIo };

struct BarSpec {
  int index = 0;  // register index 0-5
  uint64_t size = 0;  // power of two
  BarType type = BarType::kMem32;
};

// One PCI function. Addresses in `resource` and config space are assigned by build().
struct FunctionSpec {
  std::string bdf{};  // canonical "0000:18:00.0"
  uint16_t vendor = 0;
  uint16_t device = 0;
  uint32_t class_code = 0;  // 24 bits, e.g. 0x030200
  uint16_t subsystem_vendor = 0;  // 0: same as vendor
  uint16_t subsystem_device = 0;
  uint8_t revision = 0;
  std::vector<BarSpec> bars{};
  uint64_t rom_size = 0;  // 0: no expansion ROM
  std::string driver{};  // bound now; "" unbound
  std::string native_driver{};  // bound by probing without override; "" = `driver`
  std::string driver_override{};  // "" is "(null)"
  std::optional<int> iommu_group{};
  int numa_node = -1;
  std::optional<bool> boot_vga{};  // VGA-class (0x0300xx) functions always get the file (default 0)
  std::vector<std::string> reset_methods = {"flr", "bus"};
  bool pcie = true;  // false: conventional PCI (256-byte config, no link attributes)
  double link_gts = 0;  // current link speed; 0: no link (root-complex integrated)
  int link_width = 0;
  double max_link_gts = 0;  // 0: same as current
  int max_link_width = 0;
  uint8_t secondary_bus = 0;  // bridges (class 0x0604xx): the bus behind it
  uint8_t subordinate_bus = 0;  // 0: computed from the devices behind it
  std::optional<DrmNodes> drm{};  // drm/card<N> + renderD<M> while bound to the native driver
  std::string physfn{};  // SR-IOV VF: its PF's bdf (physfn/virtfn<N> links)

  bool is_bridge() const { return (class_code >> 8) == 0x0604; }
  bool is_vga() const { return (class_code >> 8) == 0x0300; }
};

// A process of the fake /proc: <proc>/<pid>/{comm,cmdline,fd/<n>}.
struct ProcessSpec {
  int pid = 0;
  std::string comm{};
  // fd -> link target. Targets starting with "dev:" name a node under the tree's dev root
  // ("dev:nvidia0" -> "<root>/dev/nvidia0", the path HostPaths gives for it); others are stored
  // verbatim ("socket:[1234]", "/var/log/syslog").
  std::map<int, std::string> fds{};
};

class HostBuilder;

// Fluent editor of one function of a HostBuilder; valid while the builder lives.
class FunctionRef {
 public:
  FunctionRef(HostBuilder& host, size_t index) : host_(&host), index_(index) {}
  // Bound to `name` now, and `name` is what probing binds.
  FunctionRef& driver(std::string name);
  // Bound to `name` now, native driver unchanged (e.g. left on vfio-pci by an earlier run).
  FunctionRef& bound_to(std::string name);
  // No driver now; the native driver stays (probing binds it).
  FunctionRef& unbound();
  FunctionRef& native_driver(std::string name);
  FunctionRef& override_driver(std::string name);
  FunctionRef& group(int group);
  FunctionRef& no_group();
  FunctionRef& numa(int node);
  FunctionRef& subsystem(uint16_t vendor, uint16_t device);
  FunctionRef& revision(uint8_t revision);
  FunctionRef& bar(int index, uint64_t size, BarType type);
  FunctionRef& rom(uint64_t size);
  FunctionRef& boot_vga(bool on);
  FunctionRef& reset_methods(std::vector<std::string> methods);
  // PCIe link, current = max.
  FunctionRef& link(double gts, int width);
  // PCIe link that trained below its maximum (an idle consumer GPU runs at 2.5 GT/s).
  FunctionRef& link(double gts, int width, double max_gts, int max_width);
  // Conventional PCI: no PCIe capability, no link attributes, 256-byte config.
  FunctionRef& conventional();
  // A bridge's secondary bus (and subordinate, 0: computed).
  FunctionRef& secondary(uint8_t bus, uint8_t subordinate = 0);
  FunctionRef& drm(int card, int render);
  FunctionRef& physfn(std::string pf_bdf);
  FunctionSpec& spec();

 private:
  HostBuilder* host_;
  size_t index_;
};

// Fluent editor of one process.
class ProcessRef {
 public:
  ProcessRef(HostBuilder& host, size_t index) : host_(&host), index_(index) {}
  // fd <n> -> <root>/dev/<dev_relative> ("nvidia0", "dri/renderD128", "vfio/41").
  ProcessRef& open_dev(int fd, std::string dev_relative);
  // fd <n> -> `target` verbatim.
  ProcessRef& fd(int fd, std::string target);
  ProcessSpec& spec();

 private:
  HostBuilder* host_;
  size_t index_;
};

// A written tree: its root and the HostPaths (<root>/sys, <root>/dev, <root>/proc) pointing at it.
struct HostTree {
  std::string root{};
  sys::HostPaths paths{};
  KernelModel model{};  // for FakeKernel
};

class HostBuilder {
 public:
  // Adds a function. Duplicate or malformed addresses are reported by build().
  FunctionRef device(FunctionSpec spec);
  FunctionRef device(std::string bdf, uint16_t vendor, uint16_t device, uint32_t class_code);
  // Shorthand for a PCIe bridge (class 0x060400, driver pcieport) with secondary bus `secondary`.
  FunctionRef bridge(std::string bdf, uint16_t vendor, uint16_t device, uint8_t secondary);
  // The function added with address `bdf`. Precondition: it was added (std::out_of_range otherwise).
  FunctionRef function(const std::string& bdf);
  bool has_function(const std::string& bdf) const;
  // Removes a function (e.g. to make a ready-made host lack something). False if absent.
  bool remove_function(const std::string& bdf);

  // A module under <sys>/module, loaded or not. Modules of the drivers in use are loaded unless
  // set to false here; a driver's directory exists only while its module is loaded (built-in
  // drivers always). "vfio_pci" also makes <dev>/vfio/vfio.
  HostBuilder& module(std::string name, bool loaded = true);
  // A plain file <dev>/<relative> (e.g. "nvidia-uvm"). nvidia<N>/nvidiactl, dri/* and vfio/vfio
  // are added by build() from the functions.
  HostBuilder& dev_node(std::string relative);
  ProcessRef process(int pid, std::string comm);
  // CPUs per NUMA node, for local_cpulist (default 32).
  HostBuilder& cpus_per_node(int cpus);
  // The CPU's physical address bits, in <proc>/cpuinfo's "address sizes" (default 46, as Intel
  // Xeon Scalable reports; 0 writes no such line).
  HostBuilder& cpu_address_bits(int bits);

  const std::vector<FunctionSpec>& functions() const { return functions_; }
  const std::vector<ProcessSpec>& processes() const { return processes_; }
  const std::map<std::string, bool>& modules() const { return modules_; }
  const std::vector<std::string>& extra_dev_nodes() const { return dev_nodes_; }
  int cpus_per_node() const { return cpus_per_node_; }
  int cpu_address_bits() const { return cpu_address_bits_; }

  // The kernel model build() hands to FakeKernel: native drivers, DRM nodes.
  KernelModel model() const;

  // Writes the tree under `root` (an existing, empty directory). INVALID_ARGUMENT for a bad
  // description (malformed or duplicate address, overlapping 64-bit BARs, bus conflicts, 32-bit
  // space exhausted), naming the function; INTERNAL on filesystem errors, naming the path.
  Result<HostTree> build(const std::string& root) const;

 private:
  friend class FunctionRef;
  friend class ProcessRef;
  std::vector<FunctionSpec> functions_;
  std::vector<ProcessSpec> processes_;
  std::map<std::string, bool> modules_;
  std::vector<std::string> dev_nodes_;
  int cpus_per_node_ = 32;
  int cpu_address_bits_ = 46;
};

// A desktop: RTX 4090-class card 01:00.0-3 (VGA 10de:2684 with 256 MiB BAR1, HDMI audio 10de:22ba,
// USB 10de:1ad8, UCSI 10de:1ad9; drivers nvidia, snd_hda_intel, xhci_hcd, nvidia-gpu) in IOMMU
// group 2 together with its root port 00:01.0 (Intel PEG ports have no ACS); the integrated boot
// VGA 00:02.0 (8086:a780, i915, group 1); an NVMe 02:00.0 (group 12) and a NIC 03:00.0
// (group 13) behind own root ports. vfio_pci loaded. /dev: nvidia0, nvidiactl, nvidia-modeset,
// nvidia-uvm, dri/card0 (iGPU), dri/card1 (nvidia-drm), renderD128/129.
HostBuilder consumer_gpu_host();

// An HGX H100 8-GPU server: GPUs 10de:2330 (class 0x030200; BAR0 16 MiB, BAR1 128 GiB 64-bit
// prefetchable, BAR3 32 MiB; nvidia) at 18, 2a, 3a, 5d (NUMA 0) and 9a, ab, ba, db (NUMA 1), each
// alone in its IOMMU group (59, 50, 41, 15, 107, 98, 89, 79 as publicly reported), each behind a
// root port and a Broadcom PEX89000 switch (1000:c030) whose other downstream ports hold a
// ConnectX-7 (15b3:1021, mlx5_core) at bus+1 and an NVMe at bus+2, all in own groups; four
// NVSwitches 10de:22a3 (class 0x068000, nvidia-nvswitch) at 05:00.0-08:00.0 in ONE group (114);
// the BMC's ASPEED VGA 02:00.0 (boot VGA, ast) behind its PCIe-to-PCI bridge 01:00.0 (both in
// group 3). /dev: nvidia0-7, nvidiactl, nvidia-uvm, nvidia-nvswitch0-3, nvidia-nvswitchctl.
HostBuilder hgx_h100_host();

// `host` (an hgx_h100_host() or hgx_h200_host()) without its four NVSwitches (05:00.0-08:00.0;
// every other device, group and bus unchanged): an 8-GPU server whose GPUs a VM may take in any
// number, for tests of what the fabric rules (hostdev policy nvswitch_mode) are not about.
HostBuilder without_nvswitches(HostBuilder host);

// An HGX H200 8-GPU server: hgx_h100_host()'s shape (same buses, groups, NUMA nodes, switches,
// NICs, NVMe, NVSwitch group 114, BMC boot VGA) with GPUs 10de:2335 whose BAR1 is 256 GiB
// (BAR0 16 MiB, BAR3 32 MiB).
HostBuilder hgx_h200_host();

// Four datacenter cards with a 512 GiB BAR1 (B200-like ids 10de:2901; the size is chosen to test
// the address-space plan, see ready_hosts.cc) at 18, 2a (NUMA 0), 3a, 5d (NUMA 1), in groups
// 59, 50, 41, 15, each in hgx_h100_host()'s switch tray with a CX-7 and an NVMe; the BMC's
// boot VGA; no NVSwitches.
HostBuilder bar512_host();

// A two-socket PCIe server: on each socket a root port (15:01.0 on NUMA node 0, 85:01.0 on node 1)
// and a Broadcom PEX88000 switch with ACS (1000:c010; upstream ports 16:00.0 and 86:00.0) holding
// two NVIDIA L40S (10de:26b9, class 0x030200, subsystem 10de:1851; BAR0 16 MiB 32-bit, BAR1 64 GiB
// and BAR3 32 MiB 64-bit prefetchable; nvidia) at 18:00.0, 19:00.0 / 88:00.0, 89:00.0 and a
// ConnectX-6 Dx (15b3:101d, mlx5_core) at 1a:00.0 / 8a:00.0; the BMC's boot VGA. Every function in
// its own IOMMU group; 48 CPUs per node (local_cpulist 0-47, 48-95). No NVSwitches.
HostBuilder pcie_2s4g_host();

// A T4 (10de:1eb8) at 03:00.0 whose IOMMU group 20 also holds a two-port Intel I350 NIC
// (8086:1521, igb) at 04:00.0-1: both sit behind a PLX PEX8747 switch without ACS (its ports are
// in group 20 too). A second T4 at 06:00.0 is alone in group 21.
HostBuilder shared_group_host();

// About `devices` functions (at least ~20): chipset devices, GPU trays (root port, switch, GPU,
// NIC), NICs with SR-IOV VFs (each VF in its own group), NVMe drives; spread over NUMA nodes 0/1
// and PCI domains as buses run out. Deterministic. With `gpus` >= 0, exactly that many GPU trays
// come first (as far as `devices` allows), then the other units; else one unit in five is a tray.
HostBuilder large_host(int devices, int gpus = -1);

// "consumer", "hgx-h100", "hgx-h200", "bar512", "pcie-2s4g", "shared-group" or "large:<N>[:<gpus>]" (N functions, of them <gpus> GPU trays).
// INVALID_ARGUMENT otherwise.
Result<HostBuilder> host_by_name(std::string_view name);

}  // namespace feos::test
