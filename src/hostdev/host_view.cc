#include "hostdev/host_view.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <thread>

namespace feos::hostdev::detail {
namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// Base class names (PCI Code and ID Assignment Specification), for hosts without pci.ids.
const char* base_class_name(uint8_t base) {
  switch (base) {
    case 0x00: return "unclassified device";
    case 0x01: return "mass storage controller";
    case 0x02: return "network controller";
    case 0x03: return "display controller";
    case 0x04: return "multimedia controller";
    case 0x05: return "memory controller";
    case 0x06: return "bridge";
    case 0x07: return "communication controller";
    case 0x08: return "generic system peripheral";
    case 0x09: return "input device controller";
    case 0x0a: return "docking station";
    case 0x0b: return "processor";
    case 0x0c: return "serial bus controller";
    case 0x0d: return "wireless controller";
    case 0x0e: return "intelligent controller";
    case 0x0f: return "satellite communications controller";
    case 0x10: return "encryption controller";
    case 0x11: return "signal processing controller";
    case 0x12: return "processing accelerator";
    case 0x13: return "non-essential instrumentation";
    case 0x40: return "coprocessor";
    default: return nullptr;
  }
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

std::string device_attr(const sys::HostPaths& paths, const std::string& bdf, const char* attribute) {
  return paths.pci_device(bdf) + "/" + attribute;
}

std::string driver_file(const sys::HostPaths& paths, const std::string& driver, const char* file) {
  return paths.pci_driver(driver) + "/" + file;
}

std::string iommu_class(const sys::HostPaths& paths) { return paths.sysfs_root + "/class/iommu"; }

std::string nvidia_gpu_information(const sys::HostPaths& paths, const std::string& bdf) {
  return paths.nvidia_gpu_information(bdf);
}

std::string kernel_cmdline(const sys::HostPaths& paths) { return paths.kernel_cmdline(); }

std::string dri_node(const sys::HostPaths& paths, const std::string& name) {
  return paths.dev_root + "/dri/" + name;
}

std::string nvidia_node(const sys::HostPaths& paths, int minor) {
  return paths.dev_root + "/nvidia" + std::to_string(minor);
}

bool is_pci_bridge(const pci::Device& device) {
  const uint32_t base_sub = device.class_code >> 8;
  return base_sub == 0x0604 || base_sub == 0x0609 || base_sub == 0x0607;
}

std::string class_name(uint32_t class_code, const pci::PciIds* ids) {
  if (ids != nullptr) {
    if (auto name = ids->class_name(class_code)) return std::string(*name);
  }
  if (const char* name = base_class_name(static_cast<uint8_t>(class_code >> 16))) return name;
  char buf[24];
  std::snprintf(buf, sizeof buf, "class 0x%06x", class_code & 0xffffff);
  return buf;
}

std::string describe_device(const pci::Device& device, const pci::PciIds* ids) {
  return device.address.to_string() + " (" + device.id() + " " +
         class_name(device.class_code, ids) + ", driver " +
         (device.driver.empty() ? std::string("none") : device.driver) + ")";
}

HostView::HostView(const sys::Filesystem& fs, const sys::HostPaths& paths)
    : fs_(fs), sysfs_(fs, paths) {}

Result<const std::vector<pci::Address>*> HostView::all_addresses() {
  if (!all_) {
    auto listed = sysfs_.list();
    if (!listed) return fail(listed.error());
    all_ = std::move(*listed);
  }
  return &*all_;
}

Result<const pci::Device*> HostView::device(const pci::Address& address) {
  auto it = devices_.find(address);
  if (it != devices_.end()) return &it->second;
  auto read = sysfs_.read(address);
  if (!read) return fail(read.error());
  return &devices_.emplace(address, std::move(*read)).first->second;
}

Result<std::vector<pci::Address>> HostView::slot_functions(const pci::Address& address) {
  auto all = all_addresses();
  if (!all) return fail(all.error());
  std::vector<pci::Address> out;
  for (const auto& a : **all) {
    if (a.same_slot(address)) out.push_back(a);
  }
  return out;
}

Result<std::vector<pci::Address>> HostView::group_members(const std::string& group) {
  auto it = groups_.find(group);
  if (it != groups_.end()) return it->second;
  if (groups_complete_) return std::vector<pci::Address>();
  auto members = sysfs_.iommu_group_members(group);
  if (!members) return fail(members.error());
  return groups_.emplace(group, std::move(*members)).first->second;
}

Result<size_t> HostView::iommu_group_count() {
  auto names = fs_.list_dir(sysfs_.paths().iommu_groups());
  if (!names) {
    if (names.error().code == Code::kNotFound) return size_t{0};
    return fail(names.error());
  }
  return names->size();
}

std::optional<pci::Device> DeviceCache::get(const pci::Address& address) const {
  std::lock_guard lock(mu_);
  auto it = devices_.find(address);
  if (it == devices_.end()) return std::nullopt;
  return it->second;
}

void DeviceCache::put(const pci::Device& device) {
  std::lock_guard lock(mu_);
  devices_.insert_or_assign(device.address, device);
}

void DeviceCache::retain(const std::vector<pci::Address>& present) {
  std::lock_guard lock(mu_);
  for (auto it = devices_.begin(); it != devices_.end();) {
    if (std::binary_search(present.begin(), present.end(), it->first)) ++it;
    else it = devices_.erase(it);
  }
}

Status HostView::load_all(unsigned threads, DeviceCache* cache) {
  auto all = all_addresses();
  if (!all) return fail(all.error());
  const std::vector<pci::Address>& addresses = **all;
  std::vector<std::optional<Result<pci::Device>>> read(addresses.size());
  // Each sysfs read is a handful of small files; on a 1,000-function host the syscalls dominate,
  // so a few readers in parallel cut the wall time.
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < addresses.size(); i = next++) {
      if (auto cached = cache ? cache->get(addresses[i]) : std::nullopt) {
        Status refreshed = sysfs_.refresh(*cached);
        read[i] = refreshed ? Result<pci::Device>(std::move(*cached)) : Result<pci::Device>(fail(refreshed.error()));
        continue;
      }
      read[i] = sysfs_.read(addresses[i]);
      if (cache && *read[i]) cache->put(**read[i]);
    }
  };
  const unsigned n = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(addresses.size() / 32 + 1)));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < n; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();

  groups_.clear();
  for (size_t i = 0; i < addresses.size(); ++i) {
    Result<pci::Device>& d = *read[i];
    if (!d) {
      // Unplugged between listing and reading: not part of the host any more.
      if (d.error().code == Code::kNotFound) continue;
      return fail(d.error());
    }
    if (d->iommu_group) groups_[*d->iommu_group].push_back(d->address);
    devices_.insert_or_assign(d->address, std::move(*d));
  }
  groups_complete_ = true;  // members are pushed in address order: already sorted
  if (cache) cache->retain(addresses);
  return ok();
}

