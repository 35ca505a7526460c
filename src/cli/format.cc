#include "cli/format.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <nlohmann/json.hpp>
#include <vector>

namespace feos::cli {
namespace {

constexpr size_t kReasonWidth = 40;

// Left-aligned columns separated by three spaces; the last column is not padded.
std::string render_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out += std::string(widths[i] - row[i].size() + 3, ' ');
    }
    out += '\n';
  }
  return out;
}

std::string or_dash(const std::string& text) { return text.empty() ? "-" : text; }

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
                                   (config.memory().hugepages() ? ", hugepages" : ""));
  lines.emplace_back("image", or_dash(config.image_ref()));
  if (config.has_boot()) {
    lines.emplace_back("kernel", or_dash(config.boot().kernel()));
    if (!config.boot().initramfs().empty())
      lines.emplace_back("initramfs", config.boot().initramfs());
    if (!config.boot().cmdline().empty()) lines.emplace_back("cmdline", config.boot().cmdline());
  }
  for (const v1::DiskConfig& disk : config.disks()) lines.emplace_back("disk", disk_spec(disk));
  for (const v1::NetConfig& net : config.net()) lines.emplace_back("nic", nic_spec(net));
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

Result<std::string> to_json(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  auto status = google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok()) {
    return fail(Code::kInternal, "cannot render " + message.GetTypeName() +
                                     " as JSON: " + status.message().ToString());
  }
  // Re-dumped through nlohmann so every output has the same layout (protobuf's whitespace mode
  // differs) and is checked to be valid JSON.
  // ordered_json keeps protobuf's field order (declaration order) instead of sorting keys.
  auto json = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return fail(Code::kInternal, "protobuf produced invalid JSON for " + message.GetTypeName());
  }
  return json.dump(pretty ? 2 : -1, ' ', /*ensure_ascii=*/false,
                   nlohmann::ordered_json::error_handler_t::replace);
}

std::string event_to_json(const v1::VmEvent& event) {
  if (auto json = to_json(event, /*pretty=*/false)) return *json;
  v1::VmEvent without_data = event;
  without_data.clear_data();
  // Rendering a VmEvent without an Any cannot fail: all its other fields are plain.
  auto json = nlohmann::ordered_json::parse(to_json(without_data, false).value());
  json["data"] = {{"@type", event.data().type_url()}};
  return json.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string grpc_code_name(int code) {
  static constexpr std::string_view kNames[] = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  if (code < 0 || code >= static_cast<int>(std::size(kNames)))
    return "CODE_" + std::to_string(code);
  return std::string(kNames[code]);
}

std::string error_line(std::string_view code_name, std::string_view message) {
  std::string line = "feosctl: error: " + std::string(code_name) + ": " + std::string(message);
  std::replace(line.begin(), line.end(), '\n', ' ');
  std::replace(line.begin(), line.end(), '\r', ' ');
  return line;
}

}  // namespace feos::cli
