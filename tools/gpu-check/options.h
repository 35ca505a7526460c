#pragma once
// Command line of feos-gpu-check. Hand-parsed: the guest build has no CLI library.
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "pci/device.h"

namespace feos::gpucheck {

enum class OutputFormat { kText, kJson };

struct Options {
  std::string sysfs_root;        // default: sys::HostPaths{}.sysfs_root
  std::string proc_root;         // default: sys::HostPaths{}.proc_root
  std::string pci_ids;           // empty: the first of pci::default_pci_ids_paths() that exists
  std::string nvidia_smi = "nvidia-smi";  // program to query; empty: do not run it
  bool cuda = true;              // run the CUDA checks (when built with CUDA)
  size_t copy_mib = 256;         // size of each bandwidth-test copy
  std::optional<int> expect_gpus;
  std::vector<pci::DeviceId> expect_ids;
  std::optional<std::string> expect_driver;
  bool expect_p2p = false;
  OutputFormat format = OutputFormat::kText;
  bool help = false;
  bool version = false;
};

// Parses argv (argv[0] is the program name). INVALID_ARGUMENT with a one-line reason for unknown
// options, missing or malformed values; the caller prints it with usage() and exits 2.
Result<Options> parse_options(int argc, const char* const* argv);

// The --help text.
std::string usage();

}  // namespace feos::gpucheck
