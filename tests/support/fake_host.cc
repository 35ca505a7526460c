#include "support/fake_host.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace feos::test {
namespace {

std::string make_temp_under(const std::string& base) {
  std::string pattern = base + "/feos-host-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) return {};
  return buf.data();
}

}  // namespace

ScratchDir::ScratchDir() {
  std::vector<std::string> bases;
  if (const char* env = std::getenv("FEOS_TEST_TREE_DIR"); env && *env) bases.push_back(env);
  if (::access("/dev/shm", W_OK) == 0) bases.push_back("/dev/shm");
  if (const char* tmp = std::getenv("TMPDIR"); tmp && *tmp) bases.push_back(tmp);
  bases.push_back("/tmp");
  for (const auto& base : bases)
    if (path_ = make_temp_under(base); !path_.empty()) return;
  throw std::runtime_error("cannot create a scratch directory (tried $FEOS_TEST_TREE_DIR, /dev/shm, $TMPDIR, /tmp)");
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Result<std::unique_ptr<FakeHost>> FakeHost::create(const HostBuilder& host) {
  std::unique_ptr<FakeHost> h(new FakeHost());
  auto tree = host.build(h->dir_.path());
  if (!tree) return fail(tree.error());
  h->tree_ = std::move(*tree);
  h->kernel_ = std::make_unique<FakeKernel>(h->tree_);
  return h;
}

}  // namespace feos::test
