#include "model/validate.h"

#include <set>
#include <string>

#include "common/parse.h"
#include "model/field_path.h"
#include "model/limits.h"

namespace feos::model {
namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_control(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

tl::unexpected<Error> invalid(std::string_view field, const std::string& what) {
  return fail(Code::kInvalidArgument, std::string(field) + ": " + what);
}

Status validate_tap_name(std::string_view name, std::string_view field) {
  if (name.empty()) return invalid(field, "is empty (a host tap interface name is required)");
  if (name.size() > kMaxTapName)
    return invalid(field, quote_for_message(name) + " is longer than " + std::to_string(kMaxTapName) +
                              " characters");
  for (char c : name) {
    if (c == '/' || c == ',' || c == ':' || c == '\0' || c == ' ' || c == '\t' || c == '\n' ||
        c == '\r')
      return invalid(field, quote_for_message(name) + " contains a character not allowed in an interface name");
  }
  if (name == "." || name == "..")
    return invalid(field, quote_for_message(name) + " is not a valid interface name");
  return ok();
}

Status validate_cpus_and_memory(const VmSpec& spec) {
  const auto& cpus = spec.cpus;
  if (cpus.boot_vcpus == 0) return invalid(field::kCpusBootVcpus, "must be at least 1");
  if (cpus.max_vcpus < cpus.boot_vcpus)
    return invalid(field::kCpusMaxVcpus, std::to_string(cpus.max_vcpus) + " is less than " +
                                             field::kCpusBootVcpus + " (" +
                                             std::to_string(cpus.boot_vcpus) + ")");
  if (cpus.max_vcpus > kMaxVcpus)
    return invalid(field::kCpusMaxVcpus, std::to_string(cpus.max_vcpus) + " exceeds the limit of " +
                                             std::to_string(kMaxVcpus));
  if (spec.memory.size_mib == 0) return invalid(field::kMemorySizeMib, "must be at least 1");
  if (spec.memory.size_mib > kMaxMemoryMib)
    return invalid(field::kMemorySizeMib, std::to_string(spec.memory.size_mib) +
                                              " exceeds the limit of " + std::to_string(kMaxMemoryMib));
  const HugepageSize page = spec.memory.hugepage_size;
  if (page != HugepageSize::kHostDefault && page != HugepageSize::k2M && page != HugepageSize::k1G)
    return invalid(field::kMemoryHugepageSize, "unknown size " + std::to_string(static_cast<int>(page)));
  if (page != HugepageSize::kHostDefault && !spec.memory.hugepages)
    return invalid(field::kMemoryHugepageSize, std::string(hugepage_size_name(page)) + " needs " +
                                                   field::kMemoryHugepages + " set");
  // qemu refuses a hugetlbfs backend that is not a whole number of pages; the host's default size
  // is checked where it is known (the adapter).
  if (const uint64_t page_mib = hugepage_size_kib(page) / 1024; page_mib != 0 && spec.memory.size_mib % page_mib != 0)
    return invalid(field::kMemorySizeMib, std::to_string(spec.memory.size_mib) + " MiB is not a whole number of " +
                                              std::string(hugepage_size_name(page)) + " hugepages");
  return ok();
}

Status validate_counts(const VmSpec& spec) {
  auto at_most = [](std::string_view list, size_t count, size_t max, std::string_view what) -> Status {
    if (count <= max) return ok();
    return invalid(list, std::to_string(count) + " given, at most " + std::to_string(max) + " " +
                             std::string(what) + " per VM");
  };
  FEOS_TRY(at_most(field::kDisks, spec.disks.size(), kMaxDisks, "disks"));
  FEOS_TRY(at_most(field::kNets, spec.nets.size(), kMaxNics, "NICs"));
  FEOS_TRY(at_most(field::kGpus, spec.gpus.size(), kMaxGpus, "GPUs"));
  if (!spec.gpu_count) return ok();
  const GpuCount& by_count = *spec.gpu_count;
  if (by_count.count == 0) return invalid(field::kGpuCount, "must be at least 1");
  if (spec.gpus.size() + by_count.count > kMaxGpus)
    return invalid(field::kGpuCount, std::to_string(by_count.count) + " more than the " +
                                         std::to_string(spec.gpus.size()) + " of " + field::kGpus +
                                         ": at most " + std::to_string(kMaxGpus) + " GPUs per VM");
  if (by_count.model.size() > kMaxGpuModelLength)
    return invalid(field::kGpuModel, "longer than " + std::to_string(kMaxGpuModelLength) + " characters");
  for (char c : by_count.model)
    if (is_control(c)) return invalid(field::kGpuModel, "contains a control character");
  return ok();
}

// What qemu is told to boot: the root image, the kernel, its initramfs and command line.
Status validate_boot(const VmSpec& spec) {
  const BootSpec& boot = spec.boot;
  // A registry image's disk comes with its pull, after CreateVm answered (image_path stays empty
  // until then).
  if (spec.image_path.empty() && boot.kernel.empty() && !names_registry_image(spec.image_ref))
    return invalid(field::kConfig, std::string("nothing to boot: set ") + field::kImageRef +
                                       " (a local disk image) or " + field::kBootKernel);
  if (!spec.image_path.empty()) FEOS_TRY(validate_host_path(spec.image_path, field::kImageRef));
  if (!boot.kernel.empty()) FEOS_TRY(validate_host_path(boot.kernel, field::kBootKernel));
  if (!boot.initramfs.empty()) FEOS_TRY(validate_host_path(boot.initramfs, field::kBootInitramfs));
  // Command-line arguments are C strings (a NUL would cut them) and a kernel command line is one
  // line of words: control characters would only reach logs.
  if (boot.cmdline.find('\0') != std::string::npos)
    return invalid(field::kBootCmdline, "contains a NUL byte");
  for (char c : boot.cmdline)
    if (is_control(c)) return invalid(field::kBootCmdline, "contains a control character");
  if (boot.initramfs.find(',') != std::string::npos)
    return invalid(field::kBootInitramfs, quote_for_message(boot.initramfs) +
                                              " contains ',', which qemu's -initrd cannot take (it splits there)");
  if (boot.kernel.empty()) {
    const std::string requires_kernel = std::string("requires ") + field::kBootKernel;
    if (!boot.initramfs.empty()) return invalid(field::kBootInitramfs, requires_kernel);
    if (!boot.cmdline.empty()) return invalid(field::kBootCmdline, requires_kernel);
  }
  if (boot.cmdline.size() > kMaxKernelCmdline)
    return invalid(field::kBootCmdline, std::to_string(boot.cmdline.size()) +
                                            " bytes exceed the kernel's limit of " +
                                            std::to_string(kMaxKernelCmdline));
  return ok();
}

Status validate_ignition(const std::optional<std::string>& ignition) {
  if (!ignition) return ok();
  if (ignition->size() > kMaxIgnition)
    return invalid(field::kIgnition, std::to_string(ignition->size()) + " bytes exceed the limit of " +
                                         std::to_string(kMaxIgnition));
  // It reaches qemu as a file, but its path travels in an argument and JSON never holds a NUL.
  if (ignition->find('\0') != std::string::npos) return invalid(field::kIgnition, "contains a NUL byte");
  return ok();
}

Status validate_devices(const VmSpec& spec) {
  // Disk and net ids share QEMU's device id namespace.
  std::set<std::string> ids;
  auto unique = [&](const std::string& id, const std::string& field) -> Status {
    if (!ids.insert(id).second) return invalid(field, "duplicate device id " + quote_for_message(id));
    return ok();
  };
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const auto& disk = spec.disks[i];
    const std::string id_field = field::disk(i, "device_id");
    FEOS_TRY(validate_device_id(disk.device_id, id_field));
    FEOS_TRY(unique(disk.device_id, id_field));
    FEOS_TRY(validate_host_path(disk.path, field::disk(i, "path")));
  }
  for (size_t i = 0; i < spec.nets.size(); ++i) {
    const auto& net = spec.nets[i];
    const std::string id_field = field::net(i, "device_id");
    FEOS_TRY(validate_device_id(net.device_id, id_field));
    FEOS_TRY(unique(net.device_id, id_field));
    FEOS_TRY(validate_tap_name(net.tap_name, field::net(i, "tap.tap_name")));
    if (!net.mac.empty()) FEOS_TRY(validate_mac(net.mac, field::net(i, "mac_address")));
  }
  return ok();
}

Status validate_firmware(const FirmwareSpec& firmware) {
  if (firmware.kind != FirmwareKind::kBios && firmware.kind != FirmwareKind::kUefi)
    return invalid(field::kFirmwareKind, "unknown firmware " + std::to_string(static_cast<int>(firmware.kind)));
  if (firmware.secure_boot && firmware.kind != FirmwareKind::kUefi)
    return invalid(field::kFirmwareSecureBoot, "needs UEFI firmware (config.firmware.kind uefi)");
  return ok();
}

// Explicit cliques name the VM's own GPUs by address (the ones given in config.gpus: GPUs picked
// by count are not known yet), each GPU in one clique, at least two per clique, at most 16 ids.
Status validate_gpu_p2p(const VmSpec& spec) {
  const GpuP2pSpec& p2p = spec.gpu_p2p;
  if (p2p.mode != GpuP2pMode::kAuto && p2p.mode != GpuP2pMode::kOff && p2p.mode != GpuP2pMode::kExplicit)
    return invalid(field::kGpuP2pMode, "unknown mode " + std::to_string(static_cast<int>(p2p.mode)));
  if (p2p.mode != GpuP2pMode::kExplicit) {
    if (!p2p.cliques.empty()) return invalid(field::kGpuP2pCliques, "given without mode explicit");
    return ok();
  }
  if (p2p.cliques.empty()) return invalid(field::kGpuP2pCliques, "mode explicit needs at least one clique");
  if (p2p.cliques.size() > kMaxGpudirectCliques)
    return invalid(field::kGpuP2pCliques, std::to_string(p2p.cliques.size()) + " given, at most " +
                                              std::to_string(kMaxGpudirectCliques) + " (clique ids 0-15)");
  std::set<pci::Address> seen;
  for (size_t i = 0; i < p2p.cliques.size(); ++i) {
    const std::string at = field::element(field::kGpuP2pCliques, i);
    if (p2p.cliques[i].size() < 2)
      return invalid(at, "a clique needs at least two GPUs (one GPU has no peer)");
    for (const pci::Address& address : p2p.cliques[i]) {
      bool ours = false;
      for (const GpuSpec& gpu : spec.gpus) ours = ours || gpu.address.same_slot(address);
      if (!ours)
        return invalid(at, address.to_string() + " is not one of the VM's GPUs (" + field::kGpus + ")");
      if (!seen.insert(address).second)
        return invalid(at, address.to_string() + " is in more than one clique");
    }
  }
  return ok();
}

}  // namespace

