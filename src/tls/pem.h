#pragma once
// TLS credential files checked with OpenSSL (gRPC's own TLS library) before gRPC gets them: gRPC
// reports a malformed file, or a key that does not belong to its certificate, only as an unusable
// listening port or channel. Used by feosd (--tls-*) and feosctl (--tls-*).
#include <string>
#include <string_view>

#include "common/error.h"

namespace feos::tls {

// `pem` holds at least one certificate and nothing malformed.
// INVALID_ARGUMENT "<what> is not a PEM certificate file: <OpenSSL's reason>".
Status check_certificates(std::string_view pem, const std::string& what);

// `key_pem` is an unencrypted private key (an encrypted one would make OpenSSL prompt) that
// belongs to the first certificate of `cert_pem` (itself checked as above, named `cert_what`).
// INVALID_ARGUMENT "<key_what> is not an unencrypted PEM private key: ..." or "<key_what> does not
// match the certificate in <cert_what>: ...".
Status check_key_pair(std::string_view cert_pem, const std::string& cert_what, std::string_view key_pem,
                      const std::string& key_what);

// Whether the first certificate of `pem` is past its notAfter time (false when it does not parse).
bool first_certificate_expired(std::string_view pem);

}  // namespace feos::tls
