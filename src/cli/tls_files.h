#pragma once
// The --tls-* files of feosctl's command line, read and checked for a PEM block of their kind
// when the command line is parsed (tls/pem.h parses them further before gRPC sees them).
#include <optional>
#include <string>

#include "cli/command_line.h"
#include "common/error.h"

namespace feos::cli {

// The TLS options of --tls-ca, --tls-cert with --tls-key, and --tls-server-name, their files read
// now (relative paths against env.cwd). INVALID_ARGUMENT naming the flag for a file that is empty,
// unreadable or holds no PEM block of its kind, or an empty server name.
Result<TlsOptions> read_tls_options(const std::string& ca, const std::optional<std::string>& cert,
                                    const std::optional<std::string>& key,
                                    const std::optional<std::string>& server_name, const CommandLineEnv& env);

}  // namespace feos::cli
