// The CUDA checks of feos-gpu-check. Compiled only when CMake finds a CUDA compiler; the rest of
// the tool sees just cuda_probe.h. Plain cudaMalloc/cudaMallocHost and peer copies only: no
// managed memory, no NVLink multicast (cuMulticast*), no NCCL.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "gpu-check/cuda_probe.h"

namespace feos::gpucheck {
namespace {

std::string describe(cudaError_t e, const char* what) {
  return std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

// Evaluates a CUDA call; on failure stores "<call>: <error>" in `err` and returns false from the
// enclosing function.
#define FEOS_CUDA_OK(call, err)              \
  do {                                       \
    cudaError_t e_ = (call);                 \
    if (e_ != cudaSuccess) {                 \
      (err) = describe(e_, #call);           \
      return false;                          \
    }                                        \
  } while (0)

struct DeviceBuffer {
  void* p = nullptr;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (p) cudaFree(p);
  }
};

struct PinnedBuffer {
  void* p = nullptr;
  PinnedBuffer() = default;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() {
    if (p) cudaFreeHost(p);
  }
};

struct Stream {
  cudaStream_t s = nullptr;
  Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() {
    if (s) cudaStreamDestroy(s);
  }
};

struct Event {
  cudaEvent_t e = nullptr;
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() {
    if (e) cudaEventDestroy(e);
  }
};

__global__ void vector_add(const float* a, const float* b, float* c, size_t n) {
  size_t stride = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) c[i] = a[i] + b[i];
}

__global__ void count_mismatches(const uint32_t* p, size_t n, uint32_t expected, unsigned long long* count) {
  size_t stride = size_t(gridDim.x) * blockDim.x;
  unsigned long long local = 0;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) local += p[i] != expected;
  if (local) atomicAdd(count, local);
}

// Times `reps` calls of `issue` on `stream` (after one untimed warm-up call).
template <typename Issue>
bool time_copies(Bandwidth& bw, const char* what, size_t bytes, int reps, cudaStream_t stream, Issue issue) {
  bw.bytes = bytes;
  bw.repetitions = reps;
  Event start, stop;
  FEOS_CUDA_OK(cudaEventCreate(&start.e), bw.error);
  FEOS_CUDA_OK(cudaEventCreate(&stop.e), bw.error);
  cudaError_t e = issue();
  if (e != cudaSuccess) {
    bw.error = describe(e, what);
    return false;
  }
  FEOS_CUDA_OK(cudaEventRecord(start.e, stream), bw.error);
  for (int i = 0; i < reps; ++i) {
    e = issue();
    if (e != cudaSuccess) {
      bw.error = describe(e, what);
      return false;
    }
  }
  FEOS_CUDA_OK(cudaEventRecord(stop.e, stream), bw.error);
  FEOS_CUDA_OK(cudaEventSynchronize(stop.e), bw.error);
  float ms = 0;
  FEOS_CUDA_OK(cudaEventElapsedTime(&ms, start.e, stop.e), bw.error);
  if (ms <= 0) {
    bw.error = "copy took no measurable time";
    return false;
  }
  bw.gbps = static_cast<double>(bytes) * reps / (ms * 1e-3) / 1e9;
  bw.measured = true;
  return true;
}

bool run_vector_add(CudaDevice& d, size_t n) {
  d.vector_add_ran = true;
  d.vector_elements = n;
  std::vector<float> a(n), b(n), c(n);
  // Small integers: every sum is exact in float, so the check can demand equality.
  for (size_t i = 0; i < n; ++i) {
    a[i] = static_cast<float>(i % 4096);
    b[i] = static_cast<float>((i * 7) % 4096);
  }
  const size_t bytes = n * sizeof(float);
  DeviceBuffer da, db, dc;
  FEOS_CUDA_OK(cudaMalloc(&da.p, bytes), d.error);
  FEOS_CUDA_OK(cudaMalloc(&db.p, bytes), d.error);
  FEOS_CUDA_OK(cudaMalloc(&dc.p, bytes), d.error);
  FEOS_CUDA_OK(cudaMemcpy(da.p, a.data(), bytes, cudaMemcpyHostToDevice), d.error);
  FEOS_CUDA_OK(cudaMemcpy(db.p, b.data(), bytes, cudaMemcpyHostToDevice), d.error);
  FEOS_CUDA_OK(cudaMemset(dc.p, 0xff, bytes), d.error);  // NaNs: a kernel that writes nothing fails
  const int threads = 256;
  const int blocks = d.multiprocessors > 0 ? d.multiprocessors * 8 : 1024;
  Event start, stop;
  FEOS_CUDA_OK(cudaEventCreate(&start.e), d.error);
  FEOS_CUDA_OK(cudaEventCreate(&stop.e), d.error);
  FEOS_CUDA_OK(cudaEventRecord(start.e), d.error);
  vector_add<<<blocks, threads>>>(static_cast<const float*>(da.p), static_cast<const float*>(db.p),
                                  static_cast<float*>(dc.p), n);
  FEOS_CUDA_OK(cudaGetLastError(), d.error);
  FEOS_CUDA_OK(cudaEventRecord(stop.e), d.error);
  FEOS_CUDA_OK(cudaEventSynchronize(stop.e), d.error);
  float ms = 0;
  FEOS_CUDA_OK(cudaEventElapsedTime(&ms, start.e, stop.e), d.error);
  d.vector_add_ms = ms;
  FEOS_CUDA_OK(cudaMemcpy(c.data(), dc.p, bytes, cudaMemcpyDeviceToHost), d.error);
  uint64_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad += c[i] != a[i] + b[i];
  d.vector_mismatches = bad;
  d.vector_add_ok = bad == 0;
  return true;
}

bool run_bandwidth(CudaDevice& d, const CudaProbeOptions& o) {
  const size_t bytes = o.copy_bytes;
  PinnedBuffer host;
  DeviceBuffer src, dst;
  Stream stream;
  FEOS_CUDA_OK(cudaMallocHost(&host.p, bytes), d.error);
  std::memset(host.p, 0x5a, bytes);
  FEOS_CUDA_OK(cudaMalloc(&src.p, bytes), d.error);
  FEOS_CUDA_OK(cudaMalloc(&dst.p, bytes), d.error);
  FEOS_CUDA_OK(cudaStreamCreateWithFlags(&stream.s, cudaStreamNonBlocking), d.error);
  bool ok = true;
  ok &= time_copies(d.host_to_device, "cudaMemcpyAsync(host to device)", bytes, o.repetitions, stream.s,
                    [&] { return cudaMemcpyAsync(src.p, host.p, bytes, cudaMemcpyHostToDevice, stream.s); });
  ok &= time_copies(d.device_to_host, "cudaMemcpyAsync(device to host)", bytes, o.repetitions, stream.s,
                    [&] { return cudaMemcpyAsync(host.p, src.p, bytes, cudaMemcpyDeviceToHost, stream.s); });
  ok &= time_copies(d.device_to_device, "cudaMemcpyAsync(device to device)", bytes, o.repetitions, stream.s,
                    [&] { return cudaMemcpyAsync(dst.p, src.p, bytes, cudaMemcpyDeviceToDevice, stream.s); });
  if (!ok && d.error.empty()) {
    for (const Bandwidth* bw : {&d.host_to_device, &d.device_to_host, &d.device_to_device})
      if (!bw->error.empty()) {
        d.error = bw->error;
        break;
      }
  }
  return ok;
}

bool probe_device(CudaDevice& d, const CudaProbeOptions& o) {
  FEOS_CUDA_OK(cudaSetDevice(d.index), d.error);
  cudaDeviceProp p;
  FEOS_CUDA_OK(cudaGetDeviceProperties(&p, d.index), d.error);
  d.name = p.name;
  d.pci_domain = p.pciDomainID;
  d.pci_bus = p.pciBusID;
  d.pci_device = p.pciDeviceID;
  d.cc_major = p.major;
  d.cc_minor = p.minor;
  d.multiprocessors = p.multiProcessorCount;
  d.total_memory = p.totalGlobalMem;
  d.l2_cache_bytes = p.l2CacheSize;
  d.memory_bus_width = p.memoryBusWidth;
  d.ecc_enabled = p.ECCEnabled != 0;
  if (!run_vector_add(d, o.vector_elements)) return false;
  return run_bandwidth(d, o);
}

bool probe_pair(PeerPair& pair, const CudaProbeOptions& o) {
  int can = 0;
  FEOS_CUDA_OK(cudaDeviceCanAccessPeer(&can, pair.from, pair.to), pair.error);
  pair.can_access = can != 0;
  FEOS_CUDA_OK(cudaSetDevice(pair.from), pair.error);
  if (pair.can_access) {
    cudaError_t e = cudaDeviceEnablePeerAccess(pair.to, 0);
    if (e == cudaSuccess || e == cudaErrorPeerAccessAlreadyEnabled) {
      pair.peer_enabled = true;
    } else {
      pair.enable_error = describe(e, "cudaDeviceEnablePeerAccess");
    }
    cudaGetLastError();  // a failed enable must not poison later calls
  }

  const size_t bytes = o.copy_bytes;
  const uint32_t pattern = 0xa5000000u | (static_cast<uint32_t>(pair.from) << 8) | static_cast<uint32_t>(pair.to);
  DeviceBuffer src, dst, count;
  Stream stream;
  bool ok = [&]() -> bool {
    FEOS_CUDA_OK(cudaSetDevice(pair.to), pair.error);
    FEOS_CUDA_OK(cudaMalloc(&dst.p, bytes), pair.error);
    FEOS_CUDA_OK(cudaMemset(dst.p, 0, bytes), pair.error);
    FEOS_CUDA_OK(cudaMalloc(&count.p, sizeof(unsigned long long)), pair.error);
    FEOS_CUDA_OK(cudaMemset(count.p, 0, sizeof(unsigned long long)), pair.error);
    FEOS_CUDA_OK(cudaDeviceSynchronize(), pair.error);

    FEOS_CUDA_OK(cudaSetDevice(pair.from), pair.error);
    FEOS_CUDA_OK(cudaMalloc(&src.p, bytes), pair.error);
    // Fill the source with the pair's pattern word.
    std::vector<uint32_t> words(bytes / sizeof(uint32_t), pattern);
    FEOS_CUDA_OK(cudaMemcpy(src.p, words.data(), words.size() * sizeof(uint32_t), cudaMemcpyHostToDevice),
                 pair.error);
    FEOS_CUDA_OK(cudaStreamCreateWithFlags(&stream.s, cudaStreamNonBlocking), pair.error);
    if (!time_copies(pair.copy, "cudaMemcpyPeerAsync", bytes, o.repetitions, stream.s, [&] {
          return cudaMemcpyPeerAsync(dst.p, pair.to, src.p, pair.from, bytes, stream.s);
        })) {
      pair.error = pair.copy.error;
      return false;
    }

    FEOS_CUDA_OK(cudaSetDevice(pair.to), pair.error);
    const size_t n = bytes / sizeof(uint32_t);
    count_mismatches<<<1024, 256>>>(static_cast<const uint32_t*>(dst.p), n, pattern,
                                    static_cast<unsigned long long*>(count.p));
    FEOS_CUDA_OK(cudaGetLastError(), pair.error);
    unsigned long long mismatches = 0;
    FEOS_CUDA_OK(cudaMemcpy(&mismatches, count.p, sizeof mismatches, cudaMemcpyDeviceToHost), pair.error);
    pair.mismatched_words = mismatches;
    pair.verified = mismatches == 0;
    return true;
  }();
  if (pair.peer_enabled) {
    // Leave the devices as found.
    cudaSetDevice(pair.from);
    cudaDeviceDisablePeerAccess(pair.to);
    cudaGetLastError();
  }
  return ok;
}

}  // namespace

CudaReport run_cuda_probe(const CudaProbeOptions& options) {
  CudaReport r;
  r.ran = true;
  cudaDriverGetVersion(&r.driver_version);
  cudaRuntimeGetVersion(&r.runtime_version);
  cudaError_t e = cudaGetDeviceCount(&r.device_count);
  if (e != cudaSuccess) {
    r.device_count = 0;
    r.error = describe(e, "cudaGetDeviceCount");
    return r;
  }
  for (int i = 0; i < r.device_count; ++i) {
    CudaDevice d;
    d.index = i;
    probe_device(d, options);
    r.devices.push_back(std::move(d));
  }
  for (int i = 0; i < r.device_count; ++i)
    for (int j = 0; j < r.device_count; ++j) {
      if (i == j) continue;
      PeerPair pair;
      pair.from = i;
      pair.to = j;
      probe_pair(pair, options);
      r.peers.push_back(std::move(pair));
    }
  return r;
}

}  // namespace feos::gpucheck
