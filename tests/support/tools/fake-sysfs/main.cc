// feos-fake-sysfs: writes a fake host's sysfs/dev/proc tree for process-level tests and
// benchmarks that run the real daemon against it:
//
//   feos-fake-sysfs --host hgx-h100 /tmp/h
//   feosd --sysfs-root /tmp/h/sys --dev-root /tmp/h/dev --proc-root /tmp/h/proc ...
//
// The tree is static: nothing reacts to bind/unbind writes (in-process tests use FakeKernel).
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include "support/host_builder.h"

namespace {

constexpr const char* kUsage =
    "usage: feos-fake-sysfs --host consumer|hgx-h100|hgx-h200|bar512|pcie-2s4g|shared-group|large:N[:G]\n"
    "                       [--no-vfio-pci] OUTDIR\n"
    "Writes the host's tree under OUTDIR (created; must be empty if it exists) and prints the\n"
    "daemon flags that point at it. Hosts:\n"
    "  consumer      desktop: RTX 4090-class card (4 functions, one IOMMU group) + iGPU boot VGA\n"
    "  hgx-h100      8 x H100 (128 GiB BAR1) behind PCIe switches, 4 NVSwitches in one group\n"
    "  hgx-h200      the same board with 8 x H200 (256 GiB BAR1)\n"
    "  bar512        4 datacenter cards with a 512 GiB BAR1 behind PCIe switches\n"
    "  pcie-2s4g     2 sockets, each a PCIe switch with 2 x L40S and a ConnectX-6 Dx\n"
    "  shared-group  a T4 sharing its IOMMU group with an Intel NIC, and a T4 alone\n"
    "  large:N[:G]   N functions (GPU trays, NICs with SR-IOV VFs, NVMe, uncore), for benchmarks;\n"
    "                with G, G GPU trays first\n"
    "  --no-vfio-pci the vfio_pci module is not loaded (no bus/pci/drivers/vfio-pci)\n";

int usage_error(const std::string& why) {
  std::fprintf(stderr, "feos-fake-sysfs: %s\n%s", why.c_str(), kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host_name, out;
  bool no_vfio = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--host" && i + 1 < argc) {
      host_name = argv[++i];
    } else if (arg.substr(0, 7) == "--host=") {
      host_name = std::string(arg.substr(7));
    } else if (arg == "--no-vfio-pci") {
      no_vfio = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return usage_error("unknown option " + std::string(arg));
    } else if (out.empty()) {
      out = std::string(arg);
    } else {
      return usage_error("more than one OUTDIR");
    }
  }
  if (host_name.empty()) return usage_error("--host is required");
  if (out.empty()) return usage_error("OUTDIR is required");

  auto host = feos::test::host_by_name(host_name);
  if (!host) return usage_error(host.error().message);
  if (no_vfio) host->module("vfio_pci", false);

  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) {
    std::fprintf(stderr, "feos-fake-sysfs: cannot create %s: %s\n", out.c_str(), ec.message().c_str());
    return 1;
  }
  if (!fs::is_empty(out, ec) || ec) {
    std::fprintf(stderr, "feos-fake-sysfs: %s is not an empty directory\n", out.c_str());
    return 1;
  }
  const std::string root = fs::absolute(out).lexically_normal().string();
  const auto t0 = std::chrono::steady_clock::now();
  auto tree = host->build(root);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  if (!tree) {
    std::fprintf(stderr, "feos-fake-sysfs: %s\n", tree.error().to_string().c_str());
    return 1;
  }
  std::fprintf(stderr, "feos-fake-sysfs: %s: %zu PCI functions written to %s in %lld ms\n", host_name.c_str(),
               host->functions().size(), root.c_str(), static_cast<long long>(ms));
  std::printf("--sysfs-root %s --dev-root %s --proc-root %s\n", tree->paths.sysfs_root.c_str(),
              tree->paths.dev_root.c_str(), tree->paths.proc_root.c_str());
  return 0;
}
