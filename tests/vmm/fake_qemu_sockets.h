#pragma once
// What a qemu would serve in its runtime dir, for tests without qemu: QMP (answering what start()
// and adopt() ask: query-status "running", an empty return for anything else) and a console
// socket that accepts.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "fake_qmp_server.h"

namespace feos::vmm::qemu::testing {

struct FakeQemuSockets {
  explicit FakeQemuSockets(const std::string& dir,
                           FakeQmpServer::OnRequest on_request = answer_like_qemu)
      : qmp(dir + "/qmp.sock", std::move(on_request)) {
    qmp.start();
    console_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = dir + "/console.sock";
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    ::unlink(path.c_str());
    if (::bind(console_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(console_fd, 4) != 0)
      throw std::runtime_error("console socket " + path + ": " + std::strerror(errno));
  }
  ~FakeQemuSockets() {
    qmp.stop();
    ::close(console_fd);
  }
  static void answer_like_qemu(FakeQmpServer& server, const nlohmann::json& request) {
    std::string command = request["execute"];
    if (command == "query-status")
      return server.reply(request, {{"status", "running"}, {"running", true}});
    server.reply(request, nlohmann::json::object());  // qmp_capabilities, cont, quit, ...
  }
  FakeQmpServer qmp;
  int console_fd = -1;
};

}  // namespace feos::vmm::qemu::testing
