#include "vmm/spec_validation.h"

#include <set>
#include <string>

namespace feos::vmm {
namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

tl::unexpected<Error> invalid(std::string_view field, const std::string& what) {
  return fail(Code::kInvalidArgument, std::string(field) + ": " + what);
}

// Command-line arguments are C strings: an embedded NUL would silently cut them.
Status no_nul(std::string_view value, std::string_view field) {
  if (value.find('\0') != std::string_view::npos) return invalid(field, "contains a NUL byte");
  return ok();
}

Status validate_tap_name(std::string_view name, std::string_view field) {
  if (name.empty()) return invalid(field, "is empty (a host tap interface name is required)");
  // IFNAMSIZ is 16 including the NUL.
  if (name.size() > 15)
    return invalid(field, quote_for_message(name) + " is longer than 15 characters");
  for (char c : name) {
    if (c == '/' || c == ',' || c == ':' || c == '\0' || c == ' ' || c == '\t' || c == '\n' ||
        c == '\r')
      return invalid(field, quote_for_message(name) + " contains a character not allowed in an interface name");
  }
  if (name == "." || name == "..")
    return invalid(field, quote_for_message(name) + " is not a valid interface name");
  return ok();
}

}  // namespace

Status validate_host_path(std::string_view path, std::string_view field) {
  const std::string shown = quote_for_message(path);
  if (path.empty()) return invalid(field, "is empty");
  if (path.size() > kMaxHostPath)
    return invalid(field, std::to_string(path.size()) + " bytes exceed the path limit of " +
                              std::to_string(kMaxHostPath));
  for (char c : path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return invalid(field, "contains a control character (NUL, newline, ...)");
  }
  if (path.front() != '/') return invalid(field, shown + " is not an absolute path");
  // Every component must be a plain name: no "", ".", ".." (no escaping an allowed directory by
  // spelling, no path that means something other than it says).
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..")
      return invalid(field, shown + " is not a normalized path (empty, '.' or '..' component)");
    start = end + 1;
  }
  return ok();
}

Status validate_mac(std::string_view mac, std::string_view field) {
  auto bad = [&] {
    return invalid(field, quote_for_message(mac) +
                              " is not a MAC address (six hex octets separated by ':')");
  };
  if (mac.size() != 17) return bad();
  for (size_t i = 0; i < mac.size(); ++i) {
    bool colon_position = i % 3 == 2;
    if (colon_position ? mac[i] != ':' : !is_hex(mac[i])) return bad();
  }
  if ((hex_value(mac[1]) & 1) != 0)
    return invalid(field, quote_for_message(mac) + " is a multicast address (a NIC needs a unicast one)");
  if (mac.find_first_not_of("0:") == std::string_view::npos)
    return invalid(field, quote_for_message(mac) + " is the all-zero address (not a NIC's address)");
  return ok();
}

Status validate_device_id(std::string_view id, std::string_view field) {
  if (id.empty()) return invalid(field, "is empty");
  if (id.size() > kMaxDeviceIdLength)
    return invalid(field, quote_for_message(id) + " is longer than " +
                              std::to_string(kMaxDeviceIdLength) + " characters");
  if (!is_alpha(id[0]))
    return invalid(field, quote_for_message(id) + " must start with a letter");
  for (char c : id) {
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_')
      return invalid(field, quote_for_message(id) +
                                " may contain only letters, digits, '-', '.' and '_'");
  }
  if (id.substr(0, kReservedIdPrefix.size()) == kReservedIdPrefix)
    return invalid(field, quote_for_message(id) + " uses the reserved prefix \"" +
                              std::string(kReservedIdPrefix) + "\"");
  return ok();
}

Status validate_spec(const model::VmSpec& spec) {
  const auto& cpus = spec.cpus;
  if (cpus.boot_vcpus == 0) return invalid("cpus.boot_vcpus", "must be at least 1");
  if (cpus.max_vcpus < cpus.boot_vcpus)
    return invalid("cpus.max_vcpus", std::to_string(cpus.max_vcpus) +
                                         " is less than cpus.boot_vcpus (" +
                                         std::to_string(cpus.boot_vcpus) + ")");
  if (cpus.max_vcpus > kMaxVcpus)
    return invalid("cpus.max_vcpus", std::to_string(cpus.max_vcpus) + " exceeds the limit of " +
                                         std::to_string(kMaxVcpus));
  if (spec.memory.size_mib == 0) return invalid("memory.size_mib", "must be at least 1");
  if (spec.memory.size_mib > kMaxMemoryMib)
    return invalid("memory.size_mib", std::to_string(spec.memory.size_mib) +
                                          " exceeds the limit of " + std::to_string(kMaxMemoryMib));

  if (spec.image_path.empty() && spec.boot.kernel.empty())
    return invalid("image_ref", "a root disk image or boot.kernel is required");
  if (!spec.image_path.empty()) FEOS_TRY(validate_host_path(spec.image_path, "image_ref"));
  if (!spec.boot.kernel.empty()) FEOS_TRY(validate_host_path(spec.boot.kernel, "boot.kernel"));
  if (!spec.boot.initramfs.empty())
    FEOS_TRY(validate_host_path(spec.boot.initramfs, "boot.initramfs"));
  FEOS_TRY(no_nul(spec.boot.cmdline, "boot.cmdline"));
  // A kernel command line is one line of words; control characters would only reach logs.
  for (unsigned char c : spec.boot.cmdline)
    if (c < 0x20 || c == 0x7f) return invalid("boot.cmdline", "contains a control character");
  if (spec.boot.initramfs.find(',') != std::string::npos)
    return invalid("boot.initramfs", quote_for_message(spec.boot.initramfs) +
                                         " contains ',', which qemu's -initrd cannot take (it splits there)");
  if (spec.boot.kernel.empty()) {
    if (!spec.boot.initramfs.empty()) return invalid("boot.initramfs", "requires boot.kernel");
    if (!spec.boot.cmdline.empty()) return invalid("boot.cmdline", "requires boot.kernel");
  }
  if (spec.boot.cmdline.size() > kMaxKernelCmdline)
    return invalid("boot.cmdline", std::to_string(spec.boot.cmdline.size()) +
                                       " bytes exceed the kernel's limit of " +
                                       std::to_string(kMaxKernelCmdline));

  // Disk and net ids share QEMU's device id namespace.
  std::set<std::string> ids;
  auto unique = [&](const std::string& id, const std::string& field) -> Status {
    if (!ids.insert(id).second) return invalid(field, "duplicate device id " + quote_for_message(id));
    return ok();
  };
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const auto& disk = spec.disks[i];
    std::string prefix = "disks[" + std::to_string(i) + "]";
    FEOS_TRY(validate_device_id(disk.device_id, prefix + ".device_id"));
    FEOS_TRY(unique(disk.device_id, prefix + ".device_id"));
    FEOS_TRY(validate_host_path(disk.path, prefix + ".path"));
  }
  for (size_t i = 0; i < spec.nets.size(); ++i) {
    const auto& net = spec.nets[i];
    std::string prefix = "net[" + std::to_string(i) + "]";
    FEOS_TRY(validate_device_id(net.device_id, prefix + ".device_id"));
    FEOS_TRY(unique(net.device_id, prefix + ".device_id"));
    FEOS_TRY(validate_tap_name(net.tap_name, prefix + ".tap_name"));
    if (!net.mac.empty()) FEOS_TRY(validate_mac(net.mac, prefix + ".mac_address"));
  }
  return ok();
}

}  // namespace feos::vmm
