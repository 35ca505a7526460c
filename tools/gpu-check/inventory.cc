#include "gpu-check/inventory.h"

#include <cctype>

#include "gpu-check/run_command.h"
#include "sys/host_paths.h"

namespace feos::gpucheck {

bool is_emulated_display(uint16_t vendor, uint16_t device) {
  struct Id {
    uint16_t vendor, device;
  };
  static constexpr Id kEmulated[] = {
      {0x1234, 0x1111},  // QEMU standard VGA (bochs-display)
      {0x1b36, 0x0100},  // QXL
      {0x1af4, 0x1050},  // virtio-gpu
      {0x1013, 0x00b8},  // Cirrus GD 5446 (QEMU -vga cirrus)
      {0x15ad, 0x0405},  // VMware SVGA II
      {0x1414, 0x5353},  // Hyper-V synthetic video
  };
  for (const auto& id : kEmulated)
    if (id.vendor == vendor && id.device == device) return true;
  return false;
}

void collect_pci(const pci::PciSysfs& pci, const pci::PciIds& ids, Report& report) {
  report.sysfs_root = pci.paths().sysfs_root;
  auto list = pci.list();
  if (!list) {
    report.pci_error = list.error().to_string();
    return;
  }
  report.pci_ok = true;
  report.pci_functions = list->size();
  for (const auto& address : *list) {
    auto d = pci.read(address);
    if (!d) {
      // One unreadable function must not hide the others; it is reported (and fails the run).
      report.read_errors.push_back(address.to_string() + ": " + d.error().to_string());
      continue;
    }
    if (!d->is_display()) continue;
    GpuFunction g;
    g.device = std::move(*d);
    const auto& dev = g.device;
    g.vendor_name = std::string(ids.vendor(dev.vendor_id).value_or(""));
    g.device_name = std::string(ids.device(dev.vendor_id, dev.device_id).value_or(""));
    g.subsystem_name = std::string(
        ids.subsystem(dev.vendor_id, dev.device_id, dev.subsystem_vendor_id, dev.subsystem_device_id).value_or(""));
    g.class_name = std::string(ids.class_name(dev.class_code).value_or(""));
    if (is_emulated_display(dev.vendor_id, dev.device_id)) report.emulated.push_back(std::move(g));
    else report.gpus.push_back(std::move(g));
  }
}

std::string parse_nvidia_version(const std::string& text) {
  std::string first = text.substr(0, text.find('\n'));
  // The first token of the form N.N or N.N.N (digits and dots, at least one dot).
  size_t i = 0;
  while (i < first.size()) {
    while (i < first.size() && first[i] == ' ') ++i;
    size_t start = i;
    while (i < first.size() && first[i] != ' ') ++i;
    std::string token = first.substr(start, i - start);
    bool digits_and_dots = !token.empty() && std::isdigit(static_cast<unsigned char>(token[0]));
    int dots = 0;
    for (char c : token) {
      if (c == '.') ++dots;
      else if (!std::isdigit(static_cast<unsigned char>(c))) digits_and_dots = false;
    }
    if (digits_and_dots && dots >= 1 && token.back() != '.') return token;
  }
  return {};
}

NvidiaDriver read_nvidia_driver(const sys::Filesystem& fs, const std::string& proc_root) {
  NvidiaDriver d;
  d.path = sys::HostPaths{.proc_root = proc_root}.nvidia_driver_version();
  auto text = fs.read_file(d.path);
  if (!text) {
    d.error = text.error().code == Code::kNotFound ? d.path + " not found (NVIDIA kernel module not loaded)"
                                                    : text.error().to_string();
    return d;
  }
  d.found = true;
  d.line = sys::trim(text->substr(0, text->find('\n')));
  d.version = parse_nvidia_version(*text);
  if (d.version.empty()) d.error = "no version number in " + d.path;
  return d;
}

const std::vector<std::string>& nvidia_smi_fields() {
  static const std::vector<std::string> fields = {
      "index",           "pci.bus_id",          "name",
      "driver_version",  "vbios_version",       "memory.total",
      "pcie.link.gen.current", "pcie.link.width.current", "pcie.link.gen.max",
      "pcie.link.width.max",   "temperature.gpu",  "power.draw"};
  return fields;
}

bool parse_nvidia_smi_csv(const std::string& text, NvidiaSmi& smi) {
  smi.rows.clear();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = sys::trim(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    pos = nl == std::string::npos ? text.size() : nl + 1;
    if (line.empty()) continue;
    std::vector<std::string> values;
    size_t start = 0;
    for (;;) {
      size_t comma = line.find(',', start);
      values.push_back(sys::trim(line.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (values.size() != smi.fields.size()) {
      smi.error = "nvidia-smi printed " + std::to_string(values.size()) + " values, expected " +
                  std::to_string(smi.fields.size()) + ": " + line;
      smi.rows.clear();
      return false;
    }
    smi.rows.push_back(std::move(values));
  }
  return true;
}

NvidiaSmi query_nvidia_smi(const std::string& program) {
  NvidiaSmi smi;
  smi.requested = true;
  smi.program = program;
  smi.fields = nvidia_smi_fields();
  std::string query = "--query-gpu=";
  for (size_t i = 0; i < smi.fields.size(); ++i) query += (i ? "," : "") + smi.fields[i];
  CommandResult r = run_command({program, query, "--format=csv,noheader"}, 30000);
  smi.ran = r.started;
  if (!r.succeeded()) {
    smi.error = r.error;
    std::string err = sys::trim(r.err.empty() ? r.out : r.err);
    if (!err.empty()) smi.error += ": " + err.substr(0, 500);
    return smi;
  }
  smi.ok = parse_nvidia_smi_csv(r.out, smi);
  return smi;
}

}  // namespace feos::gpucheck
