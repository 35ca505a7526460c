// Benchmark: two VMs' image pulls, one after the other vs at the same time, against a real
// registry (docker-registry on localhost, tests/image/test_registry.h) behind a proxy that sends
// each connection at most R MiB/s (a registry behind a link of that speed: pulls are network
// bound, as from a remote registry), then straight over TLS with no limit (bound by this
// machine's CPUs: TLS and sha256). Each measurement starts from an empty cache. Also: two pulls
// of one image at once, and how many times the registry served its disk. Prints medians of R runs.
// Usage: pull_bench [MiB=8] [rate MiB/s=8] [runs=3] [unthrottled MiB=32]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "image/oci_image_store.h"
#include "image/sha256.h"
#include "image/test_registry.h"
#include "support/temp_dir.h"

using Clock = std::chrono::steady_clock;
using namespace feos;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "pull_bench: %s\n", what.c_str());
  std::exit(1);
}

struct Bench {
  test::TempDir dir;
  std::unique_ptr<test::TestRegistry> registry;
  int caches = 0;

  std::string push(const std::string& repo, const std::string& disk) {
    const std::string config = registry->push_blob(repo, "{}");
    const std::string layer = registry->push_blob(repo, disk);
    registry->push_manifest(repo, "v1", "application/vnd.oci.image.manifest.v1+json",
                            test::image_manifest("application/vnd.ironcore.image.config.v1alpha1+json", config,
                                                 {{"application/vnd.ironcore.image.rootfs.v1alpha1.rootfs", layer,
                                                   disk.size()}}));
    return layer;
  }

  // Seconds for pulling `refs` into a new, empty cache: all at once or one after the other.
  double pull(const std::vector<std::string>& refs, bool at_once, const std::string& insecure = "") {
    image::ImageStoreOptions options;
    options.cache_dir = dir / ("cache-" + std::to_string(caches++));
    options.registry.ca_file = registry->ca_file();
    if (!insecure.empty()) options.registry.insecure_registries = {insecure};
    auto store = image::OciImageStore::open(options);
    if (!store) die(store.error().to_string());
    auto one = [&](const std::string& ref) {
      auto pulled = (*store)->pull(ref);
      if (!pulled) die(pulled.error().to_string());
    };
    const auto start = Clock::now();
    if (at_once) {
      std::vector<std::thread> threads;
      for (const auto& ref : refs) threads.emplace_back(one, ref);
      for (auto& thread : threads) thread.join();
    } else {
      for (const auto& ref : refs) one(ref);
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    store->reset();
    std::filesystem::remove_all(options.cache_dir);
    return seconds;
  }
};

double median(int runs, const std::function<double()>& measure) {
  std::vector<double> samples;
  for (int i = 0; i < runs; ++i) samples.push_back(measure());
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  log::set_level("warn");
  const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 8;
  const uint64_t rate_mib = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 8;
  const int runs = argc > 3 ? std::atoi(argv[3]) : 3;
  const size_t direct_mib = argc > 4 ? std::strtoul(argv[4], nullptr, 10) : 32;
  if (::access(test::kRegistryBinary, X_OK) != 0) die(std::string(test::kRegistryBinary) + " missing");
  Bench bench;
  std::filesystem::create_directories(bench.dir / "registry");
  std::filesystem::create_directories(bench.dir / "proxy");
  bench.registry = std::make_unique<test::TestRegistry>(bench.dir / "registry", bench.dir / "storage", true);
  bench.push("bench/a", test::random_bytes(mib << 20, 1));
  bench.push("bench/b", test::random_bytes(mib << 20, 2));
  const std::string shared = bench.push("bench/shared", test::random_bytes(mib << 20, 3));
  test::ThrottleProxy proxy(bench.dir / "proxy", *bench.registry, rate_mib << 20);
  const std::string host = proxy.host();
  const std::vector<std::string> two = {host + "/bench/a:v1", host + "/bench/b:v1"};

  std::printf("image pulls through a registry link of %lu MiB/s per connection, %zu MiB disk each, median of %d:\n",
              static_cast<unsigned long>(rate_mib), mib, runs);
  const double one = median(runs, [&] { return bench.pull({two[0]}, false, host); });
  const double serial = median(runs, [&] { return bench.pull(two, false, host); });
  const double parallel = median(runs, [&] { return bench.pull(two, true, host); });
  std::printf("  one image alone:                       %6.2f s\n", one);
  std::printf("  two images, one after the other:       %6.2f s\n", serial);
  std::printf("  two images at the same time:           %6.2f s (%.2fx faster)\n", parallel, serial / parallel);
  const size_t gets_before = proxy.count("GET /v2/bench/shared/blobs/" + shared);
  const double same = median(runs, [&] {
    return bench.pull({host + "/bench/shared:v1", host + "/bench/shared:v1"}, true, host);
  });
  const size_t gets = proxy.count("GET /v2/bench/shared/blobs/" + shared) - gets_before;
  std::printf("  one image for two VMs at the same time:%6.2f s, its disk served %.1f time(s) per run\n", same,
              static_cast<double>(gets) / runs);

  bench.push("bench/big-a", test::random_bytes(direct_mib << 20, 4));
  bench.push("bench/big-b", test::random_bytes(direct_mib << 20, 5));
  const std::string direct = bench.registry->host();
  const std::vector<std::string> big = {direct + "/bench/big-a:v1", direct + "/bench/big-b:v1"};
  std::printf("image pulls straight over TLS from localhost (no limit: bound by this machine's %u CPUs), "
              "%zu MiB disk each:\n",
              std::thread::hardware_concurrency(), direct_mib);
  const double big_serial = median(runs, [&] { return bench.pull(big, false); });
  const double big_parallel = median(runs, [&] { return bench.pull(big, true); });
  std::printf("  two images, one after the other:       %6.2f s\n", big_serial);
  std::printf("  two images at the same time:           %6.2f s (%.2fx faster)\n", big_parallel,
              big_serial / big_parallel);
  if (gets != static_cast<size_t>(runs)) die("the shared disk was served " + std::to_string(gets) + " times");
  return 0;
}
