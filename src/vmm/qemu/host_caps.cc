#include "vmm/qemu/host_caps.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "common/log.h"

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

bool kvm_available(const sys::HostPaths& paths) {
  int fd = ::open(paths.kvm().c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
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
