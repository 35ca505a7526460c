#include "vmm/qemu/host_caps.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "common/log.h"
#include "common/parse.h"

namespace feos::vmm::qemu {

uint64_t host_memory_mib_from_meminfo(std::string_view meminfo) {
  constexpr std::string_view kKey = "MemTotal:";
  size_t at = meminfo.rfind(kKey, 0) == 0 ? 0 : meminfo.find("\n" + std::string(kKey));
  if (at == std::string_view::npos) return 0;
  if (meminfo[at] == '\n') ++at;
  std::string_view rest = meminfo.substr(at + kKey.size());
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  uint64_t kib = 0;
  size_t digits = 0;
  while (digits < rest.size() && digits < 15 && rest[digits] >= '0' && rest[digits] <= '9')
    kib = kib * 10 + static_cast<uint64_t>(rest[digits++] - '0');
  if (digits == 0 || rest.substr(digits, 3) != " kB") return 0;
  return kib / 1024;
}

int host_phys_bits_from_cpuinfo(std::string_view cpuinfo) {
  constexpr std::string_view kKey = "address sizes";
  size_t begin = 0;
  while (begin < cpuinfo.size()) {
    size_t end = cpuinfo.find('\n', begin);
    if (end == std::string_view::npos) end = cpuinfo.size();
    std::string_view line = cpuinfo.substr(begin, end - begin);
    begin = end + 1;
    if (line.substr(0, kKey.size()) != kKey) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return 0;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    int bits = 0;
    size_t digits = 0;
    while (digits < value.size() && digits < 3 && value[digits] >= '0' && value[digits] <= '9')
      bits = bits * 10 + (value[digits++] - '0');
    if (digits == 0 || value.substr(digits, 14) != " bits physical") return 0;
    return bits;
  }
  return 0;
}

std::optional<uint64_t> meminfo_kib(std::string_view meminfo, std::string_view key) {
  size_t begin = 0;
  while (begin < meminfo.size()) {
    size_t end = meminfo.find('\n', begin);
    if (end == std::string_view::npos) end = meminfo.size();
    std::string_view line = meminfo.substr(begin, end - begin);
    begin = end + 1;
    if (line.rfind("Node ", 0) == 0) {  // per-node files prefix each line with "Node <n> "
      size_t space = line.find(' ', 5);
      if (space == std::string_view::npos) continue;
      line.remove_prefix(space + 1);
    }
    if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ':') continue;
    std::string_view value = line.substr(key.size() + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    return parse_decimal(value.substr(0, value.find(' ')), 15);
  }
  return std::nullopt;
}

std::optional<std::vector<int>> parse_cpu_list(std::string_view list) {
  while (!list.empty() && (list.back() == '\n' || list.back() == ' ')) list.remove_suffix(1);
  if (list.empty()) return std::nullopt;
  auto number = [](std::string_view text) -> std::optional<int> {
    auto value = parse_decimal(text, 4);
    return value ? std::optional<int>(static_cast<int>(*value)) : std::nullopt;
  };
  std::vector<int> out;
  size_t begin = 0;
  while (begin <= list.size()) {
    size_t end = list.find(',', begin);
    if (end == std::string_view::npos) end = list.size();
    std::string_view range = list.substr(begin, end - begin);
    const size_t dash = range.find('-');
    auto first = number(range.substr(0, dash));
    auto last = dash == std::string_view::npos ? first : number(range.substr(dash + 1));
    if (!first || !last || *last < *first) return std::nullopt;
    for (int n = *first; n <= *last; ++n) out.push_back(n);
    begin = end + 1;
  }
  return out;
}

int count_node_list(std::string_view list) {
  auto nodes = parse_cpu_list(list);
  return nodes ? static_cast<int>(nodes->size()) : 0;
}

std::optional<std::string> kvm_unusable_reason(const sys::HostPaths& paths) {
  int fd = ::open(paths.kvm().c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return paths.kvm() + " does not open read-write: " + std::strerror(errno);
  ::close(fd);
  auto loaded = [&](const char* module) { return ::access(paths.kernel_module(module).c_str(), F_OK) == 0; };
  if (loaded("kvm_intel") || loaded("kvm_amd")) return std::nullopt;
  if (loaded("kvm_pvm"))
    return paths.kvm() + " is kvm_pvm (no VT-x or AMD-V), which runs only guest kernels built for PVM";
  return paths.kvm() + " opens, but neither kvm_intel nor kvm_amd is loaded";
}

int HostCaps::phys_bits() const {
  std::string path = paths_.cpuinfo();
  auto cpuinfo = fs_.read_file(path);
  int bits = cpuinfo ? host_phys_bits_from_cpuinfo(*cpuinfo) : 0;
  if (bits == 0)
    log::get("qemu")->warn("host physical address bits unknown path={} error=\"{}\"", path,
                           cpuinfo ? "no address sizes line" : cpuinfo.error().message);
  return bits;
}

uint64_t HostCaps::memory_mib() const {
  auto meminfo = fs_.read_file(paths_.meminfo());
  return meminfo ? host_memory_mib_from_meminfo(*meminfo) : 0;
}

}  // namespace feos::vmm::qemu

namespace feos::vmm::qemu {

HostNodeMemory HostCaps::node_memory(int node) const {
  HostNodeMemory out;
  const std::string dir = paths_.numa_node(node);
  auto meminfo = fs_.read_file(dir + "/meminfo");
  if (!meminfo) return out;
  auto free = meminfo_kib(*meminfo, "MemFree");
  auto cache = meminfo_kib(*meminfo, "FilePages");
  auto slab = meminfo_kib(*meminfo, "SReclaimable");
  if (!free) return out;
  out.known = true;
  out.available_mib = (*free + cache.value_or(0) + slab.value_or(0)) / 1024;
  out.what = std::to_string(*free / 1024) + " MiB free + " + std::to_string(cache.value_or(0) / 1024) +
             " MiB page cache + " + std::to_string(slab.value_or(0) / 1024) + " MiB reclaimable slab";
  return out;
}

uint64_t HostCaps::default_hugepage_kib() const {
  auto meminfo = fs_.read_file(paths_.meminfo());
  auto size = meminfo ? meminfo_kib(*meminfo, "Hugepagesize") : std::nullopt;
  return size.value_or(0);
}

std::vector<HugetlbMount> HostCaps::hugetlb_mounts() const {
  auto mounts = fs_.read_file(paths_.mounts());
  return mounts ? parse_hugetlb_mounts(*mounts, default_hugepage_kib()) : std::vector<HugetlbMount>{};
}

std::optional<uint64_t> HostCaps::free_hugepages(std::optional<int> node, uint64_t page_kib) const {
  auto text = fs_.read_file(node ? paths_.node_hugepage_pool(*node, page_kib, "free_hugepages")
                                 : paths_.hugepage_pool(page_kib, "free_hugepages"));
  if (!text) return std::nullopt;
  auto number = [](const std::string& text) { return parse_decimal(std::string_view(text).substr(0, text.find('\n')), 15); };
  auto free = number(*text);
  if (!free || node) return free;
  auto reserved_text = fs_.read_file(paths_.hugepage_pool(page_kib, "resv_hugepages"));
  auto reserved = reserved_text ? number(*reserved_text) : std::nullopt;
  return reserved ? *free - std::min(*free, *reserved) : *free;
}

std::vector<int> HostCaps::node_cpus(int node) const {
  auto text = fs_.read_file(paths_.numa_node(node) + "/cpulist");
  auto cpus = text ? parse_cpu_list(*text) : std::nullopt;
  return cpus ? *cpus : std::vector<int>{};
}

int HostCaps::numa_nodes() const {
  auto online = fs_.read_file(paths_.numa_nodes_online());
  const int count = online ? count_node_list(*online) : 0;
  return count > 0 ? count : 1;
}

}  // namespace feos::vmm::qemu
