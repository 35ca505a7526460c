#pragma once
// The OCI distribution API's read side over libcurl: a manifest by tag or digest, a blob into a
// file. HTTPS with the system's CAs plus the operator's CA file; plain HTTP only for registries
// the operator lists. Authentication as the registry asks for it in a 401's WWW-Authenticate:
// Bearer (a token from the named realm, anonymous or with the registry's credentials) or Basic
// (the registry's credentials). Every byte is hashed as it arrives and every size is capped.
//
// Messages say what was asked (the caller names the reference and the registry); codes:
//   UNAVAILABLE       no connection, TLS handshake refused, timeouts, HTTP 429 and 5xx
//   UNAUTHENTICATED   the registry wants credentials and none are configured, or refuses them
//   PERMISSION_DENIED HTTP 403
//   NOT_FOUND         HTTP 404 (unknown repository, tag, manifest or blob)
//   FAILED_PRECONDITION a digest that does not match the content, other HTTP errors
//   RESOURCE_EXHAUSTED a manifest or blob larger than its limit
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "image/reference.h"

namespace feos::image {

struct Credentials {
  std::string username;
  std::string password;
};

struct RegistryOptions {
  std::string ca_file;                          // PEM, trusted besides the system's CAs; "" = none
  std::vector<std::string> insecure_registries; // "host[:port]" reached over plain HTTP
  std::map<std::string, Credentials> credentials;  // by "host[:port]" as references name it
  long connect_timeout_s = 10;
  long stall_timeout_s = 30;  // a transfer that moves no byte for this long is given up
  uint64_t max_manifest_bytes = 4 * 1024 * 1024;
};

struct Manifest {
  std::string media_type;  // the response's Content-Type (parameters cut)
  std::string body;
  std::string digest;      // sha256 of body, checked against a pinned digest
};

class RegistryClient {
 public:
  // One client per pull of `ref`: it keeps the token the registry gave for the repository.
  RegistryClient(const RegistryOptions& options, Reference ref);
  ~RegistryClient();

  // Once `*cancel` is set, a request in progress ends CANCELLED (within about a second, also when
  // no byte arrives) and no other starts. `cancel` must outlive the client.
  void set_cancel(const std::atomic<bool>* cancel) { cancel_ = cancel; }

  // "https://host:port" or "http://host:port" (listed insecure).
  const std::string& base_url() const { return base_url_; }

  // The manifest `key` (a tag or "sha256:..."). With a digest key, the body's digest must be it.
  Result<Manifest> manifest(const std::string& key);
  // Streams blob `digest` of `size` bytes into `write` (an error from it aborts the transfer and
  // is returned); the content must be exactly `size` bytes with digest `digest`. Returns the
  // bytes received.
  using Writer = std::function<Status(std::string_view)>;
  Result<uint64_t> blob(const std::string& digest, uint64_t size, const Writer& write);

 private:
  struct Response;
  // GET `url` with the current authorization; on a 401 authenticates as the registry asks and
  // tries once more. 2xx bodies go to `sink`, others into the response (capped) for the message.
  Result<Response> get(const std::string& url, const std::vector<std::string>& headers,
                       const std::function<Status(std::string_view)>& sink);
  Result<Response> perform(const std::string& url, const std::vector<std::string>& headers,
                           const std::function<Status(std::string_view)>& sink, bool allow_http);
  Status authenticate(const std::string& challenge);
  Error http_error(const Response& response, const std::string& what) const;
  Error error(Code code, const std::string& message) const;

  const RegistryOptions& options_;
  Reference ref_;
  bool insecure_ = false;
  std::string base_url_;
  std::string authorization_;  // "Authorization: ..." header or ""
  const std::atomic<bool>* cancel_ = nullptr;
};

// The credentials file (daemon flag --registry-credentials): JSON
//   {"registries": {"registry.example.com": {"username": "u", "password": "p"}, ...}}
// INVALID_ARGUMENT naming the file for anything else; NOT_FOUND / INTERNAL when unreadable.
Result<std::map<std::string, Credentials>> load_credentials(const std::string& path);

}  // namespace feos::image
