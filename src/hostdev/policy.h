#pragma once
// The operator's GPU passthrough policy: which devices may be passed to VMs.
//
// File format (JSON object; every key optional, unknown keys are an error):
//   {
//     "allow_addresses": ["0000:18:00.0", "2a:00.0"],  // PCI functions that may be passed
//     "allow_ids": ["10de:2330", "8086:1521"],         // vendor:device ids that may be passed
//     "allow_group_peers": false                       // see below
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
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "pci/address.h"
#include "pci/device.h"
#include "sys/filesystem.h"

namespace feos::hostdev {

class Policy {
 public:
  // The default policy: every display/3D device and its companion functions; no group peers.
  Policy() = default;
  Policy(std::vector<pci::Address> allow_addresses, std::vector<pci::DeviceId> allow_ids,
         bool allow_group_peers);

  // Parses the JSON format above. `source` names the text in messages (the file's path).
  // Errors: INVALID_ARGUMENT naming the source and either the line and column of a syntax error
  // or the offending field, e.g. "/etc/feos/gpu-policy.json: allow_ids[1]: invalid PCI id
  // '10de-2330' (expected VVVV:DDDD, hex, e.g. 10de:2330)", "...: unknown field 'allow' (known:
  // ...)".
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
  // One line for logs and `host check`: "default (display/3D devices and their companion
  // functions; no group peers)" or "2 addresses, 1 id; group peers allowed".
  std::string describe() const;

 private:
  bool listed(const pci::Device& device) const;

  std::vector<pci::Address> allow_addresses_;
  std::vector<pci::DeviceId> allow_ids_;
  bool allow_group_peers_ = false;
};

}  // namespace feos::hostdev
