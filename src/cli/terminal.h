#pragma once
// Raw mode for an interactive console session: keys go to the guest unprocessed (Ctrl-C included)
// and the terminal is restored when the session ends.
#include <termios.h>

#include "common/error.h"

namespace feos::cli {

class RawTerminal {
 public:
  // Puts terminal `fd` into raw mode (cfmakeraw). INTERNAL with errno text if its attributes
  // cannot be read or set. Precondition: isatty(fd).
  static Result<RawTerminal> enter(int fd);

  RawTerminal(RawTerminal&& other) noexcept;
  RawTerminal& operator=(RawTerminal&&) = delete;
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
  // Restores the attributes saved by enter().
  ~RawTerminal();

 private:
  RawTerminal(int fd, const termios& saved) : fd_(fd), saved_(saved) {}
  int fd_;
  termios saved_;
  bool active_ = true;  // false once moved from
};

}  // namespace feos::cli
