#include "image/registry_client.h"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <nlohmann/json.hpp>

#include "image/sha256.h"

namespace feos::image {
namespace {

constexpr size_t kMaxErrorBody = 16 * 1024;
constexpr const char* kManifestTypes =
    "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
    "application/vnd.ironcore.image.artifacts.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json";

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return "";
  size_t end = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(begin, end - begin + 1));
}

// The parameters of a challenge: `Bearer realm="...",service="...",scope="..."`.
std::map<std::string, std::string> challenge_params(std::string_view text) {
  std::map<std::string, std::string> out;
  size_t i = text.find(' ');
  while (i != std::string_view::npos && i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',')) ++i;
    size_t eq = text.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string key = lower(trim(text.substr(i, eq - i)));
    std::string value;
    i = eq + 1;
    if (i < text.size() && text[i] == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\' && i + 1 < text.size()) ++i;
        value += text[i];
      }
      ++i;
    } else {
      size_t end = text.find(',', i);
      value = trim(text.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i));
      i = end;
    }
    out[key] = value;
  }
  return out;
}

std::string url_escape(CURL* curl, const std::string& text) {
  char* escaped = curl_easy_escape(curl, text.c_str(), static_cast<int>(text.size()));
  std::string out = escaped ? escaped : "";
  curl_free(escaped);
  return out;
}

// Adds the operator's CA to the CAs curl loaded from the system (CURLOPT_CAINFO would replace them).
CURLcode add_operator_ca(CURL*, void* ssl_ctx, void* ca_file) {
  X509_STORE* store = SSL_CTX_get_cert_store(static_cast<SSL_CTX*>(ssl_ctx));
  return X509_STORE_load_file(store, static_cast<const char*>(ca_file)) == 1 ? CURLE_OK
                                                                              : CURLE_SSL_CACERT_BADFILE;
}

Code code_for_curl(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CACERT_BADFILE:
      return Code::kFailedPrecondition;  // the operator's CA file
    default:
      return Code::kUnavailable;  // resolve, connect, TLS, timeouts, cut transfers
  }
}

}  // namespace

struct RegistryClient::Response {
  long status = 0;
  std::string content_type;
  std::string www_authenticate;
  std::string content_digest;  // Docker-Content-Digest
  std::string error_body;      // a non-2xx body, capped
};

RegistryClient::RegistryClient(const RegistryOptions& options, Reference ref)
    : options_(options), ref_(std::move(ref)) {
  global_init();
  insecure_ = std::find(options_.insecure_registries.begin(), options_.insecure_registries.end(),
                        ref_.registry) != options_.insecure_registries.end();
  base_url_ = (insecure_ ? "http://" : "https://") + ref_.registry;
}

RegistryClient::~RegistryClient() = default;

Error RegistryClient::error(Code code, const std::string& message) const {
  return Error{code, message};
}

