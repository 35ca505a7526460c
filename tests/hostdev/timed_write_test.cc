#include "hostdev/timed_write.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

namespace feos::hostdev {
namespace {

using namespace std::chrono_literals;

// A filesystem whose writes block until released; counts writes still inside write_file.
class BlockingFs final : public sys::Filesystem {
 public:
  ~BlockingFs() override {
    release();
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return inside_ == 0; });
  }
  Result<std::string> read_file(const std::string&) const override { return std::string(); }
  Status write_file(const std::string& path, std::string_view data) override {
    std::unique_lock lock(mu_);
    ++inside_;
    last_ = path + "=" + std::string(data);
    cv_.wait(lock, [&] { return released_ || !block_; });
    --inside_;
    cv_.notify_all();
    if (fail_) return fail(Code::kFailedPrecondition, "write " + path + ": Device or resource busy");
    return ok();
  }
  Result<std::vector<std::string>> list_dir(const std::string&) const override { return std::vector<std::string>(); }
  Result<std::string> read_link(const std::string& p) const override { return fail(Code::kNotFound, p); }
  bool exists(const std::string&) const override { return false; }

  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  int inside() {
    std::lock_guard lock(mu_);
    return inside_;
  }
  bool block_ = true;
  bool fail_ = false;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  int inside_ = 0;
  std::string last_;
};

TEST(TimedWriteTest, HungWriteTimesOutNamingTheStep) {
  BlockingFs fs;
  const auto start = std::chrono::steady_clock::now();
  Status st = timed_write(fs, "/sys/bus/pci/drivers/nvidia/unbind", "0000:18:00.0",
                          "vm a: 0000:18:00.0: unbind from nvidia", 100ms);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Code::kDeadlineExceeded);
  EXPECT_EQ(st.error().message,
            "vm a: 0000:18:00.0: unbind from nvidia: write of '0000:18:00.0' to "
            "/sys/bus/pci/drivers/nvidia/unbind did not return within 100 ms (the kernel is still "
            "blocked in it; the writing thread was left behind)");
  EXPECT_GE(took, 100ms);
  EXPECT_LT(took, 1000ms);
  EXPECT_EQ(fs.inside(), 1) << "the write is still blocked, on its own thread";
  fs.release();  // the late write returns; its thread exits on its own
  for (int i = 0; i < 200 && fs.inside() != 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(fs.inside(), 0);
}

TEST(TimedWriteTest, ReturnsResultWithContext) {
  BlockingFs fs;
  fs.block_ = false;
  EXPECT_TRUE(timed_write(fs, "/x/driver_override", "vfio-pci", "set override", 1000ms));
  fs.fail_ = true;
  Status st = timed_write(fs, "/x/unbind", "0000:18:00.0", "0000:18:00.0: unbind from nvidia", 1000ms);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(st.error().message,
            "0000:18:00.0: unbind from nvidia: write /x/unbind: Device or resource busy");
}

}  // namespace
}  // namespace feos::hostdev
