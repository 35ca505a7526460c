#include "image/test_registry.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <strings.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "image/sha256.h"

extern char** environ;

namespace feos::test {
namespace {

pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + args[0]);
  return pid;
}

void run(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = spawn(args, log);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error(args[0] + " failed, see " + log);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

void kill_and_wait(pid_t& pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  pid = -1;
}

// One request with libcurl; returns the HTTP status, fills `location` from the Location header.
struct Http {
  long status = 0;
  std::string location, digest, body;
};
Http request(const std::string& method, const std::string& url, const std::string& ca,
             const std::vector<std::string>& headers, const std::string& body) {
  CURL* c = curl_easy_init();
  Http out;
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  if (!ca.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ca.c_str());
  if (method != "GET") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &out);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, +[](char* data, size_t, size_t n, void* user) -> size_t {
    auto* http = static_cast<Http*>(user);
    std::string line(data, n);
    auto value = [&] {
      std::string v = line.substr(line.find(':') + 1);
      v.erase(0, v.find_first_not_of(' '));
      v.erase(v.find_last_not_of("\r\n") + 1);
      return v;
    };
    if (strncasecmp(line.c_str(), "location:", 9) == 0) http->location = value();
    if (strncasecmp(line.c_str(), "docker-content-digest:", 22) == 0) http->digest = value();
    return n;
  });
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char* data, size_t, size_t n, void* user) -> size_t {
    static_cast<std::string*>(user)->append(data, n);
    return n;
  });
  CURLcode code = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
  curl_slist_free_all(list);
  curl_easy_cleanup(c);
  if (code != CURLE_OK) throw std::runtime_error(method + " " + url + ": " + curl_easy_strerror(code));
  return out;
}

}  // namespace

TestCert TestCert::make(const std::string& dir, const std::string& name) {
  TestCert cert{dir + "/" + name + ".pem", dir + "/" + name + ".key"};
  run({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", cert.key, "-out", cert.cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
       "subjectAltName=IP:127.0.0.1,DNS:localhost"},
      dir + "/openssl.log");
  return cert;
}

int TestRegistry::free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TestRegistry::TestRegistry(const std::string& dir, const std::string& storage, bool tls, RegistryAuth auth)
    : dir_(dir), tls_(tls) {
  port_ = free_port();
  cert_ = TestCert::make(dir, "registry");
  std::string config = "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n"
                       "    rootdirectory: " + storage + "\n  delete:\n    enabled: true\nhttp:\n  addr: " + host() + "\n";
  if (tls) config += "  tls:\n    certificate: " + cert_.cert + "\n    key: " + cert_.key + "\n";
  if (auth.kind == RegistryAuth::kBasic) {
    run({"/usr/bin/htpasswd", "-Bbc", dir + "/htpasswd", auth.username, auth.password}, dir + "/htpasswd.log");
    config += "auth:\n  htpasswd:\n    realm: feos-test\n    path: " + dir + "/htpasswd\n";
  }
  if (auth.kind == RegistryAuth::kToken) {
    // A token server beside the registry; the registry trusts the certificate of its signing key.
    const int token_port = free_port();
    TestCert signer = TestCert::make(dir, "token-signer");
    config += "auth:\n  token:\n    realm: https://127.0.0.1:" + std::to_string(token_port) +
              "/token\n    service: feos-test\n    issuer: feos-test-issuer\n    rootcertbundle: " + signer.cert + "\n";
    token_pid_ = spawn({"/usr/bin/python3", FEOS_TOKEN_SERVER, std::to_string(token_port), cert_.cert, cert_.key,
                        signer.cert, signer.key, auth.username, auth.password},
                       dir + "/token-server.log");
  }
  write_file(dir + "/config.yml", config);
  pid_ = spawn({kRegistryBinary, "serve", dir + "/config.yml"}, dir + "/registry.log");
  // Up when /v2/ answers at all (200, or 401 behind authentication); the token server too.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    try {
      request("GET", url() + "/v2/", cert_.cert, {}, "");
      break;
    } catch (const std::runtime_error&) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("registry did not come up: " + read_file(dir + "/registry.log"));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (token_pid_ > 0) {
    // The token server says when it listens.
    for (;;) {
      std::string log = read_file(dir + "/token-server.log");
      if (log.find("listening") != std::string::npos) break;
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("token server did not come up: " + log);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

TestRegistry::~TestRegistry() { stop(); }

void TestRegistry::stop() {
  kill_and_wait(pid_);
  kill_and_wait(token_pid_);
}

std::string TestRegistry::push_blob(const std::string& repo, const std::string& bytes) {
  const std::string digest = image::Sha256::of(bytes);
  Http started = request("POST", url() + "/v2/" + repo + "/blobs/uploads/", cert_.cert, {}, "");
  if (started.status != 202) throw std::runtime_error("blob upload: HTTP " + std::to_string(started.status));
  std::string location = started.location;
  if (location.rfind("http", 0) != 0) location = url() + location;
  location += (location.find('?') == std::string::npos ? "?" : "&") + std::string("digest=") + digest;
  Http put = request("PUT", location, cert_.cert, {"Content-Type: application/octet-stream"}, bytes);
  if (put.status != 201) throw std::runtime_error("blob PUT: HTTP " + std::to_string(put.status) + " " + put.body);
  return digest;
}

std::string TestRegistry::push_manifest(const std::string& repo, const std::string& tag, const std::string& media_type,
                                        const std::string& body) {
  Http put = request("PUT", url() + "/v2/" + repo + "/manifests/" + tag, cert_.cert, {"Content-Type: " + media_type}, body);
  if (put.status != 201) throw std::runtime_error("manifest PUT: HTTP " + std::to_string(put.status) + " " + put.body);
  return image::Sha256::of(body);
}

ThrottleProxy::ThrottleProxy(const std::string& dir, const TestRegistry& registry, uint64_t rate)
    : log_(dir + "/proxy-requests.log") {
  port_ = TestRegistry::free_port();
  write_file(log_, "");
  const std::string output = dir + "/proxy.log";
  pid_ = spawn({"/usr/bin/python3", FEOS_THROTTLE_PROXY, std::to_string(port_), registry.host(), registry.ca_file(),
                std::to_string(rate), log_},
               output);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (read_file(output).find("listening") == std::string::npos) {
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("proxy did not come up: " + read_file(output));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

ThrottleProxy::~ThrottleProxy() { kill_and_wait(pid_); }

size_t ThrottleProxy::count(const std::string& prefix) const {
  std::istringstream lines(read_file(log_));
  size_t n = 0;
  for (std::string line; std::getline(lines, line);) n += line.rfind(prefix, 0) == 0;
  return n;
}

std::string image_manifest(const std::string& config_type, const std::string& config_digest,
                           const std::vector<Layer>& layers) {
  nlohmann::json m = {{"schemaVersion", 2},
                      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                      {"config", {{"mediaType", config_type}, {"digest", config_digest}, {"size", 2}}},
                      {"layers", nlohmann::json::array()}};
  for (const auto& layer : layers)
    m["layers"].push_back({{"mediaType", layer.media_type}, {"digest", layer.digest}, {"size", layer.size}});
  return m.dump();
}

std::string random_bytes(size_t size, uint64_t seed) {
  std::string out(size, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < size; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    for (size_t k = 0; k < 8 && i + k < size; ++k) out[i + k] = static_cast<char>(x >> (8 * k));
  }
  return out;
}

}  // namespace feos::test
