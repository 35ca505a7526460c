#include "gpu-check/report.h"

#include <cstdio>
#include <optional>

#include "gpu-check/json_writer.h"
#include "pci/resource.h"

namespace feos::gpucheck {
namespace {

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
         d.iommu_group.value_or("(none)") + ", NUMA node " + std::to_string(d.numa_node) + ", reset " +
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
  JsonWriter w;
  auto link = [&](const std::optional<pci::Link>& l) {
    if (!l) {
      w.null();
      return;
    }
    w.begin_object().key("speed").value(l->speed).key("gts").value(l->gts).key("width").value(l->width).end_object();
  };
  auto bandwidth = [&](const Bandwidth& b) {
    w.begin_object()
        .key("measured").value(b.measured)
        .key("gbps").value(b.gbps)
        .key("bytes").value(b.bytes)
        .key("repetitions").value(b.repetitions)
        .key("error").string_or_null(b.error)
        .end_object();
  };
  auto gpu = [&](const GpuFunction& g) {
    const pci::Device& d = g.device;
    w.begin_object()
        .key("address").value(d.address.to_string())
        .key("id").value(d.id())
        .key("vendor_name").string_or_null(g.vendor_name)
        .key("device_name").string_or_null(g.device_name)
        .key("subsystem_id").value(d.subsystem_id())
        .key("subsystem_name").string_or_null(g.subsystem_name)
        .key("class").value(d.class_string())
        .key("class_name").string_or_null(g.class_name)
        .key("driver").string_or_null(d.driver)
        .key("iommu_group").string_or_null(d.iommu_group.value_or(""))
        .key("numa_node").value(d.numa_node);
    w.key("boot_vga");
    if (d.boot_vga) w.value(*d.boot_vga);
    else w.null();
    w.key("reset_methods").begin_array();
    for (const auto& m : d.reset_methods) w.value(m);
    w.end_array();
    w.key("current_link");
    link(d.current_link);
    w.key("max_link");
    link(d.max_link);
    w.key("bars").begin_array();
    for (const auto& b : d.present_bars()) {
      char start[32];
      std::snprintf(start, sizeof start, "0x%llx", static_cast<unsigned long long>(b.start));
      w.begin_object()
          .key("index").value(b.index)
          .key("start").value(start)
          .key("size").value(b.size())
          .key("size_text").value(pci::format_bytes(b.size()))
          .key("type").value(b.is_io() ? "io" : "mem")
          .key("is_64bit").value(b.is_64bit())
          .key("prefetchable").value(b.is_prefetchable())
          .end_object();
    }
    w.end_array();
    w.key("mmio64_prefetchable_bytes").value(pci::bar_totals(d.bars).mem64_prefetchable);
    w.end_object();
  };

  w.begin_object();
  w.key("tool").value("feos-gpu-check").key("version").value(kToolVersion);
  w.key("cuda_built").value(r.cuda_state != CudaState::kNotBuilt);

  w.key("pci").begin_object();
  w.key("sysfs_root").value(r.sysfs_root);
  w.key("ok").value(r.pci_ok);
  w.key("error").string_or_null(r.pci_error);
  w.key("functions").value(static_cast<uint64_t>(r.pci_functions));
  w.key("pci_ids").string_or_null(r.pci_ids_path);
  w.key("gpus").begin_array();
  for (const auto& g : r.gpus) gpu(g);
  w.end_array();
  w.key("emulated_displays").begin_array();
  for (const auto& g : r.emulated) gpu(g);
  w.end_array();
  w.key("read_errors").begin_array();
  for (const auto& e : r.read_errors) w.value(e);
  w.end_array();
  w.end_object();

  w.key("nvidia_driver").begin_object()
      .key("path").value(r.nvidia_driver.path)
      .key("found").value(r.nvidia_driver.found)
      .key("version").string_or_null(r.nvidia_driver.version)
      .key("line").string_or_null(r.nvidia_driver.line)
      .key("error").string_or_null(r.nvidia_driver.error)
      .end_object();

  w.key("nvidia_smi").begin_object()
      .key("requested").value(r.nvidia_smi.requested)
      .key("program").string_or_null(r.nvidia_smi.program)
      .key("ran").value(r.nvidia_smi.ran)
      .key("ok").value(r.nvidia_smi.ok)
      .key("error").string_or_null(r.nvidia_smi.error);
  w.key("gpus").begin_array();
  for (const auto& row : r.nvidia_smi.rows) {
    w.begin_object();
    for (size_t i = 0; i < row.size(); ++i) w.key(r.nvidia_smi.fields[i]).value(row[i]);
    w.end_object();
  }
  w.end_array().end_object();

  w.key("cuda").begin_object();
  w.key("state").value(r.cuda_state == CudaState::kRan ? "ran"
                       : r.cuda_state == CudaState::kSkipped ? "skipped" : "not_built");
  w.key("driver_version").value(cuda_version_string(r.cuda.driver_version));
  w.key("runtime_version").value(cuda_version_string(r.cuda.runtime_version));
  w.key("device_count").value(r.cuda.device_count);
  w.key("error").string_or_null(r.cuda.error);
  w.key("devices").begin_array();
  for (const auto& d : r.cuda.devices) {
    w.begin_object()
        .key("index").value(d.index)
        .key("name").value(d.name)
        .key("pci_address").value(cuda_address(d).to_string())
        .key("compute_capability").value(std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor))
        .key("multiprocessors").value(d.multiprocessors)
        .key("total_memory").value(d.total_memory)
        .key("l2_cache_bytes").value(d.l2_cache_bytes)
        .key("memory_bus_width").value(d.memory_bus_width)
        .key("ecc_enabled").value(d.ecc_enabled);
    w.key("vector_add").begin_object()
        .key("ran").value(d.vector_add_ran)
        .key("ok").value(d.vector_add_ok)
        .key("elements").value(d.vector_elements)
        .key("mismatches").value(d.vector_mismatches)
        .key("ms").value(d.vector_add_ms)
        .end_object();
    w.key("host_to_device");
    bandwidth(d.host_to_device);
    w.key("device_to_host");
    bandwidth(d.device_to_host);
    w.key("device_to_device");
    bandwidth(d.device_to_device);
    w.key("error").string_or_null(d.error);
    w.end_object();
  }
  w.end_array();
  w.key("peers").begin_array();
  for (const auto& p : r.cuda.peers) {
    w.begin_object()
        .key("from").value(p.from)
        .key("to").value(p.to)
        .key("can_access").value(p.can_access)
        .key("peer_enabled").value(p.peer_enabled)
        .key("enable_error").string_or_null(p.enable_error);
    w.key("copy");
    bandwidth(p.copy);
    w.key("verified").value(p.verified).key("mismatched_words").value(p.mismatched_words);
    w.key("error").string_or_null(p.error);
    w.end_object();
  }
  w.end_array();
  w.end_object();

  w.key("checks").begin_array();
  for (const auto& c : checks)
    w.begin_object().key("name").value(c.name).key("pass").value(c.pass).key("detail").value(c.detail).end_object();
  w.end_array();
  w.key("result").value(all_pass(checks) ? "PASS" : "FAIL");
  w.end_object();
  return w.str();
}

}  // namespace feos::gpucheck
