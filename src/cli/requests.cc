#include "cli/requests.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>
#include <string>

#include "model/validate.h"

namespace feos::cli {
namespace {

std::string in_quotes(std::string_view text) { return "'" + std::string(text) + "'"; }

tl::unexpected<Error> usage(std::string_view flag, const std::string& message) {
  return fail(Code::kInvalidArgument, std::string(flag) + ": " + message);
}

// Splits "a,b,c" at commas; empty fields are kept so that "x,,ro" is caught as an empty option.
std::vector<std::string_view> split_commas(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    parts.push_back(text.substr(start, comma == std::string_view::npos ? comma : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return parts;
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// A URL ("file:///x", "oci://...") goes to the daemon as typed; anything else is a host path.
bool looks_like_url(std::string_view ref) { return ref.find("://") != std::string_view::npos; }

Result<std::string> host_path(std::string_view flag, const std::string& path,
                              std::string_view cwd) {
  if (path.empty()) return usage(flag, "path must not be empty");
  return absolute_path(path, cwd);
}

}  // namespace

Result<uint64_t> parse_uint(std::string_view flag, std::string_view text, uint64_t min,
                            uint64_t max) {
  auto digits_only = [](std::string_view t) {
    return !t.empty() && t.find_first_not_of("0123456789") == std::string_view::npos;
  };
  auto too_small = [&]() {
    return usage(flag, "must be at least " + std::to_string(min) + ", got " + in_quotes(text));
  };
  auto too_large = [&]() {
    return usage(flag, "must be at most " + std::to_string(max) + ", got " + in_quotes(text));
  };
  // "-5" is a number, just below any minimum we accept.
  if (text.size() > 1 && text[0] == '-' && digits_only(text.substr(1))) return too_small();
  if (!digits_only(text)) return usage(flag, "expected a whole number, got " + in_quotes(text));
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) return too_large();
  if (ec != std::errc() || end != text.data() + text.size()) {
    return usage(flag, "expected a whole number, got " + in_quotes(text));
  }
  if (value < min) return too_small();
  if (value > max) return too_large();
  return value;
}

Result<double> parse_seconds(std::string_view flag, std::string_view text) {
  auto bad = [&]() {
    return usage(flag, "expected a number of seconds > 0, got " + in_quotes(text));
  };
  if (text.empty()) return bad();
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || c == '.')) return bad();
  }
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return bad();
  if (!std::isfinite(value) || value <= 0) return bad();
  return value;
}

Result<v1::VmState> parse_state(std::string_view flag, std::string_view text) {
  std::string name;
  for (char c : text) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!starts_with(name, "VM_STATE_")) name = "VM_STATE_" + name;
  v1::VmState state = v1::VM_STATE_UNSPECIFIED;
  if (!v1::VmState_Parse(name, &state) || state == v1::VM_STATE_UNSPECIFIED) {
    return usage(flag, "unknown state " + in_quotes(text) +
                           " (expected creating, created, running, paused, stopped or crashed)");
  }
  return state;
}

std::string absolute_path(std::string_view path, std::string_view cwd) {
  std::filesystem::path p{std::string(path)};
  if (p.is_relative()) p = std::filesystem::path{std::string(cwd)} / p;
  return p.lexically_normal().string();
}

Result<v1::DiskConfig> parse_disk_spec(std::string_view spec, std::string_view cwd) {
  constexpr std::string_view kFlag = "--disk";
  std::vector<std::string_view> parts = split_commas(spec);
  if (parts[0].empty()) {
    return usage(kFlag, "missing path in " + in_quotes(spec) + " (expected PATH[,ro][,id=ID])");
  }
  v1::DiskConfig disk;
  disk.set_path(absolute_path(parts[0], cwd));
  bool seen_ro = false;
  bool seen_id = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view option = parts[i];
    if (option == "ro" && !seen_ro) {
      disk.set_readonly(true);
      seen_ro = true;
    } else if (starts_with(option, "id=") && !seen_id) {
      if (option.size() == 3) return usage(kFlag, "empty id in " + in_quotes(spec));
      disk.set_device_id(std::string(option.substr(3)));
      seen_id = true;
    } else if (option == "ro" || starts_with(option, "id=")) {
      return usage(kFlag, "option " + in_quotes(option) + " given twice in " + in_quotes(spec));
    } else {
      return usage(kFlag, "unknown option " + in_quotes(option) + " in " + in_quotes(spec) +
                              " (expected PATH[,ro][,id=ID])");
    }
  }
  return disk;
}

