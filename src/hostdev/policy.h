#pragma once
// The operator's GPU passthrough policy: which devices may be passed to VMs.
//
// File format (JSON object; every key optional, unknown keys are an error):
//   {
//     "allow_addresses": ["0000:18:00.0", "2a:00.0"],  // PCI functions that may be passed
//     "allow_ids": ["10de:2330", "8086:1521"],         // vendor:device ids that may be passed
//     "allow_group_peers": false,                      // see below
//     "nvswitch_mode": "shared",                       // HGX boards: "full-passthrough" | "shared"
//     "nvswitch_partitions": [["18:00.0", "2a:00.0"], ["3a:00.0"]]  // shared mode only
//   }
// Rules (hostdev applies them after the structural checks: a requested function must be a
// display/3D device, class 03xx, whatever the policy says):
//  - A requested GPU is allowed when both lists are empty (the default: every display/3D device),
//    else when its address or its id is listed.
//  - The other functions of an allowed GPU's slot (HDMI audio, USB-C, UCSI) always travel with it:
//    they are the same card.
//  - Group peers (other endpoints of the card's IOMMU groups, bridges excluded) are refused unless
//    allow_group_peers is true; then a peer is passed along when both lists are empty, else only
//    when its address or id is listed. VFIO hands whole groups to a VM, so a peer leaves the host
//    for the VM's lifetime: that is why the default refuses them.
//  - NVSwitch fabric (hosts with an NVIDIA NVSwitch, 10de class 0680, i.e. HGX boards; other hosts
//    ignore it): a VM with some of the board's GPUs (the NVIDIA display GPUs of the host) but not
//    their fabric fails CUDA with error 802 until a fabric manager trained the NVLinks, so:
//    "full-passthrough" (also what an unset mode does): only a VM taking EVERY board GPU is
//    allowed, and it gets every NVSwitch too (whole IOMMU groups), for its own fabric manager.
//    "shared": the host's fabric manager runs in shared-NVSwitch mode; NVSwitches stay with the
//    host and a VM's board GPUs must be exactly one of nvswitch_partitions, the partitions the
//    operator activated there (each 1, 2, 4 or 8 GPUs; no GPU in two). nvswitch_partitions is
//    refused in any other mode. GPUs of other vendors are not affected.
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "pci/address.h"
#include "pci/device.h"
#include "sys/filesystem.h"

namespace feos::hostdev {

// How an HGX board's NVSwitches are used (see the file format above).
enum class NvSwitchMode { kUnset, kFullPassthrough, kShared };

// "full-passthrough", "shared"; "unset" for kUnset.
std::string_view nvswitch_mode_name(NvSwitchMode mode);

// GPUs the host's fabric manager joined into one partition, by the address of their display
// function, in the order the policy lists them.
using NvSwitchPartition = std::vector<pci::Address>;

struct NvSwitchPolicy {
  NvSwitchMode mode = NvSwitchMode::kUnset;
  std::vector<NvSwitchPartition> partitions;  // kShared only
};

class Policy {
 public:
  // The default policy: every display/3D device and its companion functions; no group peers;
  // no NVSwitch mode (full-board VMs only on HGX boards).
  Policy() = default;
  Policy(std::vector<pci::Address> allow_addresses, std::vector<pci::DeviceId> allow_ids,
         bool allow_group_peers, NvSwitchPolicy nvswitch = {});

  // Parses the JSON format above. `source` names the text in messages (the file's path).
  // Errors: INVALID_ARGUMENT naming the source and either the line and column of a syntax error
  // or the offending field, e.g. "/etc/feos/gpu-policy.json: allow_ids[1]: invalid PCI id
  // '10de-2330' (expected VVVV:DDDD, hex, e.g. 10de:2330)", "...: unknown field 'allow' (known:
  // ...)", "...: nvswitch_partitions[1]: 3 GPUs (a partition holds 1, 2, 4 or 8)".
  static Result<Policy> parse(std::string_view text, std::string_view source);

  // Reads `path` through `fs` and parses it.
  // Errors: NOT_FOUND when the file is absent; other read errors as the filesystem reports them;
  // otherwise as parse().
  static Result<Policy> load(const sys::Filesystem& fs, const std::string& path);

  // True when `gpu` (a display/3D function a client asked for) may be passed.
  bool allows_gpu(const pci::Device& gpu) const;
  // True when `peer`, an endpoint sharing an IOMMU group with a requested card, may be passed
  // along.
  bool allows_group_peer(const pci::Device& peer) const;

  const std::vector<pci::Address>& allow_addresses() const { return allow_addresses_; }
  const std::vector<pci::DeviceId>& allow_ids() const { return allow_ids_; }
  bool allow_group_peers() const { return allow_group_peers_; }
  NvSwitchMode nvswitch_mode() const { return nvswitch_.mode; }
  const std::vector<NvSwitchPartition>& nvswitch_partitions() const { return nvswitch_.partitions; }
  // One line for logs and `host check`: "default (display/3D devices and their companion
  // functions; no group peers)" or "2 addresses, 1 id; group peers allowed", then the NVSwitch
  // mode when set: "; nvswitch_mode shared, 2 partitions".
  std::string describe() const;
  // "[0000:18:00.0, 0000:2a:00.0], [0000:3a:00.0]" (or only the partitions of `size` GPUs, when
  // not 0); "none" when there are none.
  std::string describe_partitions(size_t size = 0) const;

 private:
  bool listed(const pci::Device& device) const;

  std::vector<pci::Address> allow_addresses_;
  std::vector<pci::DeviceId> allow_ids_;
  bool allow_group_peers_ = false;
  NvSwitchPolicy nvswitch_;
};

}  // namespace feos::hostdev
