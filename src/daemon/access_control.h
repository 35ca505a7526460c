#pragma once
// Who may reach feosd's API. The unix socket is 0600 (feosd's user, root) or 0660 owned by
// root:--socket-group; TCP with TLS and a client certificate signed by --tls-client-ca; plaintext
// TCP only on a loopback address, as an opt-in for FeOS's clients (--listen-plaintext).
// (tests/process/access_control_test.sh)
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include <grpcpp/security/server_credentials.h>

#include "common/error.h"

namespace feos::daemon {

// The gid of group `name`. INVALID_ARGUMENT when there is no such group.
Result<gid_t> resolve_group(const std::string& name);

// Before binding: the socket's directory is created 0755 when missing, and an existing one must be
// owned by root or feosd's user and not group/world-writable unless sticky. What is at the path
// may only be a stale socket (removed here): never a symbolic link, a file of another kind, or a
// socket someone still listens on. FAILED_PRECONDITION naming the problem otherwise.
Status prepare_socket_path(const std::string& socket);

// After binding (under umask 0177: the socket is born 0600): gives it to `group` with mode 0660,
// then checks with lstat that the path is that socket with exactly the expected owner, group and
// mode. INTERNAL if anything differs.
Status secure_socket(const std::string& socket, std::optional<gid_t> group);

// The address for --listen-plaintext: FeOS's clients dial plaintext TCP (port 1337 by default),
// so feosd may serve that, but only on a loopback address: "127.x.y.z:PORT", "[::1]:PORT" or
// "localhost:PORT" (as "127.0.0.1:PORT"). INVALID_ARGUMENT naming the address otherwise.
Result<std::string> loopback_listen_address(const std::string& host_port);

// gRPC's TLS credentials for --listen: the server presents `cert`/`key` and accepts only clients
// whose certificate `client_ca` verifies. The files are parsed first so that a bad one stops feosd
// at startup with a message naming it. INVALID_ARGUMENT naming the flag and file.
Result<std::shared_ptr<grpc::ServerCredentials>> tls_credentials(const std::string& cert,
                                                                 const std::string& key,
                                                                 const std::string& client_ca);

}  // namespace feos::daemon
