#include "hostdev/host_view.h"

#include <algorithm>
#include <atomic>
#include <thread>

namespace feos::hostdev::detail {

HostView::HostView(const sys::Filesystem& fs, const sys::HostPaths& paths) : fs_(fs), sysfs_(fs, paths) {}

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

Result<std::vector<pci::Address>> HostView::group_members(const pci::IommuGroup& group) {
  auto it = groups_.find(group);
  if (it != groups_.end()) return it->second;
  if (groups_complete_) return std::vector<pci::Address>();
  auto members = sysfs_.iommu_group_members(group);
  if (!members) return fail(members.error());
  return groups_.emplace(group, std::move(*members)).first->second;
}

Result<size_t> HostView::iommu_group_count() { return sysfs_.iommu_group_count(); }

std::optional<DeviceFacts> DeviceCache::get(const pci::Address& address) const {
  std::lock_guard lock(mu_);
  auto it = devices_.find(address);
  if (it == devices_.end()) return std::nullopt;
  return it->second;
}

void DeviceCache::put(const DeviceFacts& facts) {
  std::lock_guard lock(mu_);
  devices_.insert_or_assign(facts.device.address, facts);
}

void DeviceCache::retain(const std::vector<pci::Address>& present) {
  std::lock_guard lock(mu_);
  for (auto it = devices_.begin(); it != devices_.end();) {
    if (std::binary_search(present.begin(), present.end(), it->first)) ++it;
    else it = devices_.erase(it);
  }
}

Result<DeviceFacts> HostView::load_one(const pci::Address& address, DeviceCache* cache) const {
  if (auto cached = cache ? cache->get(address) : std::nullopt) {
    FEOS_TRY(sysfs_.refresh(cached->device));
    return std::move(*cached);
  }
  DeviceFacts facts;
  FEOS_ASSIGN_OR_RETURN(facts.device, sysfs_.read(address));
  auto topology = pci::read_topology(fs_, sysfs_.paths(), address);
  if (topology) {
    facts.topology = std::move(*topology);
  } else if (topology.error().code != Code::kInvalidArgument) {
    // Gone meanwhile, or a read error that may pass: nothing is cached, the next listing retries.
    return fail(topology.error());
  }
  if (cache) cache->put(facts);
  return facts;
}

Status HostView::load_all(unsigned threads, DeviceCache* cache) {
  auto all = all_addresses();
  if (!all) return fail(all.error());
  const std::vector<pci::Address>& addresses = **all;
  std::vector<std::optional<Result<DeviceFacts>>> read(addresses.size());
  // Each sysfs read is a handful of small files; on a 1,000-function host the syscalls dominate,
  // so a few readers in parallel cut the wall time.
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < addresses.size(); i = next++) read[i] = load_one(addresses[i], cache);
  };
  const unsigned n = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(addresses.size() / 32 + 1)));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < n; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();

  groups_.clear();
  topologies_.clear();
  for (size_t i = 0; i < addresses.size(); ++i) {
    Result<DeviceFacts>& facts = *read[i];
    if (!facts) {
      // Unplugged between listing and reading: not part of the host any more.
      if (facts.error().code == Code::kNotFound) continue;
      return fail(facts.error());
    }
    pci::Device& d = facts->device;
    if (d.iommu_group) groups_[*d.iommu_group].push_back(d.address);
    if (facts->topology) topologies_.insert_or_assign(d.address, std::move(*facts->topology));
    devices_.insert_or_assign(d.address, std::move(d));
  }
  groups_complete_ = true;  // members are pushed in address order: already sorted
  displays_loaded_ = true;
  if (cache) cache->retain(addresses);
  return ok();
}

Status HostView::load_displays(DeviceCache& cache) {
  FEOS_ASSIGN_OR_RETURN(const std::vector<pci::Address>* all, all_addresses());
  auto wanted = [](const pci::Device& d) { return d.is_display() || d.is_nvswitch(); };
  for (const auto& address : *all) {
    if (auto known = cache.get(address); known && !wanted(known->device)) continue;
    auto facts = load_one(address, &cache);
    if (!facts) {
      if (facts.error().code == Code::kNotFound) continue;  // unplugged meanwhile
      return fail(facts.error());
    }
    if (!wanted(facts->device)) continue;
    if (facts->topology) topologies_.insert_or_assign(address, std::move(*facts->topology));
    devices_.insert_or_assign(address, std::move(facts->device));
  }
  displays_loaded_ = true;
  return ok();
}

}  // namespace feos::hostdev::detail
