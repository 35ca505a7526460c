#include "gpu-check/report.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>

#include "pci/resource.h"

namespace feos::gpucheck {
namespace {

// Keys in the order they are written, as the report documents them.
using Json = nlohmann::ordered_json;

// The report's convention for what is not known: null rather than "".
Json string_or_null(const std::string& text) { return text.empty() ? Json(nullptr) : Json(text); }

// Measured figures keep six significant digits, as the report has always printed them: the
// digits after that are noise of the measurement, not information. Non-finite values stay as they
// are (written as null).
double six_digits(double value) {
  if (!std::isfinite(value)) return value;
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return std::strtod(text, nullptr);
}

std::string fmt(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

std::string gbps(const Bandwidth& bw) {
  return bw.measured ? fmt("%.1f GB/s", bw.gbps) : "not measured (" + bw.error + ")";
}

pci::Address cuda_address(const CudaDevice& d) {
  return pci::Address(static_cast<uint16_t>(d.pci_domain), static_cast<uint8_t>(d.pci_bus),
                      static_cast<uint8_t>(d.pci_device & 0x1f), 0);
}

const CudaDevice* cuda_device_at(const CudaReport& cuda, const pci::Address& a) {
  for (const auto& d : cuda.devices)
    if (d.name.size() && cuda_address(d) == a.with_function(0)) return &d;
  return nullptr;
}

std::string address_list(const std::vector<GpuFunction>& gpus) {
  std::string out;
  for (const auto& g : gpus) out += (out.empty() ? "" : ", ") + g.device.address.to_string();
  return out;
}

std::string full_name(const GpuFunction& g) {
  std::string name = g.vendor_name;
  if (!g.device_name.empty()) name += (name.empty() ? "" : " ") + g.device_name;
  return name.empty() ? "(name unknown)" : name;
}

std::string yes_no(bool b) { return b ? "yes" : "no"; }

std::string cuda_state_text(const Report& r) {
  switch (r.cuda_state) {
    case CudaState::kNotBuilt: return "not built with CUDA";
    case CudaState::kSkipped: return "skipped (--no-cuda)";
    case CudaState::kRan: return "ran";
  }
  return "";
}

}  // namespace

std::string cuda_version_string(int version) {
  if (version <= 0) return "none";
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

std::vector<Check> evaluate(const Report& r, const Options& o) {
  std::vector<Check> checks;
  auto add = [&](std::string name, bool pass, std::string detail) {
    checks.push_back(Check{std::move(name), pass, std::move(detail)});
  };

  if (!r.pci_ok) add("pci", false, "cannot list PCI functions under " + r.sysfs_root + ": " + r.pci_error);
  for (const auto& e : r.read_errors) add("pci-read", false, e);

  if (o.expect_gpus) {
    std::string found = "found " + std::to_string(r.gpus.size()) + " GPU(s)";
    if (!r.gpus.empty()) found += " (" + address_list(r.gpus) + ")";
    add("expect-gpus", static_cast<int>(r.gpus.size()) == *o.expect_gpus,
        found + ", expected " + std::to_string(*o.expect_gpus));
  }

  for (const auto& id : o.expect_ids) {
    std::string at;
    for (const auto& g : r.gpus)
      if (g.device.vendor_id == id.vendor && g.device.device_id == id.device)
        at += (at.empty() ? "" : ", ") + g.device.address.to_string();
    add("expect-id " + id.to_string(), !at.empty(),
        at.empty() ? "no GPU with id " + id.to_string() : "present at " + at);
  }
  if (!o.expect_ids.empty()) {
    for (const auto& g : r.gpus) {
      bool listed = false;
      for (const auto& id : o.expect_ids) listed |= g.device.vendor_id == id.vendor && g.device.device_id == id.device;
      if (!listed)
        add("expect-id " + g.device.address.to_string(), false,
            "GPU " + g.device.address.to_string() + " has id " + g.device.id() + ", not one of the expected ids");
    }
  }

  if (o.expect_driver) {
    if (r.gpus.empty()) add("expect-driver", false, "no GPU found to be bound to " + *o.expect_driver);
    for (const auto& g : r.gpus) {
      const std::string& drv = g.device.driver;
      add("expect-driver " + g.device.address.to_string(), drv == *o.expect_driver,
          (drv.empty() ? std::string("no driver bound") : "driver " + drv + " bound") + ", expected " +
              *o.expect_driver);
    }
  }

  if (r.cuda_state == CudaState::kRan) {
    std::vector<const GpuFunction*> nvidia;
    for (const auto& g : r.gpus)
      if (g.device.vendor_id == kVendorNvidia) nvidia.push_back(&g);
    if (!nvidia.empty() && !r.cuda.error.empty()) add("cuda", false, r.cuda.error);
    for (const GpuFunction* g : nvidia) {
      const std::string bdf = g->device.address.to_string();
      const CudaDevice* d = cuda_device_at(r.cuda, g->device.address);
      if (!d) {
        if (r.cuda.error.empty())
          add("cuda-visible " + bdf, false,
              "no CUDA device at this address (CUDA sees " + std::to_string(r.cuda.device_count) + " device(s))");
        continue;
      }
      add("cuda-visible " + bdf, true, "CUDA device " + std::to_string(d->index) + " (" + d->name + ")");
      if (!d->vector_add_ran || (!d->vector_add_ok && d->vector_mismatches == 0)) {
        add("cuda-vector-add " + bdf, false, d->error.empty() ? "did not run" : d->error);
      } else {
        add("cuda-vector-add " + bdf, d->vector_add_ok,
            std::to_string(d->vector_elements) + " floats, " + std::to_string(d->vector_mismatches) +
                " wrong sums");
      }
      bool measured = d->host_to_device.measured && d->device_to_host.measured && d->device_to_device.measured;
      add("cuda-bandwidth " + bdf, measured,
          measured ? "host->device " + gbps(d->host_to_device) + ", device->host " + gbps(d->device_to_host) +
                         ", device->device " + gbps(d->device_to_device)
                   : (d->error.empty() ? "not measured" : d->error));
    }
    for (const auto& p : r.cuda.peers) {
      std::string name = "p2p-copy " + std::to_string(p.from) + "->" + std::to_string(p.to);
      if (!p.copy.measured) {
        add(name, false, p.error.empty() ? "copy not measured" : p.error);
      } else {
        add(name, p.verified,
            fmt("%.1f GB/s", p.copy.gbps) + (p.peer_enabled ? ", peer access" : ", staged through the host") +
                (p.verified ? ", data verified" : ", " + std::to_string(p.mismatched_words) + " words wrong"));
      }
    }
  }

  if (o.expect_p2p) {
    if (r.cuda_state != CudaState::kRan) {
      add("expect-p2p", false, "CUDA checks did not run (" + cuda_state_text(r) + ")");
    } else if (r.cuda.device_count < 2) {
      add("expect-p2p", false, "needs at least 2 CUDA devices, found " + std::to_string(r.cuda.device_count));
    } else {
      for (const auto& p : r.cuda.peers)
        add("expect-p2p " + std::to_string(p.from) + "->" + std::to_string(p.to), p.can_access && p.peer_enabled,
            !p.can_access ? "cudaDeviceCanAccessPeer says no"
                          : (p.peer_enabled ? "peer access enabled" : "enable failed: " + p.enable_error));
    }
  }
  return checks;
}

bool all_pass(const std::vector<Check>& checks) {
  for (const auto& c : checks)
    if (!c.pass) return false;
  return true;
}

std::string render_text(const Report& r, const std::vector<Check>& checks) {
  std::string out;
  auto line = [&](const std::string& s) { out += s + "\n"; };
  line(std::string("feos-gpu-check ") + kToolVersion + " (CUDA: " +
       (r.cuda_state == CudaState::kNotBuilt ? "not built in" : "built in") + ")");

  if (!r.pci_ok) {
    line("PCI (sysfs " + r.sysfs_root + "): " + r.pci_error);
  } else {
    line("PCI (sysfs " + r.sysfs_root + "): " + std::to_string(r.pci_functions) + " functions, " +
         std::to_string(r.gpus.size()) + " GPU(s)" +
         (r.pci_ids_path.empty() ? " [no names: " + r.pci_ids_error + "]" : ""));
  }
  auto describe = [&](const GpuFunction& g) {
    const pci::Device& d = g.device;
    line("  " + d.address.to_string() + "  " + d.id() + "  " + full_name(g));
    char rev[8] = "";
    if (d.revision) std::snprintf(rev, sizeof rev, "%02x", *d.revision);
    line("      class " + d.class_string() + (g.class_name.empty() ? "" : " (" + g.class_name + ")") +
         ", subsystem " + d.subsystem_id() + (g.subsystem_name.empty() ? "" : " (" + g.subsystem_name + ")") +
         (d.revision ? std::string(", rev ") + rev : ""));
    std::string resets;
    for (const auto& m : d.reset_methods) resets += (resets.empty() ? "" : " ") + m;
    line("      driver " + (d.driver.empty() ? std::string("(none)") : d.driver) + ", IOMMU group " +
         (d.iommu_group ? d.iommu_group->to_string() : std::string("(none)")) + ", NUMA node " + std::to_string(d.numa_node) + ", reset " +
         (resets.empty() ? "(none)" : resets) + (d.boot_vga && *d.boot_vga ? ", boot VGA" : ""));
    if (d.current_link)
      line("      link " + d.current_link->to_string() + (d.max_link ? " (max " + d.max_link->to_string() + ")" : ""));
    for (const auto& b : d.present_bars()) {
      char start[32];
      std::snprintf(start, sizeof start, "0x%llx", static_cast<unsigned long long>(b.start));
      line("      BAR" + std::to_string(b.index) + " " + pci::format_bytes(b.size()) + " at " + start + ", " +
           (b.is_io() ? "I/O" : std::string(b.is_64bit() ? "64-bit" : "32-bit") +
                                    (b.is_prefetchable() ? " prefetchable" : " non-prefetchable")));
    }
    auto totals = pci::bar_totals(d.bars);
    if (totals.mem64_prefetchable) line("      64-bit prefetchable MMIO: " + pci::format_bytes(totals.mem64_prefetchable));
  };
  for (const auto& g : r.gpus) describe(g);
  if (!r.emulated.empty()) {
    line("  emulated display adapters (not counted as GPUs):");
    for (const auto& g : r.emulated) describe(g);
  }
  for (const auto& e : r.read_errors) line("  unreadable: " + e);

  if (r.nvidia_driver.found)
    line("NVIDIA driver: " + (r.nvidia_driver.version.empty() ? "(version unknown)" : r.nvidia_driver.version) +
         " (" + r.nvidia_driver.line + ")");
  else
    line("NVIDIA driver: " + r.nvidia_driver.error);

  if (!r.nvidia_smi.requested) {
    line("nvidia-smi: not run (--no-nvidia-smi)");
  } else if (!r.nvidia_smi.ok) {
    line("nvidia-smi: " + (r.nvidia_smi.ran ? std::string("failed: ") : std::string("not available: ")) +
         r.nvidia_smi.error);
  } else {
    line("nvidia-smi: " + std::to_string(r.nvidia_smi.rows.size()) + " GPU(s)");
    for (const auto& row : r.nvidia_smi.rows) {
      std::string s;
      for (size_t i = 0; i < row.size(); ++i) s += (i ? ", " : "") + r.nvidia_smi.fields[i] + "=" + row[i];
      line("  " + s);
    }
  }

  if (r.cuda_state != CudaState::kRan) {
    line("CUDA: " + cuda_state_text(r));
  } else {
    line("CUDA: driver " + cuda_version_string(r.cuda.driver_version) + ", runtime " +
         cuda_version_string(r.cuda.runtime_version) + ", " + std::to_string(r.cuda.device_count) + " device(s)" +
         (r.cuda.error.empty() ? "" : ": " + r.cuda.error));
    for (const auto& d : r.cuda.devices) {
      line("  [" + std::to_string(d.index) + "] " + (d.name.empty() ? "(unknown)" : d.name) + " at " +
           cuda_address(d).to_string() + ", sm_" + std::to_string(d.cc_major) + std::to_string(d.cc_minor) + ", " +
           std::to_string(d.multiprocessors) + " SMs, " + pci::format_bytes(d.total_memory) + ", L2 " +
           pci::format_bytes(static_cast<uint64_t>(d.l2_cache_bytes)) + ", " + std::to_string(d.memory_bus_width) +
           "-bit memory bus, ECC " + (d.ecc_enabled ? "on" : "off"));
      if (d.vector_add_ran && (d.vector_add_ok || d.vector_mismatches))
        line("      vector add: " + std::to_string(d.vector_elements) + " floats in " + fmt("%.3f ms", d.vector_add_ms) +
             ", " + std::to_string(d.vector_mismatches) + " wrong sums: " + (d.vector_add_ok ? "OK" : "WRONG"));
      if (d.host_to_device.measured || d.device_to_host.measured || d.device_to_device.measured)
        line("      copies of " + pci::format_bytes(d.host_to_device.bytes) + " x " +
             std::to_string(d.host_to_device.repetitions) + ": host->device " + gbps(d.host_to_device) +
             ", device->host " + gbps(d.device_to_host) + ", device->device " + gbps(d.device_to_device));
      if (!d.error.empty()) line("      error: " + d.error);
    }
    if (!r.cuda.peers.empty()) {
      line("Peer-to-peer (cudaDeviceCanAccessPeer, cudaMemcpyPeerAsync):");
      for (const auto& p : r.cuda.peers) {
        std::string s = "  " + std::to_string(p.from) + " -> " + std::to_string(p.to) + ": can access peer " +
                        yes_no(p.can_access);
        if (p.can_access) s += p.peer_enabled ? ", peer access enabled" : ", enable failed: " + p.enable_error;
        if (p.copy.measured)
          s += ", copy " + fmt("%.1f GB/s", p.copy.gbps) + (p.peer_enabled ? "" : " (staged through the host)") +
               (p.verified ? ", data verified" : ", " + std::to_string(p.mismatched_words) + " words wrong");
        if (!p.error.empty()) s += ", error: " + p.error;
        line(s);
      }
    }
  }

  line("Checks:");
  if (checks.empty()) line("  (no expectations given and nothing to check)");
  size_t failed = 0;
  for (const auto& c : checks) {
    line(std::string(c.pass ? "  PASS " : "FAIL ") + c.name + ": " + c.detail);
    failed += !c.pass;
  }
  line(failed ? "RESULT: FAIL (" + std::to_string(failed) + " of " + std::to_string(checks.size()) + " checks failed)"
              : "RESULT: PASS (" + std::to_string(checks.size()) + " checks)");
  return out;
}

std::string render_json(const Report& r, const std::vector<Check>& checks) {
  auto link = [](const std::optional<pci::Link>& l) {
    if (!l) return Json(nullptr);
    return Json{{"speed", l->speed}, {"gts", six_digits(l->gts)}, {"width", l->width}};
  };
  auto bandwidth = [](const Bandwidth& b) {
    return Json{{"measured", b.measured},
                {"gbps", six_digits(b.gbps)},
                {"bytes", b.bytes},
                {"repetitions", b.repetitions},
                {"error", string_or_null(b.error)}};
  };
  auto gpu = [&](const GpuFunction& g) {
    const pci::Device& d = g.device;
    Json bars = Json::array();
    for (const auto& b : d.present_bars()) {
      char start[32];
      std::snprintf(start, sizeof start, "0x%llx", static_cast<unsigned long long>(b.start));
      bars.push_back({{"index", b.index},
                      {"start", start},
                      {"size", b.size()},
                      {"size_text", pci::format_bytes(b.size())},
                      {"type", b.is_io() ? "io" : "mem"},
                      {"is_64bit", b.is_64bit()},
                      {"prefetchable", b.is_prefetchable()}});
    }
    return Json{{"address", d.address.to_string()},
                {"id", d.id()},
                {"vendor_name", string_or_null(g.vendor_name)},
                {"device_name", string_or_null(g.device_name)},
                {"subsystem_id", d.subsystem_id()},
                {"subsystem_name", string_or_null(g.subsystem_name)},
                {"class", d.class_string()},
                {"class_name", string_or_null(g.class_name)},
                {"driver", string_or_null(d.driver)},
                {"iommu_group", string_or_null(d.iommu_group ? d.iommu_group->to_string() : std::string())},
                {"numa_node", d.numa_node},
                {"boot_vga", d.boot_vga ? Json(*d.boot_vga) : Json(nullptr)},
                {"reset_methods", d.reset_methods},
                {"current_link", link(d.current_link)},
                {"max_link", link(d.max_link)},
                {"bars", std::move(bars)},
                {"mmio64_prefetchable_bytes", pci::bar_totals(d.bars).mem64_prefetchable}};
  };
  auto gpu_list = [&](const std::vector<GpuFunction>& gpus) {
    Json list = Json::array();
    for (const auto& g : gpus) list.push_back(gpu(g));
    return list;
  };

  Json smi_rows = Json::array();
  for (const auto& row : r.nvidia_smi.rows) {
    Json values = Json::object();
    for (size_t i = 0; i < row.size(); ++i) values[r.nvidia_smi.fields[i]] = row[i];
    smi_rows.push_back(std::move(values));
  }

  Json cuda_devices = Json::array();
  for (const auto& d : r.cuda.devices) {
    cuda_devices.push_back(
        {{"index", d.index},
         {"name", d.name},
         {"pci_address", cuda_address(d).to_string()},
         {"compute_capability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor)},
         {"multiprocessors", d.multiprocessors},
         {"total_memory", d.total_memory},
         {"l2_cache_bytes", d.l2_cache_bytes},
         {"memory_bus_width", d.memory_bus_width},
         {"ecc_enabled", d.ecc_enabled},
         {"vector_add",
          {{"ran", d.vector_add_ran},
           {"ok", d.vector_add_ok},
           {"elements", d.vector_elements},
           {"mismatches", d.vector_mismatches},
           {"ms", six_digits(d.vector_add_ms)}}},
         {"host_to_device", bandwidth(d.host_to_device)},
         {"device_to_host", bandwidth(d.device_to_host)},
         {"device_to_device", bandwidth(d.device_to_device)},
         {"error", string_or_null(d.error)}});
  }
  Json peers = Json::array();
  for (const auto& p : r.cuda.peers) {
    peers.push_back({{"from", p.from},
                     {"to", p.to},
                     {"can_access", p.can_access},
                     {"peer_enabled", p.peer_enabled},
                     {"enable_error", string_or_null(p.enable_error)},
                     {"copy", bandwidth(p.copy)},
                     {"verified", p.verified},
                     {"mismatched_words", p.mismatched_words},
                     {"error", string_or_null(p.error)}});
  }
  Json check_list = Json::array();
  for (const auto& c : checks) {
    check_list.push_back({{"name", c.name}, {"pass", c.pass}, {"detail", c.detail}});
  }

  const Json report = {
      {"tool", "feos-gpu-check"},
      {"version", kToolVersion},
      {"cuda_built", r.cuda_state != CudaState::kNotBuilt},
      {"pci",
       {{"sysfs_root", r.sysfs_root},
        {"ok", r.pci_ok},
        {"error", string_or_null(r.pci_error)},
        {"functions", r.pci_functions},
        {"pci_ids", string_or_null(r.pci_ids_path)},
        {"gpus", gpu_list(r.gpus)},
        {"emulated_displays", gpu_list(r.emulated)},
        {"read_errors", r.read_errors}}},
      {"nvidia_driver",
       {{"path", r.nvidia_driver.path},
        {"found", r.nvidia_driver.found},
        {"version", string_or_null(r.nvidia_driver.version)},
        {"line", string_or_null(r.nvidia_driver.line)},
        {"error", string_or_null(r.nvidia_driver.error)}}},
      {"nvidia_smi",
       {{"requested", r.nvidia_smi.requested},
        {"program", string_or_null(r.nvidia_smi.program)},
        {"ran", r.nvidia_smi.ran},
        {"ok", r.nvidia_smi.ok},
        {"error", string_or_null(r.nvidia_smi.error)},
        {"gpus", std::move(smi_rows)}}},
      {"cuda",
       {{"state", r.cuda_state == CudaState::kRan       ? "ran"
                  : r.cuda_state == CudaState::kSkipped ? "skipped"
                                                        : "not_built"},
        {"driver_version", cuda_version_string(r.cuda.driver_version)},
        {"runtime_version", cuda_version_string(r.cuda.runtime_version)},
        {"device_count", r.cuda.device_count},
        {"error", string_or_null(r.cuda.error)},
        {"devices", std::move(cuda_devices)},
        {"peers", std::move(peers)}}},
      {"checks", std::move(check_list)},
      {"result", all_pass(checks) ? "PASS" : "FAIL"},
  };
  // Text from the guest (names, nvidia-smi output) may be invalid UTF-8: replaced by U+FFFD, never
  // a failure to report.
  return report.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace feos::gpucheck
