#pragma once
// A tiny QMP server for tests: listens on a unix socket, accepts one client, sends the real
// greeting, and hands each request line to a test-provided function that answers it (or not).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace feos::vmm::qemu::testing {

class FakeQmpServer {
 public:
  using OnRequest = std::function<void(FakeQmpServer& server, const nlohmann::json& request)>;

  FakeQmpServer(std::string path, OnRequest on_request)
      : path_(std::move(path)), on_request_(std::move(on_request)) {}
  ~FakeQmpServer() { stop(); }

  // Binds and listens, then serves one client on a thread.
  void start(std::string greeting = kGreeting) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    ::unlink(path_.c_str());
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 4) != 0)
      throw std::runtime_error("fake qmp: bind/listen " + path_ + ": " + std::strerror(errno));
    thread_ = std::thread([this, greeting] { serve(greeting); });
  }

  // Sends one JSON line to the client (replies, events).
  void send(const nlohmann::json& message) { send_raw(message.dump() + "\r\n"); }
  void send_raw(const std::string& data) {
    std::lock_guard lock(write_mutex_);
    if (client_fd_ >= 0) (void)!::send(client_fd_, data.data(), data.size(), MSG_NOSIGNAL);
  }
  void reply(const nlohmann::json& request, const nlohmann::json& value) {
    send({{"return", value}, {"id", request["id"]}});
  }
  void reply_error(const nlohmann::json& request, const std::string& error_class,
                   const std::string& desc) {
    send({{"error", {{"class", error_class}, {"desc", desc}}}, {"id", request["id"]}});
  }
  void event(const std::string& name, const nlohmann::json& data) {
    nlohmann::json message = {{"event", name},
                              {"timestamp", {{"seconds", 1}, {"microseconds", 2}}}};
    if (!data.is_null()) message["data"] = data;
    send(message);
  }

  // Closes the client connection (the client sees EOF).
  void close_client() {
    std::lock_guard lock(write_mutex_);
    if (client_fd_ >= 0) ::shutdown(client_fd_, SHUT_RDWR);
  }

  void stop() {
    stopping_ = true;
    if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
    close_client();
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
    std::lock_guard lock(write_mutex_);
    if (client_fd_ >= 0) ::close(client_fd_);
    client_fd_ = -1;
  }

  std::vector<nlohmann::json> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  static constexpr const char* kGreeting =
      R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"]}})";

 private:
  void serve(const std::string& greeting) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    {
      std::lock_guard lock(write_mutex_);
      client_fd_ = fd;
    }
    send_raw(greeting + "\r\n");
    std::string buffer;
    char chunk[4096];
    while (!stopping_) {
      ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n <= 0) break;
      buffer.append(chunk, static_cast<size_t>(n));
      size_t newline;
      while ((newline = buffer.find('\n')) != std::string::npos) {
        auto request = nlohmann::json::parse(buffer.substr(0, newline));
        buffer.erase(0, newline + 1);
        {
          std::lock_guard lock(mutex_);
          requests_.push_back(request);
        }
        on_request_(*this, request);
      }
    }
  }

  std::string path_;
  OnRequest on_request_;
  int listen_fd_ = -1;
  int client_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::mutex write_mutex_;
  mutable std::mutex mutex_;
  std::vector<nlohmann::json> requests_;
};

}  // namespace feos::vmm::qemu::testing
