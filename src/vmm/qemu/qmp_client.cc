#include "vmm/qemu/qmp_client.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "common/log.h"

namespace feos::vmm::qemu {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// A QMP line is small; anything larger means the peer is not QMP.
constexpr size_t kMaxLine = 16 << 20;

// Reads one line (the greeting) from the non-blocking `fd` before the reader thread starts.
// Bytes after the line stay in `rest`.
Result<std::string> read_line(int fd, Clock::time_point deadline, const std::string& path,
                              std::string& rest) {
  std::string buffer;
  char chunk[4096];
  while (true) {
    auto newline = buffer.find('\n');
    if (newline != std::string::npos) {
      rest = buffer.substr(newline + 1);
      return buffer.substr(0, newline);
    }
    if (buffer.size() > kMaxLine) return fail(Code::kInternal, "qmp " + path + ": greeting too long");
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) {
      buffer.append(chunk, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return fail(Code::kUnavailable, "qmp " + path + ": closed before the greeting");
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return fail_errno("qmp " + path + ": read greeting", errno, Code::kUnavailable);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return fail(Code::kDeadlineExceeded, "qmp " + path + ": no greeting in time");
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
}

// Parses one QMP line; discarded when it is not JSON or nests deeper than kMaxQmpNesting. The
// parser itself is iterative at any depth; the callback sees each value's depth.
json parse_line(std::string_view line) {
  bool too_deep = false;
  json parsed = json::parse(
      line,
      [&too_deep](int depth, json::parse_event_t, json&) {
        if (depth >= kMaxQmpNesting) too_deep = true;
        return !too_deep;
      },
      false);
  if (too_deep) return json(json::value_t::discarded);
  return parsed;
}

Code code_for_class(const std::string& error_class) {
  if (error_class == "DeviceNotFound") return Code::kNotFound;
  if (error_class == "CommandNotFound") return Code::kUnimplemented;
  return Code::kInternal;
}

}  // namespace

QmpMessage parse_qmp_message(std::string_view line) {
  QmpMessage out;
  json message = parse_line(line);
  if (message.is_discarded() || !message.is_object()) return out;
  if (message.contains("event")) {
    out.kind = QmpMessage::Kind::kEvent;
    out.event.name = message["event"].is_string() ? message["event"].get<std::string>() : "";
    out.event.data = message.value("data", json::object());
    return out;
  }
  if (!message.contains("id") || !message["id"].is_number_unsigned()) {
    out.kind = QmpMessage::Kind::kUnmatched;
    return out;
  }
  out.kind = QmpMessage::Kind::kReply;
  out.id = message["id"].get<uint64_t>();
  out.body = std::move(message);
  return out;
}

std::optional<std::string> qmp_version_string(const json& qemu) {
  if (!qemu.is_object()) return std::nullopt;
  std::string out;
  for (const char* key : {"major", "minor", "micro"}) {
    auto it = qemu.find(key);
    if (it == qemu.end() || !it->is_number_integer() || it->get<int64_t>() < 0 ||
        it->get<int64_t>() > std::numeric_limits<int>::max())
      return std::nullopt;
    if (!out.empty()) out += ".";
    out += std::to_string(it->get<int64_t>());
  }
  return out;
}

Result<std::string> parse_qmp_greeting(std::string_view line) {
  json greeting = parse_line(line);
  if (greeting.is_discarded() || !greeting.is_object() || !greeting.contains("QMP"))
    return fail(Code::kInternal, "not a QMP greeting: " + std::string(line.substr(0, 200)));
  const json* qemu = &greeting;
  for (const char* key : {"QMP", "version", "qemu"}) {
    auto it = qemu->is_object() ? qemu->find(key) : qemu->end();
    if (it == qemu->end()) return std::string("unknown");  // still a usable greeting
    qemu = &*it;
  }
  return qmp_version_string(*qemu).value_or("unknown");
}

Result<json> qmp_reply_result(const std::string& command, const json& reply) {
  if (reply.contains("error")) {
    const json& error = reply["error"];
    std::string error_class = "GenericError";
    std::string desc = error.dump();
    if (error.is_object() && error.contains("class") && error["class"].is_string())
      error_class = error["class"].get<std::string>();
    if (error.is_object() && error.contains("desc") && error["desc"].is_string())
      desc = error["desc"].get<std::string>();
    return fail(code_for_class(error_class), "qmp " + command + ": " + desc + " (" + error_class + ")");
  }
  return reply.value("return", json::object());
}

Result<std::unique_ptr<QmpClient>> QmpClient::connect(const std::string& socket_path,
                                                      EventHandler on_event, Options options) {
  auto deadline = Clock::now() + options.connect_timeout;
  auto fd = connect_unix(socket_path, options.connect_timeout, options.keep_trying);
  if (!fd) return fail(fd.error().context("qmp"));
  auto waker = sys::Waker::create();
  if (!waker) return fail(waker.error());

  std::string rest;
  auto line = read_line(fd->get(), deadline, socket_path, rest);
  if (!line) return fail(line.error());
  auto version = parse_qmp_greeting(*line);
  if (!version) return fail(version.error().context("qmp " + socket_path));

  std::unique_ptr<QmpClient> client(new QmpClient(std::move(*fd), std::move(*waker),
                                                   std::move(on_event), socket_path,
                                                   options.command_timeout));
  client->version_ = std::move(*version);
  client->reader_ = std::thread([c = client.get(), rest = std::move(rest)]() mutable {
    c->reader_loop(std::move(rest));
  });
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  auto negotiated = client->execute("qmp_capabilities", nullptr,
                                    std::max(left, std::chrono::milliseconds(1)));
  if (!negotiated) return fail(negotiated.error());
  return client;
}

QmpClient::QmpClient(UniqueFd fd, sys::Waker waker, EventHandler on_event, std::string socket_path,
                     std::chrono::milliseconds command_timeout)
    : fd_(std::move(fd)),
      waker_(std::move(waker)),
      on_event_(std::move(on_event)),
      socket_path_(std::move(socket_path)),
      command_timeout_(command_timeout) {}

QmpClient::~QmpClient() { close(); }

void QmpClient::close() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  waker_.wake();
  if (reader_.joinable()) {
    if (reader_.get_id() == std::this_thread::get_id()) {
      reader_.detach();  // misuse from the handler: the loop ends after it returns
      return;
    }
    reader_.join();
  }
  std::lock_guard write_lock(write_mutex_);
  fd_.reset();
}

bool QmpClient::is_closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

bool QmpClient::wait_closed(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, timeout, [&] { return closed_; });
}

