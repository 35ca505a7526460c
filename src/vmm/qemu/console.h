#pragma once
// The serial console of a qemu guest: the adapter's single connection to qemu's console socket.
// A reader thread keeps the most recent output, appends everything to a log file, and fans the
// output out to subscribers (each gets the retained output first, then live output).
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"
#include "vmm/hypervisor.h"

namespace feos::vmm::qemu {

class QemuConsole final : public Console {
 public:
  static constexpr size_t kDefaultRetainBytes = 64 * 1024;

  struct Options {
    std::chrono::milliseconds connect_timeout{10000};
    std::function<bool()> keep_trying;  // see connect_unix()
    size_t retain_bytes = kDefaultRetainBytes;
    std::chrono::milliseconds write_timeout{5000};
  };

  // Connects to qemu's console socket at `socket_path`, opens `log_path` for appending (created
  // 0640 if absent) and starts the reader thread. `vm_id` names the VM in messages and logs.
  // Errors: those of connect_unix(); INTERNAL with errno text when the log cannot be opened.
  static Result<std::shared_ptr<QemuConsole>> open(const std::string& vm_id,
                                                   const std::string& socket_path,
                                                   const std::string& log_path, Options options);

  // Closes the connection (see close()) when the last reference goes.
  ~QemuConsole() override;
  QemuConsole(const QemuConsole&) = delete;
  QemuConsole& operator=(const QemuConsole&) = delete;

  // Console interface (see vmm/hypervisor.h). Callbacks run on the reader thread; on a console
  // that is already closed, subscribe() delivers the retained output and on_closed on the
  // calling thread before it returns. After unsubscribe() returns (from any thread other than
  // the reader), the subscriber's callbacks no longer run.
  int subscribe(OnOutput on_output, OnClosed on_closed) override;
  void unsubscribe(int token) override;
  // UNAVAILABLE if closed or qemu stopped reading; DEADLINE_EXCEEDED after write_timeout.
  Status write(std::string_view input) override;

  // Disconnects; every subscriber's on_closed runs once. Idempotent. Returns after the reader
  // finished, except when called from a callback (the reader finishes right after it).
  void close();
  bool is_closed() const;
  // The retained output (the last retain_bytes bytes).
  std::string recent_output() const;

  struct State;  // shared with the reader thread, which outlives a close() from a callback

 private:
  explicit QemuConsole(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace feos::vmm::qemu