Result<RegistryClient::Response> RegistryClient::perform(
    const std::string& url, const std::vector<std::string>& headers,
    const std::function<Status(std::string_view)>& sink, bool allow_http) {
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return fail(error(Code::kInternal, "curl_easy_init failed"));
  CURL* c = curl.get();
  Response response;
  std::optional<Error> sink_error;
  struct Context {
    CURL* curl;
    Response* response;
    const std::function<Status(std::string_view)>* sink;
    std::optional<Error>* sink_error;
    const std::atomic<bool>* cancel;
  } context{c, &response, &sink, &sink_error, cancel_};

  curl_slist* list = nullptr;
  for (const auto& header : headers) list = curl_slist_append(list, header.c_str());
  if (!authorization_.empty()) list = curl_slist_append(list, authorization_.c_str());
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> header_list(list, curl_slist_free_all);

  char error_buffer[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "feosd");
  // Blobs are often served by a redirect to storage; curl drops the Authorization header when
  // the redirect leaves the host. Plain HTTP only where the operator allows it.
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  const char* protocols = allow_http ? "http,https" : "https";
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols);
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, options_.connect_timeout_s);
  // A transfer slower than 16 KiB/s for stall_timeout_s ends: a registry that drips bytes would
  // otherwise keep a VM creating (and a download thread) for as long as it likes.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 16L * 1024);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, options_.stall_timeout_s);
  if (!options_.ca_file.empty()) {
    curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, add_operator_ca);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, const_cast<char*>(options_.ca_file.c_str()));
  }
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &context);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, +[](char* data, size_t, size_t n, void* user) -> size_t {
    auto* ctx = static_cast<Context*>(user);
    std::string_view line(data, n);
    if (line.starts_with("HTTP/")) {  // a new response (after a redirect or 100): start over
      *ctx->response = Response{};
      return n;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return n;
    std::string name = lower(line.substr(0, colon));
    std::string value = trim(line.substr(colon + 1));
    if (name == "content-type") ctx->response->content_type = trim(value.substr(0, value.find(';')));
    else if (name == "www-authenticate") ctx->response->www_authenticate = value;
    else if (name == "docker-content-digest") ctx->response->content_digest = value;
    return n;
  });
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &context);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char* data, size_t, size_t n, void* user) -> size_t {
    auto* ctx = static_cast<Context*>(user);
    long status = 0;
    curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
      auto& body = ctx->response->error_body;
      body.append(data, std::min(n, kMaxErrorBody - std::min(kMaxErrorBody, body.size())));
      return n;
    }
    if (auto written = (*ctx->sink)(std::string_view(data, n)); !written) {
      *ctx->sink_error = written.error();
      return CURL_WRITEFUNC_ERROR;
    }
    return n;
  });

  if (cancel_) {
    // Also while no byte arrives (a stalled registry): curl asks about once a second.
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &context);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION,
                     +[](void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
                       return static_cast<Context*>(user)->cancel->load() ? 1 : 0;
                     });
  }

  if (cancel_ && *cancel_) return fail(error(Code::kCancelled, "GET " + url + ": cancelled"));
  CURLcode code = curl_easy_perform(c);
  if (sink_error) return fail(*sink_error);
  if (code == CURLE_ABORTED_BY_CALLBACK) return fail(error(Code::kCancelled, "GET " + url + ": cancelled"));
  if (code != CURLE_OK) {
    std::string what = error_buffer[0] ? error_buffer : curl_easy_strerror(code);
    if (code == CURLE_SSL_CONNECT_ERROR || code == CURLE_PEER_FAILED_VERIFICATION)
      what += insecure_ ? "" : " (feosd speaks HTTPS to every registry not listed with --insecure-registry)";
    return fail(error(code_for_curl(code), "GET " + url + ": " + what));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

Result<RegistryClient::Response> RegistryClient::get(
    const std::string& url, const std::vector<std::string>& headers,
    const std::function<Status(std::string_view)>& sink) {
  FEOS_ASSIGN_OR_RETURN(Response response, perform(url, headers, sink, insecure_));
  if (response.status != 401 || response.www_authenticate.empty()) return response;
  FEOS_TRY(authenticate(response.www_authenticate));
  return perform(url, headers, sink, insecure_);
}

Status RegistryClient::authenticate(const std::string& challenge) {
  const std::string scheme = lower(challenge.substr(0, challenge.find(' ')));
  auto creds = options_.credentials.find(ref_.registry);
  const Credentials* credentials = creds == options_.credentials.end() ? nullptr : &creds->second;
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  auto basic = [&] {
    std::string pair = credentials->username + ":" + credentials->password;
    std::string out(4 * ((pair.size() + 2) / 3), '\0');
    out.resize(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                               reinterpret_cast<const unsigned char*>(pair.data()), static_cast<int>(pair.size())));
    return "Authorization: Basic " + out;
  };
  if (scheme == "basic") {
    if (!credentials)
      return fail(error(Code::kUnauthenticated, "asks for credentials (Basic) and none are configured for " +
                                                    ref_.registry + " (--registry-credentials)"));
    if (insecure_) return fail(error(Code::kPermissionDenied, "feosd sends no password over plain HTTP"));
    authorization_ = basic();
    return ok();
  }
  if (scheme != "bearer")
    return fail(error(Code::kUnauthenticated, "asks for authentication scheme " + quote_for_message(scheme) +
                                                  ", which feosd does not speak (Bearer, Basic)"));
  auto params = challenge_params(challenge);
  const std::string realm = params["realm"];
  if (!realm.starts_with("https://") && !(insecure_ && realm.starts_with("http://")))
    return fail(error(Code::kUnauthenticated, "token realm " + quote_for_message(realm) + " is not an https:// URL"));
  std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
  if (!params["service"].empty()) url += "service=" + url_escape(curl.get(), params["service"]) + "&";
  url += "scope=" + url_escape(curl.get(), params["scope"].empty() ? "repository:" + ref_.repository + ":pull"
                                                                    : params["scope"]);
  std::string body;
  // Credentials travel only over TLS, and only on a challenge that came over TLS (a plain-HTTP
  // registry's challenge can be rewritten to name any realm).
  authorization_ = credentials && realm.starts_with("https://") && !insecure_ ? basic() : "";
  auto response = perform(url, {}, [&](std::string_view bytes) -> Status {
    if (body.size() + bytes.size() > 1024 * 1024)
      return fail(error(Code::kResourceExhausted, "token response larger than 1 MiB"));
    body.append(bytes);
    return ok();
  }, realm.starts_with("http://"));
  authorization_.clear();
  if (!response) return fail(response.error());
  if (response->status == 401 || response->status == 403)
    return fail(error(Code::kUnauthenticated, "token endpoint " + realm + " refused " +
                                                  (credentials ? "the configured credentials" : "an anonymous token") +
                                                  " (HTTP " + std::to_string(response->status) + ")"));
  if (response->status != 200) return fail(http_error(*response, "token endpoint " + realm));
  auto json = nlohmann::json::parse(body, nullptr, false);
  std::string token;
  if (json.is_object())
    for (const char* key : {"token", "access_token"})
      if (json.contains(key) && json[key].is_string() && token.empty()) token = json[key].get<std::string>();
  if (token.empty() || token.find_first_of("\r\n") != std::string::npos)
    return fail(error(Code::kUnauthenticated, "token endpoint " + realm + " answered without a token"));
  authorization_ = "Authorization: Bearer " + token;
  return ok();
}

