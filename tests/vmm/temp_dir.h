#pragma once
// A private temporary directory for a test, removed with its contents afterwards.
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace feos::vmm::qemu::testing {

class TempDir {
 public:
  TempDir() {
    // Short base: unix socket paths inside must stay under 108 bytes.
    std::string tmpl = "/tmp/feos-vmm-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace feos::vmm::qemu::testing
