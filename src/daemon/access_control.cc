#include "daemon/access_control.h"

#include <arpa/inet.h>

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include <grpcpp/security/server_credentials.h>

#include "common/log.h"
#include "common/parse.h"
#include "sys/filesystem.h"
#include "tls/pem.h"

namespace feos::daemon {
namespace {

// Contents of the PEM file given to `flag`. INVALID_ARGUMENT naming both when it cannot be read.
Result<std::string> read_pem(const feos::sys::Filesystem& fs, const char* flag,
                                   const std::string& path) {
  auto content = fs.read_file(path);
  if (!content)
    return feos::fail(feos::Code::kInvalidArgument, std::string(flag) + ": " + content.error().message);
  return content;
}

}  // namespace

// The gid of group `name`. INVALID_ARGUMENT when there is no such group.
Result<gid_t> resolve_group(const std::string& name) {
  long hint = ::sysconf(_SC_GETGR_R_SIZE_MAX);
  std::vector<char> buffer(hint > 0 ? static_cast<size_t>(hint) : 4096);
  while (true) {
    group entry{};
    group* found = nullptr;
    int rc = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (rc == ERANGE && buffer.size() < (1u << 22)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (rc != 0) return feos::fail_errno("--socket-group: look up group '" + name + "'", rc);
    if (found == nullptr)
      return feos::fail(feos::Code::kInvalidArgument,
                        "--socket-group: no such group '" + name + "'");
    return entry.gr_gid;
  }
}

// The socket's directory must not let another user replace the socket: created 0755 when missing;
// an existing one must be owned by root or feosd's user and not group/world-writable unless sticky.
// What is at the socket path may only be a stale socket (removed here): never a symbolic link, a
// file of another kind, or a socket someone still listens on.
Status prepare_socket_path(const std::string& socket) {
  sockaddr_un addr{};
  if (socket.empty() || socket.size() >= sizeof(addr.sun_path))
    return feos::fail(feos::Code::kInvalidArgument, "--socket: path must be 1 to " +
                                                        std::to_string(sizeof(addr.sun_path) - 1) +
                                                        " bytes: '" + socket + "'");
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::absolute(socket, ec).parent_path();
  if (ec) return feos::fail(feos::Code::kInternal, "--socket " + socket + ": " + ec.message());
  // Create the missing components one by one so each gets exactly 0755, whatever the umask.
  std::vector<std::filesystem::path> missing;
  for (std::filesystem::path p = dir; !p.empty() && ::access(p.c_str(), F_OK) != 0;
       p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.root_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0755) != 0 && errno != EEXIST)
      return feos::fail_errno("create socket directory " + it->string(), errno);
    if (::chmod(it->c_str(), 0755) != 0)
      return feos::fail_errno("chmod 0755 " + it->string(), errno);
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    return feos::fail_errno("stat socket directory " + dir.string(), errno);
  if (!S_ISDIR(st.st_mode))
    return feos::fail(feos::Code::kFailedPrecondition,
                      "socket directory " + dir.string() + " is not a directory");
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    return feos::fail(feos::Code::kFailedPrecondition,
                      "socket directory " + dir.string() + " is owned by uid " +
                          std::to_string(st.st_uid) +
                          ", not root or feosd's user: its owner could replace the socket");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return feos::fail(
        feos::Code::kFailedPrecondition,
        "socket directory " + dir.string() + " (mode " + mode +
            ") is writable by other users and not sticky: they could replace the socket");
  }

  if (::lstat(socket.c_str(), &st) != 0) {
    if (errno == ENOENT) return feos::ok();
    return feos::fail_errno("lstat " + socket, errno);
  }
  if (S_ISLNK(st.st_mode))
    return feos::fail(feos::Code::kFailedPrecondition,
                      "--socket " + socket + " is a symbolic link; refusing to replace it");
  if (!S_ISSOCK(st.st_mode))
    return feos::fail(feos::Code::kFailedPrecondition,
                      "--socket " + socket + " exists and is not a socket; refusing to replace it");
  // A socket: stale (nobody accepts) or another server's. gRPC would silently take over a live one.
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket.c_str(), socket.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return feos::fail_errno("socket(AF_UNIX)", errno);
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::close(fd);
  if (rc == 0)
    return feos::fail(feos::Code::kFailedPrecondition,
                      "another server listens on " + socket + "; refusing to take over its socket");
  if (err != ECONNREFUSED) return feos::fail_errno("probe existing socket " + socket, err);
  if (::unlink(socket.c_str()) != 0 && errno != ENOENT)
    return feos::fail_errno("remove stale socket " + socket, errno);
  return feos::ok();
}

