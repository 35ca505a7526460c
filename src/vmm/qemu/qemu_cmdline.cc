#include "vmm/qemu/qemu_cmdline.h"

#include <cctype>

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

std::optional<QemuIdentity> read_qemu_identity(const std::vector<std::string>& args) {
  const std::string vfio_device = std::string(kVfioDriver) + ",";
  QemuIdentity identity;
  bool named = false;
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
    } else if (flag == kDeviceFlag && value.rfind(vfio_device, 0) == 0) {
      // Outside data (any process's command line): only a well-formed address reaches sysfs paths.
      if (auto host = option_value(value, kVfioHostKey))
        if (auto address = pci::Address::parse(*host)) identity.vfio_functions.push_back(*address);
    }
  }
  if (!named) return std::nullopt;
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
