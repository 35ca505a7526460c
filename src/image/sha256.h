#pragma once
// Streaming SHA-256 (OpenSSL's EVP): every byte that comes from a registry goes through one,
// so a blob's digest is known when its last byte is written.
#include <memory>
#include <string>
#include <string_view>

namespace feos::image {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::string_view bytes);
  // "sha256:<64 lower-case hex digits>" of everything updated so far; ends this hash.
  std::string finish();

  // One-shot form.
  static std::string of(std::string_view bytes);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace feos::image
