#pragma once
// The CUDA part of feos-gpu-check: plain data, so the rest of the tool (and its tests) build
// without CUDA. run_cuda_probe() exists only when the tool is built with CUDA
// (FEOS_GPU_CHECK_HAVE_CUDA, cuda_probe.cu).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace feos::gpucheck {

// One timed copy series: `bytes` moved `repetitions` times (after one untimed warm-up).
struct Bandwidth {
  bool measured = false;
  double gbps = 0;      // 1e9 bytes per second, each byte counted once
  uint64_t bytes = 0;
  int repetitions = 0;
  std::string error;
};

struct CudaDevice {
  int index = 0;
  std::string name;
  int pci_domain = 0, pci_bus = 0, pci_device = 0;
  int cc_major = 0, cc_minor = 0;
  int multiprocessors = 0;
  uint64_t total_memory = 0;
  int l2_cache_bytes = 0;
  int memory_bus_width = 0;
  bool ecc_enabled = false;

  // Vector add c = a + b over `vector_elements` floats, every element compared on the host.
  bool vector_add_ran = false;
  bool vector_add_ok = false;
  uint64_t vector_elements = 0;
  uint64_t vector_mismatches = 0;
  double vector_add_ms = 0;

  Bandwidth host_to_device;    // pinned host memory -> device
  Bandwidth device_to_host;
  Bandwidth device_to_device;  // within the device (memory traffic is twice the figure)
  std::string error;           // the first CUDA error on this device, if any
};

// One ordered pair: copies go from device `from` to device `to`.
struct PeerPair {
  int from = 0, to = 0;
  bool can_access = false;     // cudaDeviceCanAccessPeer(from, to)
  bool peer_enabled = false;   // cudaDeviceEnablePeerAccess succeeded on `from`
  std::string enable_error;
  Bandwidth copy;              // cudaMemcpyPeerAsync; staged through the host when not peers
  bool verified = false;       // the destination held the source's bytes afterwards
  uint64_t mismatched_words = 0;
  std::string error;
};

struct CudaReport {
  bool ran = false;            // run_cuda_probe() was called
  int driver_version = 0;      // cudaDriverGetVersion: 13000 = 13.0; 0 when no driver
  int runtime_version = 0;
  int device_count = 0;
  std::string error;           // the probe could not start (no driver, no device)
  std::vector<CudaDevice> devices;
  std::vector<PeerPair> peers;
};

struct CudaProbeOptions {
  size_t copy_bytes = size_t{256} << 20;
  int repetitions = 10;
  size_t vector_elements = size_t{1} << 24;
};

// Runs every CUDA check on every device; never throws or aborts: failures land in the report.
// Uses plain cudaMalloc/cudaMallocHost and peer copies only (no managed memory, no multicast).
CudaReport run_cuda_probe(const CudaProbeOptions& options);

// "13.0" for 13000.
std::string cuda_version_string(int version);

}  // namespace feos::gpucheck