void QmpClient::reader_loop(std::string buffer) {
  auto logger = log::get("qemu");
  char chunk[65536];
  std::string end_reason = "closed by qemu";
  while (true) {
    size_t newline;
    while ((newline = buffer.find('\n')) != std::string::npos) {
      std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      handle_line(line);
    }
    if (buffer.size() > kMaxLine) {
      end_reason = "line longer than " + std::to_string(kMaxLine) + " bytes";
      break;
    }
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        end_reason = "closed by the client";
        break;
      }
    }
    pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {waker_.fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      end_reason = std::string("poll: ") + std::strerror(errno);
      break;
    }
    if (fds[1].revents != 0) waker_.drain();
    if (fds[0].revents == 0) continue;
    ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
    if (n > 0) {
      buffer.append(chunk, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) end_reason = std::string("read: ") + std::strerror(errno);
    break;
  }
  logger->debug("qmp connection ended socket={} reason=\"{}\"", socket_path_, end_reason);
  std::lock_guard lock(mutex_);
  closed_ = true;
  for (auto& [id, pending] : pending_) {
    if (!pending->done) {
      pending->done = true;
      pending->failure = end_reason;
    }
  }
  cv_.notify_all();
}

void QmpClient::handle_line(const std::string& line) {
  try {
    dispatch(line);
  } catch (const nlohmann::json::exception& e) {
    // Well-formed JSON of an unexpected shape: skip it rather than end the connection.
    log::get("qemu")->warn("qmp unexpected message socket={} error=\"{}\" line=\"{}\"",
                           socket_path_, e.what(), line.substr(0, 200));
  }
}

void QmpClient::dispatch(const std::string& line) {
  QmpMessage message = parse_qmp_message(line);
  switch (message.kind) {
    case QmpMessage::Kind::kUnparsable:
      log::get("qemu")->warn("qmp unparsable line socket={} line=\"{}\"", socket_path_,
                             line.substr(0, 200));
      return;
    case QmpMessage::Kind::kEvent:
      if (on_event_) on_event_(message.event);
      return;
    case QmpMessage::Kind::kUnmatched:
      log::get("qemu")->warn("qmp reply without our id socket={} line=\"{}\"", socket_path_,
                             line.substr(0, 200));
      return;
    case QmpMessage::Kind::kReply:
      break;
  }
  std::lock_guard lock(mutex_);
  auto it = pending_.find(message.id);
  if (it == pending_.end()) return;  // its caller timed out already
  it->second->done = true;
  it->second->reply = std::move(message.body);
  cv_.notify_all();
}

Result<json> QmpClient::execute(const std::string& command, const json& arguments) {
  return execute(command, arguments, command_timeout_);
}

Result<json> QmpClient::execute(const std::string& command, const json& arguments,
                                std::chrono::milliseconds timeout) {
  if (reader_.get_id() == std::this_thread::get_id())
    return fail(Code::kFailedPrecondition,
                "qmp " + command + ": cannot run a command from the event handler");
  auto deadline = Clock::now() + timeout;
  auto pending = std::make_shared<Pending>();
  uint64_t id;
  {
    std::lock_guard lock(mutex_);
    if (closed_ || stopping_)
      return fail(Code::kUnavailable, "qmp " + command + ": connection to " + socket_path_ + " is closed");
    id = next_id_++;
    pending_[id] = pending;
  }
  auto forget = [&] {
    std::lock_guard lock(mutex_);
    pending_.erase(id);
  };
  json request = {{"execute", command}, {"id", id}};
  if (!arguments.is_null()) request["arguments"] = arguments;
  {
    std::lock_guard write_lock(write_mutex_);
    Status written = fd_ ? write_all(fd_.get(), request.dump() + "\n", timeout, "qmp " + socket_path_)
                         : fail(Code::kUnavailable, "qmp " + socket_path_ + " is closed");
    if (!written) {
      forget();
      return fail(written.error().context("qmp " + command));
    }
  }
  std::unique_lock lock(mutex_);
  bool done = cv_.wait_until(lock, deadline, [&] { return pending->done; });
  pending_.erase(id);
  if (!done)
    return fail(Code::kDeadlineExceeded,
                "qmp " + command + ": no reply within " + std::to_string(timeout.count()) + " ms");
  if (!pending->failure.empty())
    return fail(Code::kUnavailable,
                "qmp " + command + ": connection ended before the reply (" + pending->failure + ")");
  return qmp_reply_result(command, pending->reply);
}

}  // namespace feos::vmm::qemu
