#pragma once
// A real OCI registry for tests: Debian's docker-registry (distribution 2.8), started on a free
// localhost port with a self-signed certificate made here with openssl, optionally behind
// htpasswd (Basic) or token (Bearer, tests/image/token_server.py) authentication, and a pusher
// that speaks the distribution API (blob upload POST + PUT, manifest PUT) with libcurl.
// Registries of one TestRegistry::Storage share its storage directory: images are pushed to an
// open one and read through one with authentication. ThrottleProxy (throttle_proxy.py) puts a
// slow, counting link in front of one.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace feos::test {

constexpr const char* kRegistryBinary = "/usr/bin/docker-registry";

struct RegistryAuth {
  enum Kind { kNone, kBasic, kToken } kind = kNone;
  std::string username = "feos";
  std::string password = "s3cret";
};

// The certificate and key the test's TLS servers present (CN and SAN 127.0.0.1 and localhost).
struct TestCert {
  std::string cert, key;
  static TestCert make(const std::string& dir, const std::string& name);
};

class TestRegistry {
 public:
  // Starts a registry over `storage` (created when missing) in `dir`; `tls` false serves plain
  // HTTP. Throws std::runtime_error (with the registry's log) when it does not come up in 20 s.
  TestRegistry(const std::string& dir, const std::string& storage, bool tls, RegistryAuth auth = {});
  ~TestRegistry();
  TestRegistry(const TestRegistry&) = delete;
  TestRegistry& operator=(const TestRegistry&) = delete;

  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url() const { return (tls_ ? "https://" : "http://") + host(); }
  const std::string& ca_file() const { return cert_.cert; }
  void stop();

  // Pushing (only to a registry without authentication). Each returns the digest.
  std::string push_blob(const std::string& repo, const std::string& bytes);
  std::string push_manifest(const std::string& repo, const std::string& tag, const std::string& media_type,
                            const std::string& body);

  static int free_port();

 private:
  std::string dir_;
  bool tls_;
  int port_ = 0;
  pid_t pid_ = -1;
  pid_t token_pid_ = -1;
  TestCert cert_;
};

// tests/image/throttle_proxy.py in front of `registry`: plain HTTP (list host() with the
// insecure registries), each GET's body sent at most `rate` bytes per second, every request
// logged as it arrives and ends. Throws std::runtime_error when it does not come up in 20 s.
class ThrottleProxy {
 public:
  ThrottleProxy(const std::string& dir, const TestRegistry& registry, uint64_t rate);
  ~ThrottleProxy();
  ThrottleProxy(const ThrottleProxy&) = delete;
  ThrottleProxy& operator=(const ThrottleProxy&) = delete;

  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  // How many log lines begin with `prefix`: "GET /v2/<repo>/blobs/<digest>" counts the GETs of a
  // blob that arrived, "END ..." those served in full, "ABORT ..." those the client left.
  size_t count(const std::string& prefix) const;

 private:
  std::string log_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// A FeOS (legacy) or IronCore (v1) image manifest with `layers` as (media type, digest, size),
// config of `config_type` (pushed as a blob "{}" by the caller, digest `config_digest`).
struct Layer {
  std::string media_type, digest;
  uint64_t size;
};
std::string image_manifest(const std::string& config_type, const std::string& config_digest,
                           const std::vector<Layer>& layers);

// `size` bytes of deterministic pseudo-random content.
std::string random_bytes(size_t size, uint64_t seed);

}  // namespace feos::test
