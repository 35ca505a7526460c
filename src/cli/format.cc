#include "cli/format.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <vector>

#include "common/error.h"
#include "pci/address.h"

namespace feos::cli {
namespace {

constexpr size_t kReasonWidth = 40;
constexpr size_t kDeviceNameWidth = 44;

// Left-aligned columns separated by three spaces; the last column is not padded.
std::string render_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  size_t line = 0;
  for (size_t width : widths) line += width + 3;
  std::string out;
  out.reserve(rows.size() * (line + 1));
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out.append(widths[i] - row[i].size() + 3, ' ');
    }
    out += '\n';
  }
  return out;
}

// `text` on one line: newlines and carriage returns become spaces.
std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  return text;
}

std::string or_dash(const std::string& text) { return text.empty() ? "-" : text; }

// A vendor as a table names it: its own short form in brackets, else its name without the legal
// suffixes ("NVIDIA Corporation" -> "NVIDIA", "ASPEED Technology, Inc." -> "ASPEED",
// "Advanced Micro Devices, Inc. [AMD/ATI]" -> "AMD/ATI"), so the model's name fits the column.
std::string short_vendor(std::string_view vendor) {
  const size_t open = vendor.rfind(" [");
  if (open != std::string_view::npos && vendor.size() > open + 3 && vendor.back() == ']')
    return std::string(vendor.substr(open + 2, vendor.size() - open - 3));
  static constexpr std::string_view kSuffixes[] = {
      ",", " ", " Corporation", " Corp.", " Corp", " Inc.", " Inc", " Co., Ltd.", " Co., Ltd",
      " Co. Ltd.", " Co Ltd", " Co.", " Ltd.", " Ltd", " Limited", " LLC", " GmbH", " AG",
      " Technologies", " Technology", " Electronics"};
  for (bool stripped = true; stripped;) {
    stripped = false;
    for (std::string_view suffix : kSuffixes) {
      if (vendor.size() > suffix.size() && vendor.substr(vendor.size() - suffix.size()) == suffix) {
        vendor.remove_suffix(suffix.size());
        stripped = true;
      }
    }
  }
  return std::string(vendor);
}

// "16:00.0" for "0000:16:00.0": domain 0 goes without saying in a narrow column.
std::string short_address(const std::string& address) {
  constexpr std::string_view kDomain0 = "0000:";
  return address.compare(0, kDomain0.size(), kDomain0) == 0 ? address.substr(kDomain0.size()) : address;
}

