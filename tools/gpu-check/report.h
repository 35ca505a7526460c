#pragma once
// What feos-gpu-check found, the pass/fail checks derived from it, and its two renderings.
// Collecting (inventory.h) and judging (evaluate) are separate so tests can judge any report.
#include <string>
#include <vector>

#include "gpu-check/cuda_probe.h"
#include "gpu-check/options.h"
#include "pci/device.h"

namespace feos::gpucheck {

inline constexpr const char* kToolVersion = "0.1.0";
inline constexpr uint16_t kVendorNvidia = 0x10de;

struct GpuFunction {
  pci::Device device;
  std::string vendor_name;  // from pci.ids; empty when unknown
  std::string device_name;
  std::string subsystem_name;
  std::string class_name;
};

struct NvidiaDriver {
  std::string path;     // <proc>/driver/nvidia/version
  bool found = false;
  std::string version;  // "580.159.04"
  std::string line;     // the file's first line
  std::string error;    // why it could not be read (absent: no NVIDIA kernel module loaded)
};

struct NvidiaSmi {
  bool requested = false;
  std::string program;
  std::vector<std::string> fields;            // the --query-gpu fields, in order
  bool ran = false;                           // the program started
  bool ok = false;                            // it exited 0 and its output parsed
  std::vector<std::vector<std::string>> rows; // one per GPU, values in `fields` order
  std::string error;
};

enum class CudaState { kNotBuilt, kSkipped, kRan };

struct Report {
  std::string sysfs_root;
  bool pci_ok = false;
  std::string pci_error;
  size_t pci_functions = 0;              // all functions listed
  std::vector<GpuFunction> gpus;         // display-class functions that are real (passed-through) GPUs
  std::vector<GpuFunction> emulated;     // emulated display adapters (QEMU VGA, virtio-gpu, ...)
  std::vector<std::string> read_errors;  // functions that could not be read, with why
  std::string pci_ids_path;              // database used for names; empty when none
  std::string pci_ids_error;
  NvidiaDriver nvidia_driver;
  NvidiaSmi nvidia_smi;
  CudaState cuda_state = CudaState::kNotBuilt;
  CudaReport cuda;
};

struct Check {
  std::string name;    // "expect-gpus", "cuda-vector-add 0000:00:06.0", ...
  bool pass = false;
  std::string detail;  // what was found (and expected)
};

// Every check the report and the options call for, in a stable order.
std::vector<Check> evaluate(const Report& report, const Options& options);

bool all_pass(const std::vector<Check>& checks);

// The human-readable report, ending with one PASS/FAIL line per check and a RESULT line.
std::string render_text(const Report& report, const std::vector<Check>& checks);

// The same as one JSON object (see docs/gpu-check.md for the fields).
std::string render_json(const Report& report, const std::vector<Check>& checks);

// "13.0" for 13000.
std::string cuda_version_string(int version);

}  // namespace feos::gpucheck
