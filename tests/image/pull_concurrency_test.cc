// Pulls in parallel against a real registry behind a throttling, counting proxy
// (test_registry.h, throttle_proxy.py: 4 MiB/s per connection, so a 4 MiB disk is in flight for
// about a second whatever the machine's load). Different images download at the same time; one
// blob that several pulls need is fetched once; each waiter cancels only its own wait; the last
// one stops the download; a failed download fails every waiter and is tried again later.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "image/registry_fixture.h"
#include "image/sha256.h"

namespace feos::image {
namespace {

constexpr uint64_t kRate = 4 << 20;  // bytes per second per connection through the proxy
constexpr size_t kDisk = 4 << 20;

// Orders what the pulls' threads saw: a smaller number happened first.
std::atomic<int> sequence{0};

// One pull in a thread of its own, and what its watch saw.
struct Pull {
  std::atomic<bool> cancel{false};
  std::atomic<uint64_t> received{0};
  std::atomic<int> first_bytes_at{0};  // sequence number of the first progress event
  int finished_at = 0;
  std::optional<Result<PulledImage>> result;
  std::chrono::steady_clock::time_point ended;
  std::thread thread;

  // `on_progress` runs in the pull's thread after each progress event.
  void start(OciImageStore& store, std::string image, std::function<void(Pull&)> on_progress = {}) {
    thread = std::thread([this, &store, image = std::move(image), on_progress = std::move(on_progress)] {
      PullWatch watch;
      watch.cancel = &cancel;
      watch.progress = [&](uint64_t bytes, uint64_t) {
        int unset = 0;
        if (bytes > 0) first_bytes_at.compare_exchange_strong(unset, ++sequence);
        received = bytes;
        if (on_progress) on_progress(*this);
      };
      result = store.pull(image, watch);
      finished_at = ++sequence;
      ended = std::chrono::steady_clock::now();
    });
  }
  // A test that failed halfway leaves no thread running.
  ~Pull() {
    if (!thread.joinable()) return;
    cancel = true;
    thread.join();
  }
  void join() { thread.join(); }
  // Waits (up to 10 s) until bytes of the disk arrived.
  bool wait_for_bytes() const {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (received == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return received > 0;
  }
};

uint64_t blobs_bytes(const std::string& cache_dir) {
  uint64_t total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(cache_dir + "/blobs/sha256")) total += entry.file_size();
  return total;
}

class PullConcurrencyTest : public RegistryTest {
 protected:
  void SetUp() override {
    RegistryTest::SetUp();
    if (IsSkipped()) return;
    std::filesystem::create_directories(dir_ / "proxy");
    proxy_ = std::make_unique<test::ThrottleProxy>(dir_ / "proxy", *registry_, kRate);
  }
  ImageStoreOptions proxied_options() {
    ImageStoreOptions options = store_options();
    options.registry.insecure_registries = {proxy_->host()};
    return options;
  }
  std::string via_proxy(const std::string& rest) const { return proxy_->host() + "/" + rest; }
  // feos/a:v1 and feos/b:v1 through the proxy at the same time, until both ended.
  void pull_both(OciImageStore& store, Pull& a, Pull& b) const {
    a.start(store, via_proxy("feos/a:v1"));
    b.start(store, via_proxy("feos/b:v1"));
    a.join();
    b.join();
  }
  size_t requests(const std::string& kind, const std::string& repo, const std::string& digest) const {
    return proxy_->count(kind + " /v2/" + repo + "/blobs/" + digest);
  }
  // Polls `done` for up to 5 s.
  static bool eventually(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return done();
  }

