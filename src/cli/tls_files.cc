#include "cli/tls_files.h"

#include "cli/requests.h"

namespace feos::cli {
namespace {

// The content of the PEM file given to `flag` (relative paths against `cwd`). INVALID_ARGUMENT
// naming the flag when it is empty, unreadable or lacks a PEM block that ends in `label`
// ("CERTIFICATE", "PRIVATE KEY": also matches "RSA PRIVATE KEY" and "EC PRIVATE KEY").
Result<std::string> read_pem(const std::string& flag, const std::string& path,
                             std::string_view label, const CommandLineEnv& env) {
  if (path.empty()) return fail(Code::kInvalidArgument, flag + ": path must not be empty");
  auto content = env.fs->read_file(absolute_path(path, env.cwd));
  if (!content) {
    return fail(Code::kInvalidArgument,
                flag + ": cannot read '" + path + "': " + content.error().message);
  }
  const std::string end_marker = std::string(label) + "-----";
  size_t begin = content->find("-----BEGIN ");
  if (begin == std::string::npos || content->find(end_marker, begin) == std::string::npos) {
    return fail(Code::kInvalidArgument,
                flag + ": '" + path + "' holds no PEM " + std::string(label) + " block");
  }
  return content;
}

}  // namespace

Result<TlsOptions> read_tls_options(const std::string& ca, const std::optional<std::string>& cert,
                                    const std::optional<std::string>& key,
                                    const std::optional<std::string>& server_name, const CommandLineEnv& env) {
  TlsOptions tls;
  FEOS_ASSIGN_OR_RETURN(tls.ca_pem, read_pem("--tls-ca", ca, "CERTIFICATE", env));
  if (cert) {
    FEOS_ASSIGN_OR_RETURN(tls.cert_pem, read_pem("--tls-cert", *cert, "CERTIFICATE", env));
    FEOS_ASSIGN_OR_RETURN(tls.key_pem, read_pem("--tls-key", key.value_or(""), "PRIVATE KEY", env));
  }
  if (server_name) {
    if (server_name->empty()) return fail(Code::kInvalidArgument, "--tls-server-name: must not be empty");
    tls.server_name = *server_name;
  }
  return tls;
}

}  // namespace feos::cli
