#include "sys/waker.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <thread>
#include <utility>

namespace feos::sys {
namespace {

bool readable(const Waker& waker, int timeout_ms = 0) {
  pollfd p{waker.fd(), POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

TEST(WakerTest, ReadableFromWakeUntilDrain) {
  auto waker = Waker::create();
  ASSERT_TRUE(waker) << waker.error().to_string();
  EXPECT_FALSE(readable(*waker));
  waker->drain();  // nothing to take: returns at once
  waker->wake();
  waker->wake();
  EXPECT_TRUE(readable(*waker));
  waker->drain();  // both wakes at once
  EXPECT_FALSE(readable(*waker));
}

TEST(WakerTest, WakesAPollInAnotherThread) {
  auto waker = Waker::create();
  ASSERT_TRUE(waker);
  std::thread other([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    waker->wake();
  });
  EXPECT_TRUE(readable(*waker, /*timeout_ms=*/10'000));
  other.join();
}

TEST(WakerTest, MovedFromGivesUpItsDescriptor) {
  auto created = Waker::create();
  ASSERT_TRUE(created);
  Waker waker = std::move(*created);
  EXPECT_EQ(created->fd(), -1);
  ASSERT_GE(waker.fd(), 0);
  waker.wake();
  EXPECT_TRUE(readable(waker));
}

}  // namespace
}  // namespace feos::sys
