// Benchmark: placing 4 GPUs by count (HostDevices::plan with a GpuCount: read the host, check each
// free GPU's card and group, pick by NUMA node and switch, resolve the picked cards) on a simulated
// host of D functions with G GPUs, a quarter of them already held. The daemon's share of a
// `vm create --gpus 4`. Target: median under 10 ms. Prints the first (cold) pick, then the median
// and p95 of R picks. Usage: placement_bench [D=1000] [G=64] [R=25]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common/log.h"
#include "hostdev/host_devices.h"
#include "store/database.h"
#include "support/fake_host.h"
#include "support/host_builder.h"

using Clock = std::chrono::steady_clock;
using namespace feos;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "placement_bench: %s\n", what.c_str());
  std::exit(1);
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  log::set_level("warn");
  const int devices = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int gpus = argc > 2 ? std::atoi(argv[2]) : 64;
  const int runs = argc > 3 ? std::atoi(argv[3]) : 25;
  auto host = test::FakeHost::create(test::large_host(devices, gpus));
  if (!host) die(host.error().to_string());
  auto db = store::Database::open((*host)->root() + "/bench.db");
  if (!db) die(db.error().to_string());
  hostdev::HostDevices host_devices((*host)->kernel(), (*host)->paths(), (*db)->ledger(), hostdev::Policy());

  // A quarter of the GPUs are held by VMs, taken by count as clients would.
  for (int i = 0; i < gpus / 4 / 4; ++i) {
    auto held = host_devices.prepare("held-" + std::to_string(i), {}, model::GpuCount{.count = 4, .model = "", .p2p = false});
    if (!held) die("hold: " + held.error().to_string());
  }
  const model::GpuCount request{.count = 4, .model = "", .p2p = false};
  auto t0 = Clock::now();
  auto first = host_devices.plan("bench", {}, nullptr, request);
  const double cold = ms_since(t0);
  if (!first || first->size() != 4) die("plan: " + (first ? std::string("not 4 GPUs") : first.error().to_string()));
  std::vector<double> times;
  for (int r = 0; r < runs; ++r) {
    t0 = Clock::now();
    auto picked = host_devices.plan("bench", {}, nullptr, request);
    times.push_back(ms_since(t0));
    if (!picked || picked->size() != 4) die("plan: not 4 GPUs");
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  const double p95 = times[std::min(times.size() - 1, static_cast<size_t>(times.size() * 0.95))];
  std::printf("placing 4 GPUs by count on a %d-function host with %d GPUs (%d held), HostDevices::plan:\n",
              devices, gpus, gpus / 4 / 4 * 4);
  std::printf("  first pick (static facts cached by the holds) %.1f ms; then %d runs: median %.1f ms, p95 %.1f ms\n", cold, runs, median, p95);
  std::printf("  picked:");
  for (const auto& gpu : *first) std::printf(" %s (node %d)", gpu.request.address.to_string().c_str(), gpu.numa_node);
  std::printf("\n  target: median < 10 ms: %s\n", median < 10 ? "MET" : "MISSED");
  return 0;
}
