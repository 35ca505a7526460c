#include "common/blocking_queue.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace feos {
namespace {

using namespace std::chrono_literals;
using Clock = BlockingQueue<int>::Clock;

TEST(BlockingQueueTest, TakesEverythingQueuedInOrder) {
  BlockingQueue<std::string> queue;
  queue.push("a");
  queue.push("b");
  auto taken = queue.take_for(0ms);
  EXPECT_EQ(taken.items, (std::deque<std::string>{"a", "b"}));
  EXPECT_FALSE(taken.closed);
  EXPECT_TRUE(queue.take_for(0ms).items.empty());
}

TEST(BlockingQueueTest, TimesOutEmptyAndOpen) {
  BlockingQueue<int> queue;
  const Clock::time_point start = Clock::now();
  auto taken = queue.take_for(50ms);
  EXPECT_GE(Clock::now() - start, 50ms);
  EXPECT_TRUE(taken.items.empty());
  EXPECT_FALSE(taken.closed);
}

TEST(BlockingQueueTest, PushWakesAConsumerWithoutDeadline) {
  BlockingQueue<int> queue;
  std::thread producer([&] {
    std::this_thread::sleep_for(20ms);
    queue.push(7);
  });
  auto taken = queue.take_until(Clock::time_point::max());
  producer.join();
  EXPECT_EQ(taken.items, std::deque<int>{7});
  EXPECT_FALSE(taken.closed);
}

TEST(BlockingQueueTest, CloseHandsOutTheLastItemsAndStaysClosed) {
  BlockingQueue<int> queue;
  std::thread producer([&] {
    queue.push(1);
    queue.push(2);
    queue.close();
  });
  producer.join();
  auto taken = queue.take_until(Clock::time_point::max());
  EXPECT_EQ(taken.items, (std::deque<int>{1, 2}));
  EXPECT_TRUE(taken.closed);
  // A closed queue answers at once, however long the deadline.
  const Clock::time_point start = Clock::now();
  taken = queue.take_for(10s);
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_TRUE(taken.items.empty());
  EXPECT_TRUE(taken.closed);
}

TEST(BlockingQueueTest, CloseWakesAWaitingConsumer) {
  BlockingQueue<int> queue;
  std::thread producer([&] {
    std::this_thread::sleep_for(20ms);
    queue.close();
  });
  auto taken = queue.take_until(Clock::time_point::max());
  producer.join();
  EXPECT_TRUE(taken.items.empty());
  EXPECT_TRUE(taken.closed);
}

}  // namespace
}  // namespace feos
