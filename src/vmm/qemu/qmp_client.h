#pragma once
// A client of QEMU's machine protocol (QMP) over a unix socket: one JSON object per line.
// Commands are matched to replies by "id"; asynchronous events (STOP, RESUME, SHUTDOWN,
// POWERDOWN, ...) go to a handler. A reader thread owns all reads; any thread may execute().
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "sys/waker.h"
#include "vmm/qemu/unix_socket.h"

namespace feos::vmm::qemu {

struct QmpEvent {
  std::string name;     // "SHUTDOWN", "STOP", ...
  nlohmann::json data;  // the event's "data" member as sent (an empty object when absent)
};

// What QEMU sends, parsed without the socket (the reader thread and the fuzz targets use these).
// None of them throws.

// QEMU's JSON parser refuses input nested deeper than this (MAX_NESTING in
// qobject/json-streamer.c); lines from QEMU nested deeper are refused here, because copying or
// printing such a value recurses once per level and would overflow the reader thread's stack.
inline constexpr int kMaxQmpNesting = 1024;

// One line from QEMU (without its newline), classified. A line nested deeper than
// kMaxQmpNesting is kUnparsable.
struct QmpMessage {
  enum class Kind {
    kUnparsable,  // not a JSON object
    kEvent,       // has "event": `event` is filled (name "" when it is not a string)
    kReply,       // has an unsigned integer "id": `id` and `body` (the whole object) are filled
    kUnmatched,   // an object that is neither: a reply without an id of ours
  };
  Kind kind = Kind::kUnparsable;
  QmpEvent event;
  uint64_t id = 0;
  nlohmann::json body;
};
QmpMessage parse_qmp_message(std::string_view line);

// "major.minor.micro" from a version object such as the greeting's and query-version's "qemu"
// member ({"major": 7, "minor": 2, "micro": 22}); nullopt unless all three are integers from 0 to
// INT_MAX (a float there must not reach an int conversion: out of range, that is undefined).
std::optional<std::string> qmp_version_string(const nlohmann::json& qemu);

// The greeting line: qemu's version (qmp_version_string of QMP.version.qemu), or "unknown" for a
// greeting without a usable version. INTERNAL "not a QMP greeting: <the line's first 200 bytes>" when the line is
// not a JSON object with a "QMP" member.
Result<std::string> parse_qmp_greeting(std::string_view line);

// The outcome of `command` from its reply: the "return" value (an empty object when absent), or
// qemu's "error" as execute() documents it ("qmp <command>: <desc> (<class>)").
// Precondition: `reply` is an object (the body of a kReply message).
Result<nlohmann::json> qmp_reply_result(const std::string& command, const nlohmann::json& reply);

class QmpClient {
 public:
  // Runs on the reader thread, in the order qemu sent the events. It must not call execute()
  // or destroy the client (execute() from the handler answers FAILED_PRECONDITION).
  using EventHandler = std::function<void(const QmpEvent& event)>;

  struct Options {
    std::chrono::milliseconds connect_timeout{10000};  // socket appears + greeting + capabilities
    std::chrono::milliseconds command_timeout{10000};  // default for execute()
    // Polled while waiting for the socket; returning false stops waiting (e.g. qemu exited).
    std::function<bool()> keep_trying;
  };

  // Connects to `socket_path` (retrying until the server listens), reads the greeting and
  // negotiates capabilities (qmp_capabilities). Events are delivered to `on_event` (may be empty)
  // from then on.
  // Errors: DEADLINE_EXCEEDED when the socket, greeting or negotiation did not come in time;
  // UNAVAILABLE when the connection failed or closed, or keep_trying gave up; INTERNAL for a
  // greeting that is not QMP; INVALID_ARGUMENT for a socket path too long.
  static Result<std::unique_ptr<QmpClient>> connect(const std::string& socket_path,
                                                    EventHandler on_event, Options options);

  // Closes the connection and joins the reader thread. Not from the event handler.
  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Runs `command` with `arguments` (an object, or null for none) and returns its "return" value.
  // Errors: qemu's error reply -> "qmp <command>: <desc> (<class>)" with NOT_FOUND for
  // DeviceNotFound, UNIMPLEMENTED for CommandNotFound, INTERNAL otherwise; DEADLINE_EXCEEDED when
  // no reply came within the timeout (options' command_timeout unless given); UNAVAILABLE when
  // the connection is or becomes closed; FAILED_PRECONDITION when called from the event handler.
  Result<nlohmann::json> execute(const std::string& command,
                                 const nlohmann::json& arguments = nullptr);
  Result<nlohmann::json> execute(const std::string& command, const nlohmann::json& arguments,
                                 std::chrono::milliseconds timeout);

  // The greeting's version, "major.minor.micro" (e.g. "7.2.22").
  const std::string& version() const { return version_; }

  // True once the connection ended (peer closed, error, or close()); every event received
  // before the end has been delivered by then.
  bool is_closed() const;
  // Waits until is_closed(); returns it.
  bool wait_closed(std::chrono::milliseconds timeout) const;

  // Ends the connection and joins the reader; pending commands fail with UNAVAILABLE.
  // Idempotent. Not from the event handler.
  void close();

 private:
  struct Pending {
    bool done = false;
    nlohmann::json reply;
    std::string failure;  // set when the connection ended before the reply
  };

  QmpClient(UniqueFd fd, sys::Waker waker, EventHandler on_event, std::string socket_path,
            std::chrono::milliseconds command_timeout);
  void reader_loop(std::string buffered);
  void handle_line(const std::string& line);
  void dispatch(const std::string& line);

  UniqueFd fd_;
  sys::Waker waker_;
  EventHandler on_event_;
  std::string socket_path_;
  std::chrono::milliseconds command_timeout_;
  std::string version_;

  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  bool closed_ = false;
  bool stopping_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::shared_ptr<Pending>> pending_;

  std::mutex write_mutex_;  // one writer at a time; guards fd_ against close()
  std::thread reader_;
};

}  // namespace feos::vmm::qemu
