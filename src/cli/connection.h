#pragma once
// The channel to feosd: TLS material checked before gRPC sees it, credentials, and the wait for
// the connection with a diagnosis of why it failed, in words a user can act on.
#include <memory>
#include <optional>
#include <string>

#include "cli/command_line.h"
#include "common/error.h"

namespace grpc {
class Channel;
}

namespace feos::cli {

// Keeps gRPC's own log lines off stderr: they would break the one-line error contract.
void silence_grpc_log();

// Parses the TLS material: gRPC reports a malformed key, or a key that does not belong to the
// certificate, only as an unusable channel ("empty address list"). INVALID_ARGUMENT naming the
// flag (--tls-ca, --tls-cert, --tls-key).
Status check_tls(const TlsOptions& tls);

// A channel to global's socket or address (not yet connected): TLS with the client certificate
// when given for global.tls, else plaintext (the Unix socket, or a TCP server that takes
// plaintext; feosd itself never does). Its receive limit fits `gpu list --all` on a large host.
std::shared_ptr<grpc::Channel> make_channel(const GlobalOptions& global);

// Waits until `channel` is ready, for at most global.timeout_s. Fails fast when the first attempt
// fails (no daemon, TLS handshake refused) instead of retrying until the deadline. Returns
// nullopt when connected, else why not: for a Unix socket the connect(2) error (ENOENT: no daemon
// ever listened there; ECONNREFUSED: a stale socket; EACCES: permissions), for TCP gRPC's words
// (refused, handshake failed, certificate not accepted), or "no connection within <n> s".
std::optional<std::string> wait_until_connected(const std::shared_ptr<grpc::Channel>& channel,
                                                const GlobalOptions& global);

}  // namespace feos::cli