Result<v1::NetConfig> parse_tap_spec(std::string_view spec) {
  constexpr std::string_view kFlag = "--tap";
  std::vector<std::string_view> parts = split_commas(spec);
  // "mac=..." in the first place is an option, not an interface name: the name is missing.
  if (parts[0].empty() || parts[0].find('=') != std::string_view::npos) {
    return usage(kFlag, "missing tap interface name in " + in_quotes(spec) +
                            " (expected NAME[,mac=MAC][,id=ID])");
  }
  v1::NetConfig net;
  net.mutable_tap()->set_tap_name(std::string(parts[0]));
  bool seen_mac = false;
  bool seen_id = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view option = parts[i];
    if (starts_with(option, "mac=") && !seen_mac) {
      std::string_view mac = option.substr(4);
      if (!model::is_mac_text(mac)) {
        return usage(kFlag, "malformed mac " + in_quotes(mac) + " in " + in_quotes(spec) +
                                " (expected six hex octets like 52:54:00:12:34:56)");
      }
      net.set_mac_address(std::string(mac));
      seen_mac = true;
    } else if (starts_with(option, "id=") && !seen_id) {
      if (option.size() == 3) return usage(kFlag, "empty id in " + in_quotes(spec));
      net.set_device_id(std::string(option.substr(3)));
      seen_id = true;
    } else if (starts_with(option, "mac=") || starts_with(option, "id=")) {
      return usage(kFlag, "option " + in_quotes(option.substr(0, option.find('=') + 1)) +
                              " given twice in " + in_quotes(spec));
    } else {
      return usage(kFlag, "unknown option " + in_quotes(option) + " in " + in_quotes(spec) +
                              " (expected NAME[,mac=MAC][,id=ID])");
    }
  }
  return net;
}

Result<hostv1::GpuConfig> parse_gpu_spec(std::string_view spec) {
  constexpr std::string_view kFlag = "--gpu";
  constexpr std::string_view kSyntax = " (expected ADDR[,rombar=on|off][,boot-vga])";
  std::vector<std::string_view> parts = split_commas(spec);
  // An option in the first place ("rombar=off", "boot-vga") means the address is missing.
  if (parts[0].empty() || parts[0].find('=') != std::string_view::npos || parts[0] == "boot-vga") {
    return usage(kFlag, "missing PCI address in " + in_quotes(spec) + std::string(kSyntax));
  }
  hostv1::GpuConfig gpu;
  gpu.set_address(std::string(parts[0]));
  bool seen_rombar = false;
  bool seen_boot_vga = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view option = parts[i];
    if (starts_with(option, "rombar=")) {
      if (seen_rombar) {
        return usage(kFlag, "option 'rombar=' given twice in " + in_quotes(spec));
      }
      std::string_view value = option.substr(7);
      if (value == "on") {
        gpu.set_rombar(hostv1::ROM_BAR_ON);
      } else if (value == "off") {
        gpu.set_rombar(hostv1::ROM_BAR_OFF);
      } else {
        return usage(
            kFlag, "rombar must be on or off, got " + in_quotes(value) + " in " + in_quotes(spec));
      }
      seen_rombar = true;
    } else if (option == "boot-vga") {
      if (seen_boot_vga) {
        return usage(kFlag, "option 'boot-vga' given twice in " + in_quotes(spec));
      }
      gpu.set_boot_vga(true);
      seen_boot_vga = true;
    } else {
      return usage(kFlag, "unknown option " + in_quotes(option) + " in " + in_quotes(spec) +
                              std::string(kSyntax));
    }
  }
  return gpu;
}

