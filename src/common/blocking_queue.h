#pragma once
// A queue between a producer thread and one consumer that waits with a deadline: a gRPC stream
// reader feeding a command loop, or an event callback feeding a streaming handler. The consumer
// takes everything queued at once, so a burst costs one wake-up.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

namespace feos {

template <typename T>
class BlockingQueue {
 public:
  using Clock = std::chrono::steady_clock;

  // What a take hands out: the items queued so far, oldest first, and whether close() was called
  // (then no item follows the ones handed out).
  struct Taken {
    std::deque<T> items;
    bool closed = false;
  };

  // Appends `item` and wakes the consumer.
  void push(T item) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(item));
    }
    ready_.notify_one();
  }

  // Marks the end of the items and wakes the consumer.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    ready_.notify_one();
  }

  // Waits until an item is queued, the queue is closed or `deadline` has passed
  // (Clock::time_point::max(): no deadline), then takes every queued item (none on a timeout).
  Taken take_until(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    ready_.wait_until(lock, deadline, [&] { return !items_.empty() || closed_; });
    Taken taken;
    taken.items.swap(items_);
    taken.closed = closed_;
    return taken;
  }

  // take_until(now + timeout).
  Taken take_for(std::chrono::milliseconds timeout) { return take_until(Clock::now() + timeout); }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<T> items_;
  bool closed_ = false;
};

}  // namespace feos
