#pragma once
// The tests' one temporary directory: made fresh, removed with everything in it on destruction.
// Header only (library feos_test_temp_dir), so that any test may use it.
//
//   TempDir dir;                                   // /tmp/feos-test-XXXXXX
//   std::string db = dir / "feosd.db";             // the same as dir.file("feosd.db")
//   TempDir tree = TempDir::for_trees();           // on tmpfs when it can be
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace feos::test {

class TempDir {
 public:
  // Under /tmp, on purpose not $TMPDIR: the base is short because unix socket paths inside must
  // stay under 108 bytes. Throws std::runtime_error when no directory can be made.
  TempDir() : path_(make_under("/tmp")) {
    if (path_.empty()) throw std::runtime_error("cannot create a temporary directory under /tmp");
  }

  // For trees of thousands of files (fake sysfs hosts, ledgers): under $FEOS_TEST_TREE_DIR if set,
  // else /dev/shm when writable (~20x faster than a VM's disk), else $TMPDIR, else /tmp. Throws
  // std::runtime_error when none works.
  static TempDir for_trees() {
    std::vector<std::string> bases;
    if (const char* env = std::getenv("FEOS_TEST_TREE_DIR"); env && *env) bases.push_back(env);
    if (::access("/dev/shm", W_OK) == 0) bases.push_back("/dev/shm");
    if (const char* tmp = std::getenv("TMPDIR"); tmp && *tmp) bases.push_back(tmp);
    bases.push_back("/tmp");
    for (const auto& base : bases)
      if (std::string path = make_under(base); !path.empty()) return TempDir(std::move(path));
    throw std::runtime_error("cannot create a scratch directory (tried $FEOS_TEST_TREE_DIR, /dev/shm, $TMPDIR, /tmp)");
  }

  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, std::string())) {}
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    if (path_.empty()) return;  // moved from
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  const std::string& path() const { return path_; }
  // "<path>/<name>".
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }
  std::string operator/(std::string_view name) const { return file(name); }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}

  // A fresh <base>/feos-test-XXXXXX; empty when mkdtemp fails.
  static std::string make_under(const std::string& base) {
    std::string pattern = base + "/feos-test-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return {};
    return pattern;
  }

  std::string path_;
};

}  // namespace feos::test