// Gives the freshly bound socket (0600, from the umask at bind time) to `group` with mode 0660,
// then checks with lstat that the path is that socket with exactly the expected owner, group and
// mode. Nothing ever widens access beyond the final mode: the group is set before the group bits.
Status secure_socket(const std::string& socket, std::optional<gid_t> group) {
  mode_t want = group ? 0660 : 0600;
  if (group) {
    if (::lchown(socket.c_str(), static_cast<uid_t>(-1), *group) != 0)
      return feos::fail_errno("chgrp " + std::to_string(*group) + " " + socket, errno);
    if (::fchmodat(AT_FDCWD, socket.c_str(), want, AT_SYMLINK_NOFOLLOW) != 0)
      return feos::fail_errno("chmod 0660 " + socket, errno);
  }
  struct stat st {};
  if (::lstat(socket.c_str(), &st) != 0) return feos::fail_errno("lstat " + socket, errno);
  char found[64];
  std::snprintf(found, sizeof found, "mode %04o uid %u gid %u",
                static_cast<unsigned>(st.st_mode & 07777), static_cast<unsigned>(st.st_uid),
                static_cast<unsigned>(st.st_gid));
  if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != want || st.st_uid != ::geteuid() ||
      (group && st.st_gid != *group))
    return feos::fail(
        feos::Code::kInternal,
        "socket " + socket + " has the wrong type or permissions (" + found + ") after binding");
  return feos::ok();
}

// gRPC's TLS credentials for --listen: the server presents --tls-cert/--tls-key and accepts only
// clients whose certificate --tls-client-ca verifies. The files are parsed here so that a bad one
// stops feosd at startup with a message naming it (gRPC would only fail the listening port).
Result<std::shared_ptr<grpc::ServerCredentials>> tls_credentials(const std::string& cert,
                                                                       const std::string& key,
                                                                       const std::string& client_ca) {
  auto fs = feos::sys::make_posix_filesystem();
  auto cert_pem = read_pem(*fs, "--tls-cert", cert);
  if (!cert_pem) return feos::fail(cert_pem.error());
  auto key_pem = read_pem(*fs, "--tls-key", key);
  if (!key_pem) return feos::fail(key_pem.error());
  auto ca_pem = read_pem(*fs, "--tls-client-ca", client_ca);
  if (!ca_pem) return feos::fail(ca_pem.error());

  FEOS_TRY(feos::tls::check_key_pair(*cert_pem, "--tls-cert " + cert, *key_pem,
                                     "--tls-key: " + key));
  FEOS_TRY(feos::tls::check_certificates(*ca_pem, "--tls-client-ca: " + client_ca));
  if (feos::tls::first_certificate_expired(*cert_pem))
    feos::log::get("feosd")->warn("--tls-cert {} has expired: clients will refuse it",
                                  cert);

  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = std::move(*ca_pem);
  ssl.pem_key_cert_pairs.push_back({std::move(*key_pem), std::move(*cert_pem)});
  return grpc::SslServerCredentials(ssl);
}

Result<std::string> loopback_listen_address(const std::string& host_port) {
  auto refuse = [&](const std::string& why) {
    return fail(Code::kInvalidArgument, "--listen-plaintext " + host_port + ": " + why +
                                            " (plaintext serves only a loopback address: 127.0.0.0/8, [::1] or "
                                            "localhost; use --listen with TLS for others)");
  };
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0) return refuse("expected HOST:PORT");
  const std::string host = host_port.substr(0, colon), port_text = host_port.substr(colon + 1);
  auto port = parse_decimal(port_text, 5);
  if (!port || *port < 1 || *port > 65535) return refuse("bad port");
  if (host == "localhost") return "127.0.0.1:" + port_text;
  if (host == "[::1]") return host_port;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) != 1) return refuse("not a loopback address");
  if ((ntohl(v4.s_addr) >> 24) != 127) return refuse("not a loopback address");
  return host_port;
}

}  // namespace feos::daemon
