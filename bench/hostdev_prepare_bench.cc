// Benchmark: preparing GPUs for passthrough when each host-driver unbind takes D (fake kernel of
// an HGX H100 host, D = 200 ms by default). Independent IOMMU groups are bound in parallel, so 8
// GPUs should cost about one D. Target: 8 GPUs <= 1.5 x D + 100 ms. Prints 1 and 8 GPUs, and the
// release that gives them back. Usage: hostdev_prepare_bench [D_ms=200] [rounds=3]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "hostdev/host_devices.h"
#include "store/database.h"
#include "support/fake_host.h"
#include "common/log.h"
#include "support/host_builder.h"
#include "support/pci_literals.h"

using Clock = std::chrono::steady_clock;
using namespace feos;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "hostdev_prepare_bench: %s\n", what.c_str());
  std::exit(1);
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  log::set_level("warn");
  int delay_ms = argc > 1 ? std::atoi(argv[1]) : 200;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
  // Without its NVSwitches: one GPU alone is a valid request (the figures stay comparable).
  auto host = test::FakeHost::create(test::without_nvswitches(test::hgx_h100_host()));
  if (!host) die(host.error().to_string());
  test::FakeKernel& kernel = (*host)->kernel();
  // Only the host driver's unbind is slow (as nvidia's is on a real host); vfio-pci's is fast.
  kernel.inject({.op = test::Op::kUnbind, .driver = "nvidia", .fault = test::Fault::delay(std::chrono::milliseconds(delay_ms))});
  kernel.inject({.op = test::Op::kBind, .driver = "nvidia", .fault = test::Fault::delay(std::chrono::milliseconds(delay_ms))});
  auto db = store::Database::open((*host)->root() + "/bench.db");
  if (!db) die(db.error().to_string());
  hostdev::HostDevices devices(kernel, (*host)->paths(), (*db)->ledger(), hostdev::Policy());

  const std::vector<std::string> all = {"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
                                        "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0"};
  std::printf("fake HGX H100 host, host-driver unbind and rebind take D = %d ms each; %d rounds\n", delay_ms, rounds);
  double best8 = 1e9;
  for (size_t n : {size_t{1}, size_t{8}}) {
    std::vector<model::GpuSpec> gpus;
    for (size_t i = 0; i < n; ++i) gpus.push_back(model::GpuSpec{.address = test::pci_address(all[i])});
    double prepare_sum = 0, release_sum = 0, prepare_best = 1e9;
    for (int r = 0; r < rounds; ++r) {
      auto t0 = Clock::now();
      auto prepared = devices.prepare("bench-vm", gpus);
      double p = ms_since(t0);
      if (!prepared) die(prepared.error().to_string());
      t0 = Clock::now();
      if (auto released = devices.release("bench-vm"); !released) die(released.error().to_string());
      double rel = ms_since(t0);
      prepare_sum += p;
      release_sum += rel;
      prepare_best = std::min(prepare_best, p);
    }
    if (n == 8) best8 = prepare_best;
    std::printf("  %zu GPU%s: prepare mean %.1f ms (best %.1f), release mean %.1f ms\n", n, n == 1 ? " " : "s",
                prepare_sum / rounds, prepare_best, release_sum / rounds);
  }
  double target = 1.5 * delay_ms + 100;
  std::printf("  target: 8 GPUs <= 1.5 x D + 100 ms = %.0f ms: %s (best of %d: %.1f ms)\n", target,
              best8 <= target ? "MET" : "MISSED", rounds, best8);
  return 0;
}
