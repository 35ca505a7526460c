#include "cli/terminal.h"

#include <cerrno>

namespace feos::cli {

Result<RawTerminal> RawTerminal::enter(int fd) {
  termios saved{};
  if (tcgetattr(fd, &saved) != 0) return fail_errno("tcgetattr on the console's stdin", errno);
  termios raw = saved;
  cfmakeraw(&raw);
  if (tcsetattr(fd, TCSANOW, &raw) != 0) {
    return fail_errno("tcsetattr (raw mode) on the console's stdin", errno);
  }
  return RawTerminal(fd, saved);
}

RawTerminal::RawTerminal(RawTerminal&& other) noexcept : fd_(other.fd_), saved_(other.saved_) {
  other.active_ = false;
}

RawTerminal::~RawTerminal() {
  if (!active_) return;
  // TCSADRAIN: let the last guest output reach the screen before echo and line editing return.
  tcsetattr(fd_, TCSADRAIN, &saved_);
}

}  // namespace feos::cli