// "2026-11-24T10:00:00Z" for a Unix time in milliseconds.
std::string utc_time(int64_t unix_ms) {
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

// A disk in --disk syntax: "PATH[,ro][,id=ID]" ("vfio-pci=BDF" for a passed-through controller).
std::string disk_spec(const v1::DiskConfig& disk) {
  std::string spec = disk.has_vfio_pci() ? "vfio-pci=" + disk.vfio_pci().bdf() : disk.path();
  if (disk.readonly()) spec += ",ro";
  if (!disk.device_id().empty()) spec += ",id=" + disk.device_id();
  return spec;
}

// A nic in --tap syntax: "NAME[,mac=MAC][,id=ID]" ("vfio-pci=BDF" for a passed-through NIC).
std::string nic_spec(const v1::NetConfig& net) {
  std::string spec = net.has_vfio_pci() ? "vfio-pci=" + net.vfio_pci().bdf() : net.tap().tap_name();
  if (!net.mac_address().empty()) spec += ",mac=" + net.mac_address();
  if (!net.device_id().empty()) spec += ",id=" + net.device_id();
  return spec;
}

// A GPU request in --gpu syntax: "ADDR[,rombar=on|off][,boot-vga]".
std::string gpu_spec(const hostv1::GpuConfig& gpu) {
  std::string spec = gpu.address();
  if (gpu.rombar() == hostv1::ROM_BAR_ON) spec += ",rombar=on";
  if (gpu.rombar() == hostv1::ROM_BAR_OFF) spec += ",rombar=off";
  if (gpu.boot_vga()) spec += ",boot-vga";
  return spec;
}

// "0000:18:00.0 (10de:2330, group 59, was nvidia)"; parts the daemon left empty are left out.
std::string function_text(const hostv1::PassthroughFunction& function) {
  std::string text = function.address() + " (";
  if (!function.id().empty()) text += function.id() + ", ";
  if (!function.iommu_group().empty()) text += "group " + function.iommu_group() + ", ";
  text +=
      function.original_driver().empty() ? "had no driver" : "was " + function.original_driver();
  return text + ")";
}

std::string function_list(
    const google::protobuf::RepeatedPtrField<hostv1::PassthroughFunction>& functions) {
  std::string text;
  for (const hostv1::PassthroughFunction& function : functions) {
    if (!text.empty()) text += ", ";
    text += function_text(function);
  }
  return text;
}

// What the host assigned for one GPU: functions, group peers and fabric (when any), NUMA node.
std::string assigned_text(const hostv1::AssignedGpu& assigned) {
  std::string text = function_list(assigned.functions());
  if (text.empty()) text = "no functions";
  if (!assigned.group_peers().empty()) {
    text += "; group peers: " + function_list(assigned.group_peers());
  }
  if (!assigned.fabric().empty()) text += "; NVSwitch fabric: " + function_list(assigned.fabric());
  text += assigned.numa_node() < 0 ? "; no numa node"
                                   : "; numa node " + std::to_string(assigned.numa_node());
  return text;
}

// Whether two addresses name the same PCI function: "17:00.0" and "0000:17:00.0" do (domain 0 is
// implied), and case is not significant in hex. Text that is not a PCI address names none. Only
// used to pair an assignment with its request when the daemon echoes the address in its
// canonical form; feosd accepts only what pci::Address::parse accepts, so both always parse.
bool same_function(const std::string& a, const std::string& b) {
  auto first = pci::Address::parse(a);
  auto second = pci::Address::parse(b);
  return first && second && *first == *second;
}

// The gpu lines of `vm get`, one per request, plus one per assignment no request claims.
void add_gpu_lines(const v1::VmInfo& vm, std::vector<std::pair<std::string, std::string>>& lines) {
  std::vector<bool> used(static_cast<size_t>(vm.gpus_size()), false);
  auto find_assignment = [&](const std::string& address) -> const hostv1::AssignedGpu* {
    // Exact match first, then the canonical form.
    for (int pass = 0; pass < 2; ++pass) {
      for (int i = 0; i < vm.gpus_size(); ++i) {
        if (used[static_cast<size_t>(i)]) continue;
        const std::string& echoed = vm.gpus(i).request().address();
        bool same = pass == 0 ? echoed == address : same_function(echoed, address);
        if (same) {
          used[static_cast<size_t>(i)] = true;
          return &vm.gpus(i);
        }
      }
    }
    return nullptr;
  };
  for (const hostv1::GpuConfig& gpu : vm.config().gpus()) {
    const hostv1::AssignedGpu* assigned = find_assignment(gpu.address());
    lines.emplace_back(
        "gpu", gpu_spec(gpu) + (assigned ? " -> " + assigned_text(*assigned) : " (not assigned)"));
  }
  for (int i = 0; i < vm.gpus_size(); ++i) {
    if (used[static_cast<size_t>(i)]) continue;
    lines.emplace_back("gpu", gpu_spec(vm.gpus(i).request()) + " -> " + assigned_text(vm.gpus(i)));
  }
}

std::string render_key_values(const std::vector<std::pair<std::string, std::string>>& lines) {
  size_t width = 0;
  for (const auto& [key, value] : lines) width = std::max(width, key.size());
  std::string out;
  for (const auto& [key, value] : lines) {
    out += key + ":" + std::string(width - key.size() + 2, ' ') + value + "\n";
  }
  return out;
}

}  // namespace

std::string state_name(v1::VmState state) {
  if (!v1::VmState_IsValid(state)) return "state-" + std::to_string(static_cast<int>(state));
  std::string name = v1::VmState_Name(state);
  constexpr std::string_view kPrefix = "VM_STATE_";
  if (name.compare(0, kPrefix.size(), kPrefix) == 0) name.erase(0, kPrefix.size());
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

std::string format_age(int64_t created_unix_ms, int64_t now_unix_ms) {
  if (created_unix_ms == 0) return "-";
  int64_t seconds = std::max<int64_t>(0, (now_unix_ms - created_unix_ms) / 1000);
  if (seconds < 120) return std::to_string(seconds) + "s";
  int64_t minutes = seconds / 60;
  if (minutes < 120) return std::to_string(minutes) + "m";
  int64_t hours = minutes / 60;
  if (hours < 48) return std::to_string(hours) + "h";
  return std::to_string(hours / 24) + "d";
}

std::string format_seconds(double seconds) {
  std::string text = std::to_string(seconds);
  // "30.000000" -> "30", "0.500000" -> "0.5"
  text.erase(text.find_last_not_of('0') + 1);
  if (text.back() == '.') text.pop_back();
  return text + " s";
}

std::string truncate(std::string_view text, size_t width) {
  if (text.size() <= width) return std::string(text);
  return std::string(text.substr(0, width - 3)) + "...";
}

std::string format_vm_table(const v1::ListVmsResponse& list, int64_t now_unix_ms) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"ID", "STATE", "VCPUS", "MEMORY", "PID", "REASON", "AGE"});
  for (const v1::VmInfo& vm : list.vms()) {
    // Reasons may carry newlines (hypervisor stderr); a table row must stay one line.
    std::string reason = vm.state_reason();
    std::replace(reason.begin(), reason.end(), '\n', ' ');
    rows.push_back({
        vm.vm_id(),
        state_name(vm.state()),
        std::to_string(vm.config().cpus().boot_vcpus()),
        std::to_string(vm.config().memory().size_mib()) + "MiB",
        vm.pid() == 0 ? "-" : std::to_string(vm.pid()),
        or_dash(truncate(reason, kReasonWidth)),
        format_age(vm.created_unix_ms(), now_unix_ms),
    });
  }
  return render_table(rows);
}

