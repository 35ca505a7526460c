#pragma once
// Small helpers for the adapter's unix-socket clients (QMP, serial console). Internal to vmm/qemu.
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "common/error.h"

namespace feos::vmm::qemu {

// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Connects a non-blocking stream socket to `path`, retrying while the socket does not exist yet
// or refuses (the server is still starting) until `timeout` passes or `keep_trying` (if set)
// returns false.
// Errors: INVALID_ARGUMENT if `path` is too long for a unix socket; DEADLINE_EXCEEDED when the
// time ran out; UNAVAILABLE when keep_trying gave up or on any other connect error (errno text).
Result<UniqueFd> connect_unix(const std::string& path, std::chrono::milliseconds timeout,
                              const std::function<bool()>& keep_trying = {});

// Writes all of `data` to the non-blocking socket `fd`, waiting for buffer space for at most
// `timeout` in total. Errors: DEADLINE_EXCEEDED, UNAVAILABLE (peer gone, errno text). `what`
// names the socket in messages.
Status write_all(int fd, std::string_view data, std::chrono::milliseconds timeout,
                 const std::string& what);

}  // namespace feos::vmm::qemu
