#include "vmm/qemu/unix_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <thread>

namespace feos::vmm::qemu {

using Clock = std::chrono::steady_clock;

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Result<UniqueFd> connect_unix(const std::string& path, std::chrono::milliseconds timeout,
                              const std::function<bool()>& keep_trying) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return fail(Code::kInvalidArgument, "unix socket path " + path + " is longer than " +
                                            std::to_string(sizeof addr.sun_path - 1) + " bytes");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  auto deadline = Clock::now() + timeout;
  while (true) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return fail_errno("socket for " + path, errno);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      int flags = ::fcntl(fd.get(), F_GETFL);
      if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0)
        return fail_errno("set O_NONBLOCK on " + path, errno);
      return fd;
    }
    int err = errno;
    if (err != ENOENT && err != ECONNREFUSED && err != EAGAIN && err != EINTR)
      return fail_errno("connect to " + path, err, Code::kUnavailable);
    if (keep_trying && !keep_trying())
      return fail(Code::kUnavailable, "connect to " + path + ": gave up (" + std::strerror(err) + ")");
    if (Clock::now() >= deadline)
      return fail(Code::kDeadlineExceeded,
                  "connect to " + path + ": not accepting connections after " +
                      std::to_string(timeout.count()) + " ms (" + std::strerror(err) + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Status write_all(int fd, std::string_view data, std::chrono::milliseconds timeout,
                 const std::string& what) {
  auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      return fail_errno("write to " + what, errno, Code::kUnavailable);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0)
      return fail(Code::kDeadlineExceeded, "write to " + what + ": peer not reading after " +
                                               std::to_string(timeout.count()) + " ms");
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR)
      return fail_errno("poll " + what, errno, Code::kUnavailable);
  }
  return ok();
}

}  // namespace feos::vmm::qemu