Result<v1::CreateVmRequest> build_create_request(const CreateArgs& args, std::string_view cwd,
                                                 const sys::Filesystem& fs) {
  constexpr uint64_t kMaxU32 = std::numeric_limits<uint32_t>::max();
  // Sizes in bytes must still fit uint64 on the daemon's side.
  constexpr uint64_t kMaxMib = std::numeric_limits<uint64_t>::max() >> 20;

  v1::CreateVmRequest request;
  if (args.vm_id) {
    if (args.vm_id->empty()) return usage("--id", "must not be empty");
    request.set_vm_id(*args.vm_id);
  }
  v1::VmConfig& config = *request.mutable_config();

  auto vcpus = parse_uint("--vcpus", args.vcpus, 1, kMaxU32);
  if (!vcpus) return fail(vcpus.error());
  config.mutable_cpus()->set_boot_vcpus(static_cast<uint32_t>(*vcpus));
  if (args.max_vcpus) {
    auto max_vcpus = parse_uint("--max-vcpus", *args.max_vcpus, 1, kMaxU32);
    if (!max_vcpus) return fail(max_vcpus.error());
    if (*max_vcpus < *vcpus) {
      return usage("--max-vcpus", "must be >= --vcpus (" + std::to_string(*vcpus) + "), got " +
                                      std::to_string(*max_vcpus));
    }
    config.mutable_cpus()->set_max_vcpus(static_cast<uint32_t>(*max_vcpus));
  }

  auto memory = parse_uint("--memory", args.memory_mib, 1, kMaxMib);
  if (!memory) return fail(memory.error());
  config.mutable_memory()->set_size_mib(*memory);
  if (args.hugepages) {
    config.mutable_memory()->set_hugepages(true);
    if (*args.hugepages == "2M") config.mutable_memory()->set_hugepage_size(feosd::v1::HUGEPAGE_SIZE_2M);
    else if (*args.hugepages == "1G") config.mutable_memory()->set_hugepage_size(feosd::v1::HUGEPAGE_SIZE_1G);
    else if (!args.hugepages->empty()) return usage("--hugepages", "must be 2M or 1G, got " + in_quotes(*args.hugepages));
  }

  if (args.image) {
    if (args.image->empty()) return usage("--image", "must not be empty");
    // A relative path that exists here is made absolute for the daemon; anything else that is
    // not a path (a URL, an OCI reference like "ghcr.io/org/image:tag") goes as typed, so the
    // daemon can say what it supports.
    std::string local = absolute_path(*args.image, cwd);
    bool is_path = args.image->front() == '/' || args.image->starts_with("./") ||
                   args.image->starts_with("../") || fs.exists(local);
    config.set_image_ref(looks_like_url(*args.image) || !is_path ? *args.image : local);
  }

  if (args.kernel || args.initramfs || args.cmdline) {
    v1::BootConfig& boot = *config.mutable_boot();
    if (args.kernel) {
      auto path = host_path("--kernel", *args.kernel, cwd);
      if (!path) return fail(path.error());
      boot.set_kernel(*path);
    }
    if (args.initramfs) {
      auto path = host_path("--initramfs", *args.initramfs, cwd);
      if (!path) return fail(path.error());
      boot.set_initramfs(*path);
    }
    if (args.cmdline) boot.set_cmdline(*args.cmdline);
  }

  for (const std::string& spec : args.disks) {
    auto disk = parse_disk_spec(spec, cwd);
    if (!disk) return fail(disk.error());
    *config.add_disks() = std::move(*disk);
  }
  for (const std::string& spec : args.taps) {
    auto net = parse_tap_spec(spec);
    if (!net) return fail(net.error());
    *config.add_net() = std::move(*net);
  }
  for (const std::string& spec : args.gpus) {
    auto gpu = parse_gpu_spec(spec);
    if (!gpu) return fail(gpu.error());
    *config.add_gpus() = std::move(*gpu);
  }

  if (args.gpu_count) {
    auto count = parse_uint("--gpus", *args.gpu_count, 1, 16);
    if (!count) return fail(count.error());
    auto* by_count = config.mutable_gpu_count();
    by_count->set_count(static_cast<uint32_t>(*count));
    by_count->set_model(args.gpu_model.value_or(""));
    by_count->set_p2p(args.gpu_p2p);
  } else if (args.gpu_model || args.gpu_p2p) {
    return usage(args.gpu_model ? "--gpu-model" : "--gpu-p2p", "needs --gpus N");
  }

  if (args.gpu_cliques.size() == 1 && args.gpu_cliques[0] == "off") {
    config.mutable_gpu_p2p()->set_mode(feosd::v1::GPU_P2P_MODE_OFF);
  } else if (!args.gpu_cliques.empty()) {
    config.mutable_gpu_p2p()->set_mode(feosd::v1::GPU_P2P_MODE_EXPLICIT);
    for (const std::string& group : args.gpu_cliques) {
      if (group == "off") return usage("--gpu-clique", "off cannot be combined with cliques");
      auto* clique = config.mutable_gpu_p2p()->add_cliques();
      size_t start = 0;
      while (start <= group.size()) {
        size_t end = std::min(group.find(',', start), group.size());
        if (end == start) return usage("--gpu-clique", in_quotes(group) + " has an empty address");
        clique->add_gpus(group.substr(start, end - start));
        start = end + 1;
      }
    }
  }
  if (args.guest_numa) {
    if (*args.guest_numa == "auto")
      config.set_guest_numa(feosd::v1::GUEST_NUMA_MODE_AUTO);
    else if (*args.guest_numa == "off")
      config.set_guest_numa(feosd::v1::GUEST_NUMA_MODE_OFF);
    else
      return usage("--guest-numa", in_quotes(*args.guest_numa) + " is not auto or off");
  }

  if (args.firmware || args.secure_boot) {
    const std::string kind = args.firmware.value_or("uefi");
    auto* firmware = config.mutable_firmware();
    if (kind == "uefi")
      firmware->set_kind(feosd::v1::FIRMWARE_KIND_UEFI);
    else if (kind == "bios")
      firmware->set_kind(feosd::v1::FIRMWARE_KIND_BIOS);
    else
      return usage("--firmware", in_quotes(kind) + " is not bios or uefi");
    if (args.secure_boot && kind != "uefi") return usage("--secure-boot", "needs --firmware uefi");
    firmware->set_secure_boot(args.secure_boot);
  }

  if (args.ignition_file) {
    if (args.ignition_file->empty()) return usage("--ignition", "path must not be empty");
    auto content = fs.read_file(absolute_path(*args.ignition_file, cwd));
    if (!content) {
      return usage("--ignition", "cannot read " + in_quotes(*args.ignition_file) + ": " +
                                     content.error().message);
    }
    config.set_ignition(std::move(*content));
  }
  return request;
}

Result<v1::StreamVmEventsRequest> build_events_request(const EventsArgs& args) {
  v1::StreamVmEventsRequest request;
  if (args.vm_id) {
    if (args.vm_id->empty()) return usage("ID", "must not be empty");
    request.set_vm_id(*args.vm_id);
  }
  int modes = (args.tail ? 1 : 0) + (args.since_id ? 1 : 0) + (args.since_s ? 1 : 0);
  if (modes > 1) return usage("--tail", "--tail, --since-id and --since exclude each other");
  constexpr uint64_t kMaxI32 = std::numeric_limits<int32_t>::max();
  if (args.tail) {
    auto tail = parse_uint("--tail", *args.tail, 0, kMaxI32);
    if (!tail) return fail(tail.error());
    request.set_tail_events(static_cast<int32_t>(*tail));
  } else if (args.since_id) {
    if (args.since_id->empty()) return usage("--since-id", "must not be empty");
    request.set_tail_id(*args.since_id);
  } else if (args.since_s) {
    auto seconds = parse_uint("--since", *args.since_s, 1, kMaxI32);
    if (!seconds) return fail(seconds.error());
    request.set_tail_seconds(static_cast<int32_t>(*seconds));
  }
  return request;
}

}  // namespace feos::cli