  std::unique_ptr<test::ThrottleProxy> proxy_;
};

TEST_F(PullConcurrencyTest, DifferentImagesDownloadAtTheSameTime) {
  const std::string disk_a = test::random_bytes(kDisk, 11), disk_b = test::random_bytes(kDisk, 12);
  push_feos_image("feos/a", "v1", disk_a);
  push_feos_image("feos/b", "v1", disk_b);
  auto store = open_store(proxied_options());
  Pull a, b;
  const auto start = std::chrono::steady_clock::now();
  pull_both(*store, a, b);
  ASSERT_TRUE(*a.result) << a.result->error().to_string();
  ASSERT_TRUE(*b.result) << b.result->error().to_string();
  EXPECT_EQ(read((*a.result)->disk_path), disk_a);
  EXPECT_EQ(read((*b.result)->disk_path), disk_b);
  EXPECT_EQ((*a.result)->bytes_pulled, kDisk);
  EXPECT_EQ((*b.result)->bytes_pulled, kDisk);
  // Both had bytes before either ended: serialized pulls would give the second none until then.
  ASSERT_GT(a.first_bytes_at, 0);
  ASSERT_GT(b.first_bytes_at, 0);
  EXPECT_LT(a.first_bytes_at, b.finished_at);
  EXPECT_LT(b.first_bytes_at, a.finished_at);
  std::printf("two 4 MiB images at 4 MiB/s each, pulled at once: %.2f s (one alone takes ~1 s)\n",
              std::chrono::duration<double>(std::max(a.ended, b.ended) - start).count());
}

TEST_F(PullConcurrencyTest, OneBlobForTwoVmsIsDownloadedOnce) {
  const std::string disk = test::random_bytes(kDisk, 13);
  push_feos_image("feos/disk", "v1", disk);
  const std::string digest = Sha256::of(disk);
  auto store = open_store(proxied_options());
  Pull first, second;
  first.start(*store, via_proxy("feos/disk:v1"));
  ASSERT_TRUE(first.wait_for_bytes());
  second.start(*store, via_proxy("feos/disk:v1"));  // while the first one's download is in flight
  first.join();
  second.join();
  ASSERT_TRUE(*first.result) << first.result->error().to_string();
  ASSERT_TRUE(*second.result) << second.result->error().to_string();
  EXPECT_EQ(requests("GET", "feos/disk", digest), 1u);
  EXPECT_EQ((*second.result)->disk_path, (*first.result)->disk_path);
  EXPECT_EQ(read((*second.result)->disk_path), disk);
  EXPECT_EQ(second.received, kDisk) << "the waiter's own watch follows the shared download";
  EXPECT_EQ((*second.result)->bytes_pulled, kDisk) << "its disk came from the registry, not the cache";
  // Each VM its own disk over the one download.
  for (const auto& [vm, pull] : {std::pair{"0b9d3f0e-5a43-4a55-9c47-2f0e6f7e1a11", &first},
                                 std::pair{"0b9d3f0e-5a43-4a55-9c47-2f0e6f7e1a12", &second}}) {
    auto overlay = store->attach(vm, **pull->result);
    ASSERT_TRUE(overlay) << overlay.error().to_string();
    EXPECT_TRUE(std::filesystem::exists(*overlay));
  }
  EXPECT_EQ(requests("GET", "feos/disk", digest), 1u);
}

TEST_F(PullConcurrencyTest, CancellingOneWaiterLeavesTheOtherPullWhole) {
  const std::string disk = test::random_bytes(kDisk, 14);
  push_feos_image("feos/disk", "v1", disk);
  const std::string digest = Sha256::of(disk);
  auto store = open_store(proxied_options());
  Pull first, second;
  std::chrono::steady_clock::time_point cancelled;
  first.start(*store, via_proxy("feos/disk:v1"));
  ASSERT_TRUE(first.wait_for_bytes());
  // The second one gives up as soon as it follows the download (its VM deleted).
  second.start(*store, via_proxy("feos/disk:v1"), [&](Pull& self) {
    if (self.received > 0 && !self.cancel) {
      cancelled = std::chrono::steady_clock::now();
      self.cancel = true;
    }
  });
  second.join();
  ASSERT_FALSE(*second.result);
  EXPECT_EQ(second.result->error().code, Code::kCancelled) << second.result->error().to_string();
  EXPECT_LT(second.ended - cancelled, std::chrono::milliseconds(800)) << "a waiter stops waiting at once";
  first.join();
  ASSERT_TRUE(*first.result) << first.result->error().to_string();
  EXPECT_EQ((*first.result)->bytes_pulled, kDisk);
  EXPECT_EQ(read((*first.result)->disk_path), disk);
  EXPECT_EQ(requests("GET", "feos/disk", digest), 1u);
  EXPECT_EQ(requests("END", "feos/disk", digest), 1u);
  EXPECT_EQ(requests("ABORT", "feos/disk", digest), 0u);
}

TEST_F(PullConcurrencyTest, CancellingTheOnlyWaiterStopsTheDownloadAndCachesNothing) {
  const std::string disk = test::random_bytes(kDisk, 15);
  push_feos_image("feos/disk", "v1", disk);
  const std::string digest = Sha256::of(disk);
  const ImageStoreOptions options = proxied_options();
  auto store = open_store(options);
  Pull only;
  only.start(*store, via_proxy("feos/disk:v1"), [](Pull& self) { self.cancel = true; });
  only.join();
  ASSERT_FALSE(*only.result);
  EXPECT_EQ(only.result->error().code, Code::kCancelled) << only.result->error().to_string();
  EXPECT_NE(only.result->error().message.find("feos/disk:v1"), std::string::npos) << only.result->error().message;
  // The download stops (the registry sees the client leave) and leaves nothing in tmp/ or blobs/.
  EXPECT_TRUE(eventually([&] { return requests("ABORT", "feos/disk", digest) == 1; }));
  EXPECT_TRUE(eventually([&] { return count_files(options.cache_dir + "/tmp") == 0; }));
  EXPECT_EQ(requests("END", "feos/disk", digest), 0u);
  EXPECT_FALSE(std::filesystem::exists(options.cache_dir + "/blobs/sha256/" + digest.substr(7)));
  // A later pull downloads it again.
  auto again = store->pull(via_proxy("feos/disk:v1"));
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(again->bytes_pulled, kDisk);
  EXPECT_EQ(read(again->disk_path), disk);
  EXPECT_EQ(requests("GET", "feos/disk", digest), 2u);
}

TEST_F(PullConcurrencyTest, AFailedDownloadFailsEveryWaiterAndIsTriedAgain) {
  const std::string disk = test::random_bytes(kDisk, 16);
  const std::string manifest = push_feos_image("feos/disk", "v1", disk);
  const std::string digest = Sha256::of(disk);
  const std::string hex = digest.substr(7);
  {
    std::fstream f(dir_ / "storage" + "/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" + hex + "/data",
                   std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f);
    f.seekp(4096);
    f.write("tampered", 8);
  }
  const ImageStoreOptions options = proxied_options();
  auto store = open_store(options);
  Pull first, same, other;
  first.start(*store, via_proxy("feos/disk:v1"));
  ASSERT_TRUE(first.wait_for_bytes());
  same.start(*store, via_proxy("feos/disk:v1"));
  other.start(*store, via_proxy("feos/disk@" + manifest));  // another reference, the same disk
  first.join();
  same.join();
  other.join();
  for (Pull* pull : {&first, &same, &other}) {
    ASSERT_FALSE(*pull->result);
    EXPECT_EQ(pull->result->error().code, Code::kFailedPrecondition) << pull->result->error().to_string();
    EXPECT_NE(pull->result->error().message.find("digest mismatch"), std::string::npos)
        << pull->result->error().message;
    EXPECT_NE(pull->result->error().message.find("http://" + proxy_->host()), std::string::npos)
        << pull->result->error().message;
  }
  EXPECT_EQ(same.result->error().message, first.result->error().message);
  const std::string& joined = other.result->error().message;
  EXPECT_EQ(joined.rfind("image '" + via_proxy("feos/disk@" + manifest).substr(0, 50), 0), 0u) << joined;
  EXPECT_NE(joined.find("the download for image '" + via_proxy("feos/disk:v1") + "'"), std::string::npos) << joined;
  EXPECT_EQ(requests("GET", "feos/disk", digest), 1u);
  EXPECT_FALSE(std::filesystem::exists(options.cache_dir + "/blobs/sha256/" + hex));
  EXPECT_EQ(count_files(options.cache_dir + "/tmp"), 0u);
  // Not remembered: the next pull asks the registry again.
  auto again = store->pull(via_proxy("feos/disk:v1"));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(requests("GET", "feos/disk", digest), 2u);
}

// Downloads in flight reserve their room: two 2 MiB images pulled at once into a 5 MiB cache that
// holds an unused 2 MiB image evict it, so the limit holds once both landed.
TEST_F(PullConcurrencyTest, ConcurrentPullsKeepTheCacheLimit) {
  const size_t size = 2 << 20;
  const std::string old_disk = test::random_bytes(size, 17);
  push_feos_image("feos/old", "v1", old_disk);
  push_feos_image("feos/a", "v1", test::random_bytes(size, 18));
  push_feos_image("feos/b", "v1", test::random_bytes(size, 19));
  ImageStoreOptions options = proxied_options();
  options.cache_limit_bytes = 5 << 20;
  auto store = open_store(options);
  auto old = store->pull(via_proxy("feos/old:v1"));
  ASSERT_TRUE(old) << old.error().to_string();
  Pull a, b;
  pull_both(*store, a, b);
  ASSERT_TRUE(*a.result) << a.result->error().to_string();
  ASSERT_TRUE(*b.result) << b.result->error().to_string();
  ASSERT_LT(a.first_bytes_at, b.finished_at);  // they overlapped: both made room before either landed
  ASSERT_LT(b.first_bytes_at, a.finished_at);
  EXPECT_LE(blobs_bytes(options.cache_dir), options.cache_limit_bytes);
  EXPECT_FALSE(std::filesystem::exists(old->disk_path)) << "the unused image makes the room";
  EXPECT_TRUE(std::filesystem::exists((*a.result)->disk_path));
  EXPECT_TRUE(std::filesystem::exists((*b.result)->disk_path));
}

}  // namespace
}  // namespace feos::image
