#pragma once
// Internal to src/hostdev: which host processes hold a card's device nodes open (one scan of
// <proc>/*/fd), so planning refuses a GPU that Xorg, a CUDA job or another VMM still uses.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "pci/device.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"

namespace feos::hostdev::detail {

// A host process holding a device node open.
struct Opener {
  long pid = 0;
  std::string command;  // <proc>/<pid>/comm
  std::string node;     // the node's path
};

// The device nodes under <dev> that host processes hold open: one scan of <proc>/*/fd.
class OpenNodes {
 public:
  // Processes that vanish or whose fds cannot be read during the scan are skipped.
  // Errors: NOT_FOUND when <proc> is missing.
  static Result<OpenNodes> scan(const sys::Filesystem& fs, const sys::HostPaths& paths);

  // Processes holding `node` open.
  std::vector<Opener> of(const std::string& node) const;
  // Processes holding open a node "<prefix><digits>" (e.g. <dev>/nvidia0, <dev>/nvidia7).
  std::vector<Opener> of_numbered(const std::string& prefix) const;

 private:
  std::map<std::string, std::vector<Opener>> by_node_;
};

// The per-card device nodes of one function that host processes may hold: its DRM nodes
// (<device>/drm/cardN, renderDN -> <dev>/dri/...) and its NVIDIA node (<dev>/nvidia<minor>, the
// minor from <proc>/driver/nvidia/gpus/<bdf>/information).
struct CardNodes {
  std::vector<std::string> nodes;
  // The function is bound to "nvidia" but its minor is unknown (no information file): any open
  // <dev>/nvidia<N> may be this card's.
  bool nvidia_minor_unknown = false;
};
// Errors: unreadable <device>/drm (other than absent), as the filesystem reports it.
Result<CardNodes> card_nodes(const sys::Filesystem& fs, const sys::HostPaths& paths,
                             const pci::Device& device);

// The first host process that holds one of `device`'s card nodes open, as an error message
// "0000:01:00.0 is in use on the host: pid 4242 (Xorg) has <dev>/dri/card1 open", or nullopt.
// When the NVIDIA minor is unknown, an open <dev>/nvidiaN counts if `device` is the only function
// bound to nvidia (then it must be its node), and also otherwise (it may be: refusing is the safe
// side, and the message says so).
// Errors: as card_nodes().
Result<std::optional<std::string>> held_open_by(const sys::Filesystem& fs,
                                                const sys::HostPaths& paths,
                                                const pci::Device& device,
                                                const OpenNodes& open);

}  // namespace feos::hostdev::detail