std::string format_vm_details(const v1::VmInfo& vm, int64_t now_unix_ms) {
  const v1::VmConfig& config = vm.config();
  std::vector<std::pair<std::string, std::string>> lines;
  lines.emplace_back("id", vm.vm_id());
  lines.emplace_back("state", state_name(vm.state()));
  lines.emplace_back("reason", or_dash(vm.state_reason()));
  lines.emplace_back("pid", vm.pid() == 0 ? "-" : std::to_string(vm.pid()));
  lines.emplace_back("created", vm.created_unix_ms() == 0
                                    ? "-"
                                    : utc_time(vm.created_unix_ms()) + " (" +
                                          format_age(vm.created_unix_ms(), now_unix_ms) + " ago)");
  std::string vcpus = std::to_string(config.cpus().boot_vcpus());
  if (config.cpus().max_vcpus() != 0) {
    vcpus += " (max " + std::to_string(config.cpus().max_vcpus()) + ")";
  }
  lines.emplace_back("vcpus", vcpus);
  lines.emplace_back("memory", std::to_string(config.memory().size_mib()) + " MiB" +
                                   (config.memory().hugepages() ? ", hugepages" : "") +
                                   (config.memory().hugepage_size() == feosd::v1::HUGEPAGE_SIZE_2M   ? " of 2 MiB"
                                    : config.memory().hugepage_size() == feosd::v1::HUGEPAGE_SIZE_1G ? " of 1 GiB"
                                                                                                   : ""));
  lines.emplace_back("image", or_dash(config.image_ref()));
  // BIOS, the default, is left out like other unset options.
  if (config.firmware().kind() == feosd::v1::FIRMWARE_KIND_UEFI)
    lines.emplace_back("firmware", config.firmware().secure_boot() ? "uefi, secure boot" : "uefi");
  // What was asked by count; the GPUs picked are listed with the others.
  if (config.has_gpu_count()) {
    const auto& by_count = config.gpu_count();
    lines.emplace_back("gpu count",
                       std::to_string(by_count.count()) +
                           (by_count.model().empty() ? "" : " of model \"" + one_line(by_count.model()) + "\"") +
                           (by_count.p2p() ? ", p2p" : ""));
  }
  if (config.has_boot()) {
    lines.emplace_back("kernel", or_dash(config.boot().kernel()));
    if (!config.boot().initramfs().empty())
      lines.emplace_back("initramfs", config.boot().initramfs());
    if (!config.boot().cmdline().empty()) lines.emplace_back("cmdline", config.boot().cmdline());
  }
  for (const v1::DiskConfig& disk : config.disks()) lines.emplace_back("disk", disk_spec(disk));
  for (const v1::NetConfig& net : config.net()) lines.emplace_back("nic", nic_spec(net));
  add_gpu_lines(vm, lines);
  if (config.has_ignition()) {
    lines.emplace_back("ignition", std::to_string(config.ignition().size()) + " bytes");
  }
  return render_key_values(lines);
}

std::string format_ping(const v1::PingVmResponse& ping) {
  std::string features;
  for (const std::string& feature : ping.features()) {
    if (!features.empty()) features += ", ";
    features += feature;
  }
  return render_key_values({
      {"version", or_dash(ping.version())},
      {"build_version", or_dash(ping.build_version())},
      {"pid", ping.pid() == 0 ? "-" : std::to_string(ping.pid())},
      {"features", or_dash(features)},
  });
}

std::string format_bytes(uint64_t bytes) {
  static constexpr std::string_view kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  size_t unit = 0;
  while (unit + 1 < std::size(kUnits) && (bytes >> (10 * (unit + 1))) != 0) ++unit;
  const uint64_t whole = bytes >> (10 * unit);
  const uint64_t rest = bytes - (whole << (10 * unit));
  std::string text = std::to_string(whole);
  if (rest != 0) {
    // One decimal, rounded down so "1.9" never shows as "2.0".
    const uint64_t tenth = unit == 0 ? 0 : (rest >> (10 * unit - 4)) * 10 / 16;
    text += "." + std::to_string(tenth);
  }
  return text + std::string(kUnits[unit]);
}

