// feos-firmware-plan: the plan of a VM with GPUs on a simulated host, in the dry-run's JSON
// format (feosctl vm create --dry-run -o json: a CreateVmResponse with `plan`, proto field names,
// 64-bit integers as quoted decimals), made by the real code:
//   - the host: a ready-made tree (tests/support host_by_name) under a FakeKernel;
//   - the GPUs: hostdev::HostDevices::plan(), the read-only planning HostDevices::prepare() does
//     before its first write (functions, IOMMU groups, group peers, BARs, NUMA node);
//   - the argv: vmm::qemu::build_argv() with the ArgvConfig the QEMU adapter uses under tcg;
//   - address_space: mmio_layout's bridge_windows() per root port and plan_address_layout(), the
//     numbers build_argv() sizes the 64-bit hole and phys-bits from.
// A test tool for tests/firmware until `feosctl vm create --dry-run -o json` against feosd on the
// feos-fake-sysfs tree replaces it (same output format).
//
//   feos-firmware-plan --host hgx-h100 [--gpus all|N|BDF[,BDF...]] [--memory-mib 512]
//
// Exit 0 with the JSON on stdout; 1 with the planner's or builder's error on stderr; 2 usage.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hostdev/host_devices.h"
#include "hostdev/policy.h"
#include "model/gpu.h"
#include "model/vm.h"
#include "support/fake_device_ledger.h"
#include "support/fake_host.h"
#include "vmm/qemu/argv_builder.h"
#include "vmm/qemu/mmio_layout.h"
#include "vmm/qemu/runtime_dir.h"

