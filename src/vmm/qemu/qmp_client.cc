#include "vmm/qemu/qmp_client.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

Code code_for_class(const std::string& error_class) {
  if (error_class == "DeviceNotFound") return Code::kNotFound;
  if (error_class == "CommandNotFound") return Code::kUnimplemented;
  return Code::kInternal;
}

}  // namespace

Result<std::unique_ptr<QmpClient>> QmpClient::connect(const std::string& socket_path,
                                                      EventHandler on_event, Options options) {
  auto deadline = Clock::now() + options.connect_timeout;
  auto fd = connect_unix(socket_path, options.connect_timeout, options.keep_trying);
  if (!fd) return fail(fd.error().context("qmp"));
  auto waker = Waker::create();
  if (!waker) return fail(waker.error());

  std::string rest;
  auto line = read_line(fd->get(), deadline, socket_path, rest);
  if (!line) return fail(line.error());
  json greeting = json::parse(*line, nullptr, false);
  if (greeting.is_discarded() || !greeting.is_object() || !greeting.contains("QMP"))
    return fail(Code::kInternal, "qmp " + socket_path + ": not a QMP greeting: " + line->substr(0, 200));
  std::string version;
  try {
    const json& v = greeting["QMP"]["version"]["qemu"];
    version = std::to_string(v.at("major").get<int>()) + "." +
              std::to_string(v.at("minor").get<int>()) + "." +
              std::to_string(v.at("micro").get<int>());
  } catch (const json::exception&) {
    version = "unknown";  // a greeting without a version is still usable
  }

  std::unique_ptr<QmpClient> client(new QmpClient(std::move(*fd), std::move(*waker),
                                                   std::move(on_event), socket_path,
                                                   options.command_timeout));
  client->version_ = std::move(version);
  client->reader_ = std::thread([c = client.get(), rest = std::move(rest)]() mutable {
    c->reader_loop(std::move(rest));
  });
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  auto negotiated = client->execute("qmp_capabilities", nullptr,
                                    std::max(left, std::chrono::milliseconds(1)));
  if (!negotiated) return fail(negotiated.error());
  return client;
}

QmpClient::QmpClient(UniqueFd fd, Waker waker, EventHandler on_event, std::string socket_path,
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
  json message = json::parse(line, nullptr, false);
  if (message.is_discarded() || !message.is_object()) {
    log::get("qemu")->warn("qmp unparsable line socket={} line=\"{}\"", socket_path_,
                           line.substr(0, 200));
    return;
  }
  if (message.contains("event")) {
    if (!on_event_) return;
    QmpEvent event;
    event.name = message["event"].is_string() ? message["event"].get<std::string>() : "";
    event.data = message.value("data", json::object());
    on_event_(event);
    return;
  }
  if (!message.contains("id") || !message["id"].is_number_unsigned()) {
    log::get("qemu")->warn("qmp reply without our id socket={} line=\"{}\"", socket_path_,
                           line.substr(0, 200));
    return;
  }
  std::lock_guard lock(mutex_);
  auto it = pending_.find(message["id"].get<uint64_t>());
  if (it == pending_.end()) return;  // its caller timed out already
  it->second->done = true;
  it->second->reply = std::move(message);
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
  const json& reply = pending->reply;
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

}  // namespace feos::vmm::qemu
