#include "gpu-check/options.h"

#include <charconv>

#include "sys/host_paths.h"

namespace feos::gpucheck {
namespace {

std::optional<long> parse_long(std::string_view text) {
  long value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 10);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::string usage() {
  const sys::HostPaths defaults;
  return R"(Usage: feos-gpu-check [options]

Checks, inside a VM, the GPUs passed through to it: lists display/3D PCI functions from sysfs
(ids, names, driver, BARs, PCIe link), reads the NVIDIA driver version, queries nvidia-smi and,
when built with CUDA, runs a checked vector-add kernel and measures host<->device, device copy
and (with several GPUs) peer-to-peer bandwidth. Exit status: 0 when every check and expectation
holds, 1 when one fails (one FAIL line each), 2 for usage errors.

Expectations:
  --expect-gpus N        exactly N passed-through GPUs (display-class PCI functions, not counting
                         emulated display adapters such as QEMU's VGA)
  --expect-id VVVV:DDDD  a GPU with this vendor:device id is present, and every GPU has one of the
                         ids given (repeatable)
  --expect-driver NAME   every GPU is bound to driver NAME (e.g. nvidia, vfio-pci)
  --expect-p2p           every pair of CUDA devices can access each other as peers
Options:
  -o, --output FORMAT    text (default) or json
  --sysfs-root DIR       sysfs to read (default )" + defaults.sysfs_root + R"()
  --proc-root DIR        procfs to read the NVIDIA driver version from (default )" + defaults.proc_root + R"()
  --pci-ids FILE         PCI ID database for names (default /usr/share/misc/pci.ids or
                         /usr/share/hwdata/pci.ids)
  --nvidia-smi PROGRAM   nvidia-smi to run (default: nvidia-smi from PATH)
  --no-nvidia-smi        do not run nvidia-smi
  --no-cuda              skip the CUDA checks
  --copy-mib N           bytes per bandwidth-test copy, in MiB (default 256, 1-16384)
  -h, --help             this text
  --version              the version
)";
}

Result<Options> parse_options(int argc, const char* const* argv) {
  Options o;
  sys::HostPaths defaults;
  o.sysfs_root = defaults.sysfs_root;
  o.proc_root = defaults.proc_root;
  auto bad = [](const std::string& why) { return fail(Code::kInvalidArgument, why); };

  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> inline_value;
    if (arg.rfind("--", 0) == 0) {
      auto eq = arg.find('=');
      if (eq != std::string::npos) {
        inline_value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
      }
    }
    auto value = [&]() -> Result<std::string> {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) return bad("option " + arg + " needs a value");
      return std::string(argv[++i]);
    };
    auto flag = [&]() -> Status {
      if (inline_value) return bad("option " + arg + " takes no value");
      return ok();
    };

    if (arg == "-h" || arg == "--help") {
      FEOS_TRY(flag());
      o.help = true;
    } else if (arg == "--version") {
      FEOS_TRY(flag());
      o.version = true;
    } else if (arg == "--no-cuda") {
      FEOS_TRY(flag());
      o.cuda = false;
    } else if (arg == "--no-nvidia-smi") {
      FEOS_TRY(flag());
      o.nvidia_smi.clear();
    } else if (arg == "--expect-p2p") {
      FEOS_TRY(flag());
      o.expect_p2p = true;
    } else if (arg == "-o" || arg == "--output") {
      auto v = value();
      if (!v) return fail(v.error());
      if (*v == "text") o.format = OutputFormat::kText;
      else if (*v == "json") o.format = OutputFormat::kJson;
      else return bad("unknown output format '" + *v + "' (text or json)");
    } else if (arg == "--sysfs-root" || arg == "--proc-root" || arg == "--pci-ids" || arg == "--nvidia-smi") {
      auto v = value();
      if (!v) return fail(v.error());
      if (v->empty()) return bad("option " + arg + " needs a non-empty value");
      if (arg == "--sysfs-root") o.sysfs_root = *v;
      else if (arg == "--proc-root") o.proc_root = *v;
      else if (arg == "--pci-ids") o.pci_ids = *v;
      else o.nvidia_smi = *v;
    } else if (arg == "--expect-gpus") {
      auto v = value();
      if (!v) return fail(v.error());
      auto n = parse_long(*v);
      if (!n || *n < 0 || *n > 1024) return bad("--expect-gpus needs a number from 0 to 1024, got '" + *v + "'");
      o.expect_gpus = static_cast<int>(*n);
    } else if (arg == "--expect-id") {
      auto v = value();
      if (!v) return fail(v.error());
      auto id = pci::DeviceId::parse(*v);
      if (!id) return fail(id.error().context("--expect-id"));
      o.expect_ids.push_back(*id);
    } else if (arg == "--expect-driver") {
      auto v = value();
      if (!v) return fail(v.error());
      if (v->empty() || v->find('/') != std::string::npos)
        return bad("--expect-driver needs a driver name, got '" + *v + "'");
      o.expect_driver = *v;
    } else if (arg == "--copy-mib") {
      auto v = value();
      if (!v) return fail(v.error());
      auto n = parse_long(*v);
      if (!n || *n < 1 || *n > 16384) return bad("--copy-mib needs a number from 1 to 16384, got '" + *v + "'");
      o.copy_mib = static_cast<size_t>(*n);
    } else {
      return bad("unknown argument '" + arg + "'");
    }
  }
  return o;
}

}  // namespace feos::gpucheck