namespace {

using Json = nlohmann::ordered_json;
using namespace feos;

constexpr const char* kUsage =
    "usage: feos-firmware-plan --host NAME [--gpus all|N|BDF[,BDF...]] [--memory-mib MIB]\n"
    "  --host        a ready-made host of tests/support (consumer, hgx-h100, hgx-h200, bar512, ...)\n"
    "  --gpus        all display/3D functions 0 of the host (default), the first N of them, or\n"
    "                these addresses\n"
    "  --memory-mib  guest RAM (default 512)\n";

constexpr const char* kVmId = "firmware-proof";
// The daemon's layout of a VM's runtime directory (<state-dir>/vms/<id>); nothing is created.
constexpr const char* kRuntimeDir = "/var/lib/feosd/vms/firmware-proof";
// build_argv() needs a kernel for a disk-less VM; tests/firmware/bar_proof.py boots its own.
constexpr const char* kKernel = "/var/lib/feosd/images/vmlinuz";

std::string u64(uint64_t value) { return std::to_string(value); }

Json function_json(const model::PassthroughFunction& f) {
  Json bars = Json::array();
  for (const auto& bar : f.bars)
    bars.push_back({{"index", bar.index},
                    {"size", u64(bar.size)},
                    {"is_64bit", bar.is_64bit},
                    {"prefetchable", bar.prefetchable},
                    {"is_io", bar.is_io}});
  return {{"address", f.address.to_string()},
          {"id", f.id},
          {"class_code", f.class_code},
          {"iommu_group", f.iommu_group ? f.iommu_group->to_string() : std::string()},
          {"original_driver", f.original_driver},
          {"bars", bars}};
}

const char* rombar_name(model::RomBar rombar) {
  switch (rombar) {
    case model::RomBar::kOn: return "ROM_BAR_ON";
    case model::RomBar::kOff: return "ROM_BAR_OFF";
    case model::RomBar::kDefault: break;
  }
  return "ROM_BAR_DEFAULT";
}

Json gpu_json(const model::AssignedGpu& gpu) {
  Json functions = Json::array(), peers = Json::array();
  for (const auto& f : gpu.functions) functions.push_back(function_json(f));
  for (const auto& f : gpu.group_peers) peers.push_back(function_json(f));
  return {{"request",
           {{"address", gpu.request.address.to_string()},
            {"rombar", rombar_name(gpu.request.rombar)},
            {"boot_vga", gpu.request.boot_vga}}},
          {"functions", functions},
          {"group_peers", peers},
          {"numa_node", gpu.numa_node}};
}

// The display/3D functions 0 of the host, in address order.
std::vector<std::string> host_gpus(const test::HostBuilder& host) {
  std::vector<std::string> out;
  for (const auto& f : host.functions())
    if ((f.class_code >> 16) == 0x03 && f.bdf.substr(f.bdf.size() - 1) == "0" && !f.boot_vga.value_or(false))
      out.push_back(f.bdf);
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::vector<std::string>> pick_gpus(const std::vector<std::string>& available, const std::string& want) {
  if (want == "all") return available;
  if (!want.empty() && want.find_first_not_of("0123456789") == std::string::npos) {
    size_t n = want.size() > 4 ? 0 : std::stoul(want);
    if (n == 0 || n > available.size())
      return fail(Code::kInvalidArgument, "--gpus " + want + ": the host has " + std::to_string(available.size()) +
                                              " GPUs");
    return std::vector<std::string>(available.begin(), available.begin() + static_cast<long>(n));
  }
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= want.size()) {
    size_t comma = want.find(',', start);
    out.push_back(want.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Result<Json> make_plan(const std::string& host_name, const std::string& gpus_arg, uint64_t memory_mib) {
  FEOS_ASSIGN_OR_RETURN(auto builder, test::host_by_name(host_name));
  FEOS_ASSIGN_OR_RETURN(auto host, test::FakeHost::create(builder));
  FEOS_ASSIGN_OR_RETURN(auto addresses, pick_gpus(host_gpus(builder), gpus_arg));

  model::VmSpec spec;
  spec.memory.size_mib = memory_mib;
  spec.boot.kernel = kKernel;
  spec.boot.cmdline = "console=ttyS0";
  for (const auto& text : addresses) {
    auto address = pci::Address::parse(text);
    if (!address) return fail(Code::kInvalidArgument, "--gpus: " + address.error().message);
    spec.gpus.push_back({.address = *address});
  }

  test::FakeDeviceLedger ledger;
  hostdev::HostDevices devices(host->kernel(), host->paths(), ledger, hostdev::Policy());
  FEOS_ASSIGN_OR_RETURN(auto gpus, devices.plan(kVmId, spec.gpus));

  // What QemuHypervisor::argv_config() gives under tcg (no host phys-bits: tcg emulates them).
  vmm::qemu::ArgvConfig config;
  config.accel = vmm::qemu::Accel::kTcg;
  config.hugepages_dir = host->paths().hugepages();
  vmm::qemu::RuntimeDir dir(kRuntimeDir);
  FEOS_ASSIGN_OR_RETURN(auto argv, vmm::qemu::build_argv(config, spec, {}, gpus, dir.files(), kVmId));

  // The root ports in build_argv()'s order: each card, then each of its group peers.
  std::vector<vmm::qemu::BridgeWindows> ports;
  for (const auto& gpu : gpus) {
    FEOS_ASSIGN_OR_RETURN(auto windows, vmm::qemu::bridge_windows(gpu.functions));
    ports.push_back(windows);
    for (const auto& peer : gpu.group_peers) {
      FEOS_ASSIGN_OR_RETURN(auto peer_windows, vmm::qemu::bridge_windows({peer}));
      ports.push_back(peer_windows);
    }
  }
  const uint64_t ram = memory_mib * vmm::qemu::kMiB;
  FEOS_ASSIGN_OR_RETURN(auto layout, vmm::qemu::plan_address_layout(ram, ports));

  Json decisions = Json::array();
  decisions.push_back("plan made by feos-firmware-plan on the simulated host '" + host_name +
                      "' (hostdev planning and build_argv, tcg)");
  for (const auto& gpu : gpus)
    decisions.push_back(gpu.request.address.to_string() + ": " + std::to_string(gpu.functions.size()) +
                        " function(s), IOMMU group " + gpu.functions[0].iommu_group->to_string() +
                        ", NUMA node " + std::to_string(gpu.numa_node));
  decisions.push_back(vmm::qemu::describe_reach(layout, ram));

  Json gpus_json = Json::array();
  for (const auto& gpu : gpus) gpus_json.push_back(gpu_json(gpu));
  Json plan = {{"vm_id", kVmId},
               {"gpus", gpus_json},
               {"decisions", decisions},
               {"address_space",
                {{"ram_bytes", u64(ram)},
                 {"mmio32_bytes", u64(layout.mmio32_needed)},
                 {"hole64_start", u64(layout.hole64_start)},
                 {"hole64_size", u64(layout.hole64_size)},
                 {"phys_bits", layout.phys_bits}}},
               {"qemu_argv", argv}};
  return Json{{"vm_id", kVmId}, {"plan", plan}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string host_name, gpus = "all";
  uint64_t memory_mib = 512;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "feos-firmware-plan: %s needs a value\n%s", arg.c_str(), kUsage);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--host") {
      host_name = value();
    } else if (arg == "--gpus") {
      gpus = value();
    } else if (arg == "--memory-mib") {
      std::string text = value();
      if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 9) {
        std::fprintf(stderr, "feos-firmware-plan: --memory-mib %s is not a number\n", text.c_str());
        return 2;
      }
      memory_mib = std::stoull(text);
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "feos-firmware-plan: unknown argument %s\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }
  if (host_name.empty()) {
    std::fprintf(stderr, "feos-firmware-plan: --host is required\n%s", kUsage);
    return 2;
  }
  auto plan = make_plan(host_name, gpus, memory_mib);
  if (!plan) {
    std::fprintf(stderr, "feos-firmware-plan: %s\n", plan.error().to_string().c_str());
    return 1;
  }
  std::cout << plan->dump(2) << "\n";
  return 0;
}
