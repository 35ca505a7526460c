#include "sys/waker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace feos::sys {

Result<Waker> Waker::create() {
  // Non-blocking: drain() on an unwoken waker returns at once.
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return fail_errno("eventfd", errno);
  return Waker(fd);
}

Waker& Waker::operator=(Waker&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

Waker::~Waker() {
  if (fd_ >= 0) ::close(fd_);
}

void Waker::wake() {
  const uint64_t one = 1;
  (void)!::write(fd_, &one, sizeof one);
}

void Waker::drain() {
  uint64_t count;
  (void)!::read(fd_, &count, sizeof count);
}

}  // namespace feos::sys
