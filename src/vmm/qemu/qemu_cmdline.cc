#include "vmm/qemu/qemu_cmdline.h"

#include <cctype>

namespace feos::vmm::qemu {
namespace {

// The value of `key` in an option list "head,key=value,..." (build_argv escapes ',' in values as
// ",,"; the values read here never contain one), or nullopt.
std::optional<std::string> option_value(std::string_view options, std::string_view key) {
  size_t begin = 0;
  while (begin <= options.size()) {
    size_t end = options.find(',', begin);
    if (end == std::string_view::npos) end = options.size();
    std::string_view item = options.substr(begin, end - begin);
    if (item.size() > key.size() && item.substr(0, key.size()) == key && item[key.size()] == '=')
      return std::string(item.substr(key.size() + 1));
    begin = end + 1;
  }
  return std::nullopt;
}

}  // namespace

bool same_vm_id(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::vector<std::string> split_cmdline(std::string_view raw) {
  std::vector<std::string> args;
  size_t begin = 0;
  while (begin < raw.size()) {
    size_t end = raw.find('\0', begin);
    if (end == std::string_view::npos) end = raw.size();
    args.emplace_back(raw.substr(begin, end - begin));
    begin = end + 1;
  }
  return args;
}

std::optional<QemuIdentity> read_qemu_identity(const std::vector<std::string>& args) {
  QemuIdentity identity;
  bool named = false;
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    const std::string& flag = args[i];
    const std::string& value = args[i + 1];
    if (flag == "-name") {
      auto guest = option_value(value, "guest");
      if (guest && !guest->empty()) identity.vm_id = *guest, named = true;
    } else if (flag == "-pidfile") {
      auto slash = value.rfind('/');
      if (slash != std::string::npos && slash > 0) identity.runtime_dir = value.substr(0, slash);
    } else if (flag == "-accel") {
      identity.accel = value == "kvm" ? Accel::kKvm : Accel::kTcg;
    } else if (flag == "-device" && value.rfind("vfio-pci,", 0) == 0) {
      if (auto host = option_value(value, "host")) identity.vfio_hosts.push_back(*host);
    }
  }
  if (!named) return std::nullopt;
  return identity;
}

}  // namespace feos::vmm::qemu