std::string device_status_text(const hostv1::PciDeviceInfo& device) {
  switch (device.status()) {
    case hostv1::DEVICE_STATUS_AVAILABLE: return "available";
    case hostv1::DEVICE_STATUS_ASSIGNED:
      return device.assigned_vm().empty() ? "assigned"
                                          : "assigned:" + device.assigned_vm().substr(0, 8);
    case hostv1::DEVICE_STATUS_NOT_ASSIGNABLE: return "not-assignable";
    case hostv1::DEVICE_STATUS_UNSPECIFIED: return "unknown";
    default: return "status-" + std::to_string(static_cast<int>(device.status()));
  }
}

namespace {
// "pci0000:15" -> "0000:15": the root bus as lspci writes a bus.
std::string p2p_key(const std::string& domain) {
  return domain.rfind("pci", 0) == 0 ? domain.substr(3) : domain;
}
}  // namespace

std::string format_pci_table(const hostv1::ListPciDevicesResponse& list) {
  std::vector<std::vector<std::string>> rows;
  rows.reserve(static_cast<size_t>(list.devices_size()) + 1);
  // The P2P column only on hosts where GPUs could share a GPUDirect clique (an HGX list fits 130
  // columns without it).
  const bool p2p = std::any_of(list.devices().begin(), list.devices().end(),
                               [](const hostv1::PciDeviceInfo& d) { return d.p2p_clique_peers_size() > 0; });
  rows.push_back({"ADDRESS", "ID", "NAME", "DRIVER", "GROUP", "NUMA", "SWITCH", "P2P", "BAR", "STATUS", "REASON"});
  for (const hostv1::PciDeviceInfo& device : list.devices()) {
    std::string name = short_vendor(device.vendor_name());
    if (!device.device_name().empty()) {
      if (!name.empty()) name += ' ';
      name += device.device_name();
    }
    if (name.empty()) name = device.class_name();
    uint64_t largest_bar = 0;
    for (const hostv1::PciBar& bar : device.bars()) largest_bar = std::max(largest_bar, bar.size());
    rows.push_back({
        device.address(),
        device.vendor_id().empty() && device.device_id().empty()
            ? "-"
            : device.vendor_id() + ":" + device.device_id(),
        or_dash(truncate(one_line(std::move(name)), kDeviceNameWidth)),
        or_dash(device.driver()),
        or_dash(device.iommu_group()),
        device.numa_node() < 0 ? "-" : std::to_string(device.numa_node()),
        or_dash(short_address(device.switch_upstream())),
        // The GPUs that can share a GPUDirect clique show the same key (their root bus).
        device.p2p_clique_peers_size() == 0 ? "-" : p2p_key(device.p2p_domain()),
        largest_bar == 0 ? "-" : format_bytes(largest_bar),
        device_status_text(device),
        or_dash(truncate(one_line(device.reason()), kReasonWidth)),
    });
  }
  if (!p2p)
    for (auto& row : rows) row.erase(row.begin() + 7);
  return render_table(rows);
}

std::string format_host_check(const hostv1::CheckHostResponse& check) {
  std::vector<std::vector<std::string>> rows;
  size_t problems = 0;
  for (const hostv1::HostCheckItem& item : check.items()) {
    if (!item.ok()) ++problems;
    rows.push_back({item.ok() ? "OK" : "FAIL", or_dash(one_line(item.name())),
                    or_dash(one_line(item.detail()))});
  }
  std::string out = render_table(rows);
  out += check.ready() ? "host ready for GPU passthrough\n"
                       : "host NOT ready: " + std::to_string(problems) + " problem(s)\n";
  return out;
}

std::optional<v1::VmStateChangedEvent> state_change_of(const v1::VmEvent& event) {
  v1::VmStateChangedEvent change;
  if (!event.has_data() || !event.data().Is<v1::VmStateChangedEvent>()) return std::nullopt;
  if (!event.data().UnpackTo(&change)) return std::nullopt;
  return change;
}

std::string format_event_line(const v1::VmEvent& event) {
  std::string line = or_dash(event.id()) + " " + or_dash(event.vm_id()) + " ";
  if (auto change = state_change_of(event)) {
    line += state_name(change->new_state());
    std::string reason = change->reason();
    std::replace(reason.begin(), reason.end(), '\n', ' ');
    if (!reason.empty()) line += " " + reason;
  } else {
    line += or_dash(event.component_id()) + " " + or_dash(event.data().type_url());
  }
  return line;
}

std::string grpc_code_name(int code) {
  if (std::optional<Code> known = code_from_number(code)) return std::string(code_name(*known));
  return "CODE_" + std::to_string(code);
}

std::string error_line(std::string_view code_name, std::string_view message) {
  std::string line = "feosctl: error: " + std::string(code_name) + ": " + std::string(message);
  std::replace(line.begin(), line.end(), '\n', ' ');
  std::replace(line.begin(), line.end(), '\r', ' ');
  return line;
}

}  // namespace feos::cli
