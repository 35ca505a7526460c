#pragma once
// The gRPC side of feosctl. This header stays free of grpcpp (each translation unit that includes
// grpcpp costs ~17 s to compile); only client.cc includes it.
#include "cli/command_line.h"

namespace feos::cli {

// Connects to feosd at inv.global's socket or address and runs the command: results go to stdout,
// an error as exactly one line "feosctl: error: <CODE>: <message>" to stderr. Returns the exit
// status: kExitOk, kExitServerError (the daemon answered an error, a stream ended early, a wait
// timed out, `host check` reported the host not ready) or kExitUnreachable (no connection within
// the timeout, with a hint naming the socket or address).
int run(const Invocation& inv);

}  // namespace feos::cli