Error RegistryClient::http_error(const Response& response, const std::string& what) const {
  // The registry's own words: {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "..."}]}.
  std::string detail;
  auto json = nlohmann::json::parse(response.error_body, nullptr, false);
  if (json.is_object() && json.contains("errors") && json["errors"].is_array() && !json["errors"].empty()) {
    const auto& first = json["errors"][0];
    if (first.is_object() && first.contains("code") && first["code"].is_string())
      detail = ": " + quote_for_message(first["code"].get<std::string>());
    if (first.is_object() && first.contains("message") && first["message"].is_string())
      detail += " " + quote_for_message(first["message"].get<std::string>());
  }
  const long status = response.status;
  std::string message = what + ": HTTP " + std::to_string(status) + detail;
  Code code = Code::kFailedPrecondition;
  if (status == 401) {
    code = Code::kUnauthenticated;
    message += authorization_.empty() ? " (no credentials configured)" : " (credentials refused)";
  } else if (status == 403) {
    code = Code::kPermissionDenied;
  } else if (status == 404) {
    code = Code::kNotFound;
  } else if (status == 429 || status >= 500) {
    code = Code::kUnavailable;
  }
  return error(code, message);
}

Result<Manifest> RegistryClient::manifest(const std::string& key) {
  Manifest out;
  const std::string url = base_url_ + "/v2/" + ref_.repository + "/manifests/" + key;
  FEOS_ASSIGN_OR_RETURN(Response response, get(url, {kManifestTypes}, [&](std::string_view bytes) -> Status {
    if (out.body.size() + bytes.size() > options_.max_manifest_bytes)
      return fail(error(Code::kResourceExhausted, "manifest " + key + " is larger than " +
                                                      std::to_string(options_.max_manifest_bytes) + " bytes"));
    out.body.append(bytes);
    return ok();
  }));
  if (response.status != 200) return fail(http_error(response, "manifest " + key));
  out.media_type = response.content_type;
  out.digest = Sha256::of(out.body);
  const bool pinned = is_sha256_digest(key);
  const std::string& expected = pinned ? key : response.content_digest;
  if (!expected.empty() && expected != out.digest)
    return fail(error(Code::kFailedPrecondition, "manifest " + key + ": content has digest " + out.digest +
                                                     ", not " + quote_for_message(expected)));
  return out;
}

Result<uint64_t> RegistryClient::blob(const std::string& digest, uint64_t size, const Writer& write) {
  Sha256 hash;
  uint64_t received = 0;
  const std::string url = base_url_ + "/v2/" + ref_.repository + "/blobs/" + digest;
  FEOS_ASSIGN_OR_RETURN(Response response, get(url, {}, [&](std::string_view bytes) -> Status {
    received += bytes.size();
    if (received > size)
      return fail(error(Code::kFailedPrecondition, "blob " + digest + ": more than the " + std::to_string(size) +
                                                       " bytes the manifest gives"));
    hash.update(bytes);
    return write(bytes);
  }));
  if (response.status != 200) return fail(http_error(response, "blob " + digest));
  if (received != size)
    return fail(error(Code::kFailedPrecondition, "blob " + digest + ": " + std::to_string(received) +
                                                     " bytes received, the manifest gives " + std::to_string(size)));
  if (std::string actual = hash.finish(); actual != digest)
    return fail(error(Code::kFailedPrecondition, "blob " + digest + ": digest mismatch, the content has " + actual));
  return received;
}

}  // namespace feos::image
