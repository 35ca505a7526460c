#include "vmm/qemu/qemu_cmdline.h"

#include <cctype>

#include "common/parse.h"
#include "vmm/qemu/qemu_options.h"

namespace feos::vmm::qemu {

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

namespace {

// A vCPU index or NUMA node: at most 4 digits.
std::optional<int> small_number(std::string_view text) {
  auto value = parse_decimal(text, 4);
  return value ? std::optional<int>(static_cast<int>(*value)) : std::nullopt;
}

}  // namespace

std::optional<QemuIdentity> read_qemu_identity(const std::vector<std::string>& args) {
  const std::string vfio_device = std::string(kVfioDriver) + ",";
  QemuIdentity identity;
  bool named = false;
  std::map<std::string, int> backend_node;                 // memory backend id -> host node
  std::vector<std::pair<std::string, std::string>> numa;  // (cpus, memdev) of each -numa node
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    const std::string& flag = args[i];
    const std::string& value = args[i + 1];
    if (flag == kNameFlag) {
      auto guest = option_value(value, kNameGuestKey);
      if (guest && !guest->empty()) identity.vm_id = *guest, named = true;
    } else if (flag == kPidfileFlag) {
      auto slash = value.rfind('/');
      if (slash != std::string::npos && slash > 0) identity.runtime_dir = value.substr(0, slash);
    } else if (flag == kAccelFlag) {
      identity.accel = value == accel_name(Accel::kKvm) ? Accel::kKvm : Accel::kTcg;
    } else if (flag == "-object" && value.rfind("memory-backend-", 0) == 0) {
      auto id = option_value(value, "id");
      auto node = option_value(value, "host-nodes");
      if (id && node)
        if (auto number = small_number(*node)) backend_node[*id] = *number;
    } else if (flag == "-numa" && value.rfind("node,", 0) == 0) {
      auto cpus = option_value(value, "cpus");
      auto memdev = option_value(value, "memdev");
      if (cpus && memdev) numa.emplace_back(*cpus, *memdev);
    } else if (flag == kDeviceFlag && value.rfind(vfio_device, 0) == 0) {
      // Outside data (any process's command line): only a well-formed address reaches sysfs paths.
      if (auto host = option_value(value, kVfioHostKey))
        if (auto address = pci::Address::parse(*host)) identity.vfio_functions.push_back(*address);
    }
  }
  if (!named) return std::nullopt;
  for (const auto& [cpus, memdev] : numa) {
    auto node = backend_node.find(memdev);
    if (node == backend_node.end()) continue;
    const size_t dash = cpus.find('-');
    auto first = small_number(std::string_view(cpus).substr(0, dash));
    auto last = dash == std::string::npos ? first : small_number(std::string_view(cpus).substr(dash + 1));
    if (!first || !last || *last < *first) continue;
    for (int cpu = *first; cpu <= *last; ++cpu) identity.vcpu_host_nodes[cpu] = node->second;
  }
  return identity;
}

Result<QemuIdentity> read_process_identity(const sys::Filesystem& fs, const sys::HostPaths& paths,
                                           int pid, const std::string& where) {
  auto cmdline = fs.read_file(paths.process_file(pid, "cmdline"));
  if (!cmdline) return fail(Code::kNotFound, where + ": " + cmdline.error().message);
  auto identity = read_qemu_identity(split_cmdline(*cmdline));
  if (!identity) return fail(Code::kNotFound, where + " is not a qemu started by feosd");
  return *identity;
}

}  // namespace feos::vmm::qemu