Result<OpenNodes> OpenNodes::scan(const sys::Filesystem& fs, const sys::HostPaths& paths) {
  auto pids = fs.list_dir(paths.proc_root);
  if (!pids) return fail(pids.error().context("scan host processes"));
  const std::string dev_prefix = paths.dev_root + "/";
  OpenNodes out;
  for (const auto& name : *pids) {
    if (!all_digits(name) || name.size() > 10) continue;
    const long pid = std::stol(name);
    const std::string fd_dir = paths.process(pid) + "/fd";
    auto fds = fs.list_dir(fd_dir);
    if (!fds) continue;  // exited, or not ours to look at
    std::optional<std::string> command;
    for (const auto& fd : *fds) {
      auto target = fs.read_link(fd_dir + "/" + fd);
      if (!target || !starts_with(*target, dev_prefix)) continue;
      if (!command) {
        auto comm = fs.read_file(paths.process(pid) + "/comm");
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
  auto drm = fs.list_dir(device_attr(paths, bdf, "drm"));
  if (drm) {
    for (const auto& name : *drm) {
      const bool card = starts_with(name, "card") && all_digits(std::string_view(name).substr(4));
      const bool render =
          starts_with(name, "renderD") && all_digits(std::string_view(name).substr(7));
      if (card || render) out.nodes.push_back(dri_node(paths, name));
    }
  } else if (drm.error().code != Code::kNotFound) {
    return fail(drm.error());
  }
  // NVIDIA: /dev/nvidia<minor>, the minor only the driver knows. (nvidiactl and nvidia-uvm are
  // shared by all GPUs and say nothing about one card.)
  if (device.driver == "nvidia") {
    auto info = fs.read_file(nvidia_gpu_information(paths, bdf));
    std::optional<int> minor;
    if (info) minor = parse_nvidia_minor(*info);
    if (minor) out.nodes.push_back(nvidia_node(paths, *minor));
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
    auto openers = open.of_numbered(paths.dev_root + "/nvidia");
    if (!openers.empty()) {
      // With several GPUs on the nvidia driver the node may belong to another one; refusing is
      // the safe side (unbinding nvidia from a GPU in use blocks until its clients exit).
      auto bound = fs.list_dir(paths.pci_driver("nvidia"));
      size_t gpus_on_nvidia = 0;
      if (bound) {
        for (const auto& name : *bound) {
          if (pci::Address::parse(name)) ++gpus_on_nvidia;
        }
      }
      const std::string note =
          gpus_on_nvidia <= 1
              ? ""
              : " (cannot tell which of the " + std::to_string(gpus_on_nvidia) +
                    " GPUs on the nvidia driver it belongs to: " +
                    nvidia_gpu_information(paths, bdf) + " is missing)";
      return std::optional<std::string>(message(openers.front(), note));
    }
  }
  return std::optional<std::string>();
}

}  // namespace feos::hostdev::detail
