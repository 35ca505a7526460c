#include "hostdev/open_nodes.h"

#include <algorithm>
#include <charconv>
#include <string_view>

#include "pci/sysfs.h"

namespace feos::hostdev::detail {
namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// "Device Minor:   3" in the NVIDIA driver's information file.
std::optional<int> parse_nvidia_minor(std::string_view text) {
  constexpr std::string_view kKey = "Device Minor:";
  size_t at = text.find(kKey);
  if (at == std::string_view::npos) return std::nullopt;
  size_t i = at + kKey.size();
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  int minor = 0;
  auto [ptr, ec] = std::from_chars(text.data() + i, text.data() + text.size(), minor);
  if (ec != std::errc() || ptr == text.data() + i || minor < 0) return std::nullopt;
  return minor;
}

}  // namespace

Result<OpenNodes> OpenNodes::scan(const sys::Filesystem& fs, const sys::HostPaths& paths) {
  auto pids = fs.list_dir(paths.proc_root);
  if (!pids) return fail(pids.error().context("scan host processes"));
  const std::string dev_prefix = paths.dev_prefix();
  OpenNodes out;
  for (const auto& name : *pids) {
    if (!all_digits(name) || name.size() > 10) continue;
    const long pid = std::stol(name);
    auto fds = fs.list_dir(paths.process_fd_dir(pid));
    if (!fds) continue;  // exited, or not ours to look at
    std::optional<std::string> command;
    for (const auto& fd : *fds) {
      auto target = fs.read_link(paths.process_fd(pid, fd));
      if (!target || !starts_with(*target, dev_prefix)) continue;
      if (!command) {
        auto comm = fs.read_file(paths.process_file(pid, "comm"));
        command = comm ? sys::trim(*comm) : std::string("?");
      }
      auto& openers = out.by_node_[*target];
      if (openers.empty() || openers.back().pid != pid) {
        openers.push_back(Opener{pid, *command, *target});
      }
    }
  }
  return out;
}

std::vector<Opener> OpenNodes::of(const std::string& node) const {
  auto it = by_node_.find(node);
  return it == by_node_.end() ? std::vector<Opener>() : it->second;
}

std::vector<Opener> OpenNodes::of_numbered(const std::string& prefix) const {
  std::vector<Opener> out;
  for (auto it = by_node_.lower_bound(prefix); it != by_node_.end(); ++it) {
    if (!starts_with(it->first, prefix)) break;
    if (!all_digits(std::string_view(it->first).substr(prefix.size()))) continue;
    out.insert(out.end(), it->second.begin(), it->second.end());
  }
  return out;
}

Result<CardNodes> card_nodes(const sys::Filesystem& fs, const sys::HostPaths& paths,
                             const pci::Device& device) {
  const std::string bdf = device.address.to_string();
  CardNodes out;
  // DRM: the driver lists the device's minors under <device>/drm (card1, renderD129, ...).
  auto drm = fs.list_dir(paths.pci_device_attr(bdf, "drm"));
  if (drm) {
    for (const auto& name : *drm) {
      const bool card = starts_with(name, "card") && all_digits(std::string_view(name).substr(4));
      const bool render =
          starts_with(name, "renderD") && all_digits(std::string_view(name).substr(7));
      if (card || render) out.nodes.push_back(paths.dri_node(name));
    }
  } else if (drm.error().code != Code::kNotFound) {
    return fail(drm.error());
  }
  // NVIDIA: /dev/nvidia<minor>, the minor only the driver knows. (nvidiactl and nvidia-uvm are
  // shared by all GPUs and say nothing about one card.)
  if (device.driver == "nvidia") {
    auto info = fs.read_file(paths.nvidia_gpu_information(bdf));
    std::optional<int> minor;
    if (info) minor = parse_nvidia_minor(*info);
    if (minor) out.nodes.push_back(paths.nvidia_node(*minor));
    else out.nvidia_minor_unknown = true;
  }
  return out;
}

Result<std::optional<std::string>> held_open_by(const sys::Filesystem& fs,
                                                const sys::HostPaths& paths,
                                                const pci::Device& device,
                                                const OpenNodes& open) {
  auto nodes = card_nodes(fs, paths, device);
  if (!nodes) return fail(nodes.error());
  const std::string bdf = device.address.to_string();
  auto message = [&](const Opener& o, const std::string& note) {
    return bdf + " is in use on the host: pid " + std::to_string(o.pid) + " (" + o.command +
           ") has " + o.node + " open" + note;
  };
  for (const auto& node : nodes->nodes) {
    auto openers = open.of(node);
    if (!openers.empty()) return std::optional<std::string>(message(openers.front(), ""));
  }
  if (nodes->nvidia_minor_unknown) {
    auto openers = open.of_numbered(paths.nvidia_node_prefix());
    if (!openers.empty()) {
      // With several GPUs on the nvidia driver the node may belong to another one; refusing is
      // the safe side (unbinding nvidia from a GPU in use blocks until its clients exit).
      auto bound = pci::PciSysfs(fs, paths).bound_to("nvidia");
      const size_t gpus_on_nvidia = bound ? bound->size() : 0;
      const std::string note =
          gpus_on_nvidia <= 1
              ? ""
              : " (cannot tell which of the " + std::to_string(gpus_on_nvidia) +
                    " GPUs on the nvidia driver it belongs to: " +
                    paths.nvidia_gpu_information(bdf) + " is missing)";
      return std::optional<std::string>(message(openers.front(), note));
    }
  }
  return std::optional<std::string>();
}

}  // namespace feos::hostdev::detail
