#pragma once
// The gRPC side of feosctl. This header stays free of grpcpp (each translation unit that includes
// grpcpp costs ~17 s to compile); only the client's own files include it: client.cc (dispatch and
// the unary calls), connection.cc, events_command.cc, console_command.cc and output.cc.
#include "cli/command_line.h"

namespace feos::cli {

// Connects to feosd at inv.global's socket or address and runs the command: results go to stdout,
// an error as exactly one line "feosctl: error: <CODE>: <message>" to stderr. Returns the exit
// status: kExitOk, kExitServerError (the daemon answered an error, a stream ended early, a wait
// timed out, `host check` reported the host not ready) or kExitUnreachable (no connection within
// the timeout, refused, or a failed TLS handshake in gRPC's words; with a hint naming the socket
// or address). TCP uses TLS when inv.global.tls is set, plaintext otherwise; TLS material that
// OpenSSL cannot use (malformed, encrypted key, key not of the certificate) is a usage error:
// INVALID_ARGUMENT naming the flag, kExitUsage, nothing sent.
int run(const Invocation& inv);

}  // namespace feos::cli