Status validate(const VmSpec& spec) {
  FEOS_TRY(validate_cpus_and_memory(spec));
  FEOS_TRY(validate_counts(spec));
  FEOS_TRY(validate_boot(spec));
  FEOS_TRY(validate_ignition(spec.ignition));
  FEOS_TRY(validate_firmware(spec.firmware));
  FEOS_TRY(validate_gpu_p2p(spec));
  if (spec.guest_numa != GuestNumaMode::kDefault && spec.guest_numa != GuestNumaMode::kAuto &&
      spec.guest_numa != GuestNumaMode::kOff)
    return invalid(field::kGuestNuma, "unknown mode " + std::to_string(static_cast<int>(spec.guest_numa)));
  return validate_devices(spec);
}

Status validate_host_path(std::string_view path, std::string_view field) {
  const std::string shown = quote_for_message(path);
  if (path.empty()) return invalid(field, "is empty");
  if (path.size() > kMaxHostPath)
    return invalid(field, std::to_string(path.size()) + " bytes exceed the path limit of " +
                              std::to_string(kMaxHostPath));
  for (char c : path)
    if (is_control(c)) return invalid(field, "contains a control character (NUL, newline, ...)");
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

bool is_mac_text(std::string_view mac) {
  if (mac.size() != kMacAddressLength) return false;
  for (size_t octet = 0; octet < 6; ++octet) {
    if (octet > 0 && mac[octet * 3 - 1] != ':') return false;
    if (!parse_hex(mac.substr(octet * 3, 2), 2)) return false;
  }
  return true;
}

Status validate_mac(std::string_view mac, std::string_view field) {
  if (!is_mac_text(mac))
    return invalid(field, quote_for_message(mac) +
                              " is not a MAC address (six hex octets separated by ':')");
  if ((*parse_hex(mac.substr(0, 2), 2) & 1) != 0)
    return invalid(field, quote_for_message(mac) + " is a multicast address (a NIC needs a unicast one)");
  if (mac.find_first_not_of("0:") == std::string_view::npos)
    return invalid(field, quote_for_message(mac) + " is the all-zero address (not a NIC's address)");
  return ok();
}

Status validate_device_id(std::string_view id, std::string_view field) {
  if (id.empty()) return invalid(field, "is empty");
  if (id.size() > kMaxDeviceId)
    return invalid(field, quote_for_message(id) + " is longer than " + std::to_string(kMaxDeviceId) +
                              " characters");
  if (!is_alpha(id[0])) return invalid(field, quote_for_message(id) + " must start with a letter");
  for (char c : id) {
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_')
      return invalid(field, quote_for_message(id) + " may contain only letters, digits, '-', '.' and '_'");
  }
  if (id.substr(0, kReservedIdPrefix.size()) == kReservedIdPrefix)
    return invalid(field, quote_for_message(id) + " uses the reserved prefix \"" +
                              std::string(kReservedIdPrefix) + "\"");
  return ok();
}

}  // namespace feos::model
