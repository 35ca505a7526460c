#pragma once
// Wakes a thread that waits in poll() on other descriptors too (a socket, stdin): an eventfd that
// any thread can make readable.
#include "common/error.h"

namespace feos::sys {

class Waker {
 public:
  // INTERNAL with errno text when no eventfd can be created.
  static Result<Waker> create();

  Waker(Waker&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Waker& operator=(Waker&& other) noexcept;
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;
  ~Waker();

  // The descriptor to poll for POLLIN.
  int fd() const { return fd_; }
  // Makes fd() readable until the next drain(). Callable from any thread; async-signal-safe.
  void wake();
  // Takes every wake so far: fd() is no longer readable.
  void drain();

 private:
  explicit Waker(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace feos::sys
