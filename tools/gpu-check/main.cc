// feos-gpu-check: run inside a VM to check the GPUs passed through to it (see docs/gpu-check.md).
#include <cstdio>
#include <iostream>

#include "gpu-check/inventory.h"
#include "gpu-check/options.h"
#include "gpu-check/report.h"
#include "pci/pci_ids.h"
#include "pci/sysfs.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"

#ifdef FEOS_GPU_CHECK_HAVE_CUDA
#include "gpu-check/cuda_probe.h"
#endif

int main(int argc, char** argv) {
  using namespace feos;
  auto options = gpucheck::parse_options(argc, argv);
  if (!options) {
    std::cerr << "feos-gpu-check: " << options.error().message << "\n\n" << gpucheck::usage();
    return 2;
  }
  if (options->help) {
    std::cout << gpucheck::usage();
    return 0;
  }
  if (options->version) {
    std::cout << "feos-gpu-check " << gpucheck::kToolVersion
#ifdef FEOS_GPU_CHECK_HAVE_CUDA
              << " (CUDA)"
#endif
              << "\n";
    return 0;
  }

  auto fs = sys::make_posix_filesystem();
  sys::HostPaths paths;
  paths.sysfs_root = options->sysfs_root;
  paths.proc_root = options->proc_root;

  gpucheck::Report report;
  auto ids = options->pci_ids.empty() ? pci::PciIds::load_first(*fs, pci::default_pci_ids_paths())
                                      : pci::PciIds::load(*fs, options->pci_ids);
  pci::PciIds names;
  if (ids) {
    names = std::move(*ids);
    report.pci_ids_path = options->pci_ids.empty() ? "default" : options->pci_ids;
    for (const auto& p : pci::default_pci_ids_paths())
      if (options->pci_ids.empty() && fs->exists(p)) {
        report.pci_ids_path = p;
        break;
      }
  } else {
    report.pci_ids_error = ids.error().message;
  }

  pci::PciSysfs pci(*fs, paths);
  gpucheck::collect_pci(pci, names, report);
  report.nvidia_driver = gpucheck::read_nvidia_driver(*fs, paths.proc_root);
  // nvidia-smi runs before CUDA starts its threads (run_command forks).
  if (!options->nvidia_smi.empty()) report.nvidia_smi = gpucheck::query_nvidia_smi(options->nvidia_smi);

#ifdef FEOS_GPU_CHECK_HAVE_CUDA
  if (options->cuda) {
    gpucheck::CudaProbeOptions probe;
    probe.copy_bytes = options->copy_mib << 20;
    report.cuda = gpucheck::run_cuda_probe(probe);
    report.cuda_state = gpucheck::CudaState::kRan;
  } else {
    report.cuda_state = gpucheck::CudaState::kSkipped;
  }
#endif

  auto checks = gpucheck::evaluate(report, *options);
  const bool pass = gpucheck::all_pass(checks);
  if (options->format == gpucheck::OutputFormat::kJson) {
    std::cout << gpucheck::render_json(report, checks);
    // Failures also go to stderr, one line each, so a script sees them without parsing JSON.
    for (const auto& c : checks)
      if (!c.pass) std::cerr << "FAIL " << c.name << ": " << c.detail << "\n";
  } else {
    std::cout << gpucheck::render_text(report, checks);
  }
  std::cout.flush();
  return pass ? 0 : 1;
}
