#include "image/blob_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "image/sha256.h"
#include "support/temp_dir.h"

namespace feos::image {
namespace {

class BlobCacheTest : public ::testing::Test {
 protected:
  BlobCache open(uint64_t limit) {
    auto cache = BlobCache::open(dir_ / "cache", limit);
    EXPECT_TRUE(cache) << cache.error().to_string();
    return std::move(*cache);
  }
  // Stores `size` bytes as a blob last used `age` seconds ago; returns its digest.
  std::string add(BlobCache& cache, size_t size, char fill, int age) {
    std::string bytes(size, fill);
    auto temp = cache.create_temp();
    EXPECT_TRUE(temp);
    EXPECT_EQ(::write(temp->second, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ::close(temp->second);
    std::string digest = Sha256::of(bytes);
    EXPECT_TRUE(cache.commit(temp->first, digest));
    auto when = std::filesystem::file_time_type::clock::now() - std::chrono::seconds(age);
    std::filesystem::last_write_time(cache.blob_path(digest), when);
    return digest;
  }
  bool has(const BlobCache& cache, const std::string& digest) {
    return std::filesystem::exists(cache.blob_path(digest));
  }
  test::TempDir dir_;
};

TEST_F(BlobCacheTest, EvictsLeastRecentlyUsedFirst) {
  BlobCache cache = open(1000);
  std::string oldest = add(cache, 300, 'a', 300);
  std::string middle = add(cache, 300, 'b', 200);
  std::string newest = add(cache, 300, 'c', 100);
  EXPECT_EQ(cache.used_bytes(), 900u);
  ASSERT_TRUE(cache.make_room(100, {}));  // fits: nothing goes
  EXPECT_TRUE(has(cache, oldest));
  ASSERT_TRUE(cache.make_room(400, {}));  // 300 must go: the oldest
  EXPECT_FALSE(has(cache, oldest));
  EXPECT_TRUE(has(cache, middle));
  EXPECT_TRUE(has(cache, newest));
}

TEST_F(BlobCacheTest, UseRenewsABlob) {
  BlobCache cache = open(1000);
  std::string oldest = add(cache, 300, 'a', 300);
  std::string middle = add(cache, 300, 'b', 200);
  add(cache, 300, 'c', 100);
  ASSERT_TRUE(cache.find(oldest));  // used now: the middle one is the least recently used
  ASSERT_TRUE(cache.make_room(400, {}));
  EXPECT_TRUE(has(cache, oldest));
  EXPECT_FALSE(has(cache, middle));
}

TEST_F(BlobCacheTest, NeverEvictsAnImageAVmUses) {
  BlobCache cache = open(1000);
  std::string oldest = add(cache, 300, 'a', 300);
  std::string middle = add(cache, 300, 'b', 200);
  std::string newest = add(cache, 300, 'c', 100);
  ASSERT_TRUE(cache.pin("vm-1", oldest));
  ASSERT_TRUE(cache.make_room(400, {newest}));  // `keep` protects too
  EXPECT_TRUE(has(cache, oldest));
  EXPECT_FALSE(has(cache, middle));
  EXPECT_TRUE(has(cache, newest));
  // Pinned and kept blobs hold 600 of 1000 bytes: 500 more cannot fit, and nothing else goes.
  auto full = cache.make_room(500, {newest});
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, Code::kResourceExhausted);
  EXPECT_NE(full.error().message.find("600 bytes held"), std::string::npos) << full.error().message;
  EXPECT_TRUE(has(cache, oldest));
  EXPECT_TRUE(has(cache, newest));
  // Released, the image is evicted like any other.
  ASSERT_TRUE(cache.unpin("vm-1"));
  EXPECT_TRUE(cache.pinned().empty());
  ASSERT_TRUE(cache.make_room(700, {newest}));
  EXPECT_FALSE(has(cache, oldest));
}

// A download in flight is not in blobs/ yet but will be: the room it reserved counts, so the
// limit holds once concurrent downloads land.
TEST_F(BlobCacheTest, DownloadsInFlightKeepTheirRoom) {
  BlobCache cache = open(1000);
  std::string oldest = add(cache, 300, 'a', 300);
  std::string newest = add(cache, 300, 'c', 100);
  ASSERT_TRUE(cache.make_room(300, {}));  // 900 fit without the reservation: nothing goes
  EXPECT_TRUE(has(cache, oldest));
  ASSERT_TRUE(cache.make_room(300, {}, 300));  // 600 + 300 + 300 reserved: the oldest goes
  EXPECT_FALSE(has(cache, oldest));
  EXPECT_TRUE(has(cache, newest));
  auto full = cache.make_room(300, {newest}, 500);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, Code::kResourceExhausted);
  EXPECT_NE(full.error().message.find("500 by downloads in flight"), std::string::npos) << full.error().message;
  EXPECT_TRUE(has(cache, newest));
  // Sums that would overflow do not fit either.
  EXPECT_FALSE(cache.make_room(10, {newest}, UINT64_MAX - 5));
}

TEST_F(BlobCacheTest, PinsSurviveReopenAndTmpIsCleared) {
  std::string digest;
  {
    BlobCache cache = open(1000);
    digest = add(cache, 10, 'a', 0);
    ASSERT_TRUE(cache.pin("vm-1", digest));
    auto left = cache.create_temp();  // an interrupted download
    ASSERT_TRUE(left);
    ::close(left->second);
  }
  BlobCache cache = open(1000);
  EXPECT_EQ(cache.pinned(), std::set<std::string>{digest});
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "cache/tmp"));
  struct stat st {};
  ASSERT_EQ(::stat(cache.blob_path(digest).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);  // a stored blob is read-only
}

}  // namespace
}  // namespace feos::image
