#pragma once
// Conveniences for tests: a scratch directory on a RAM filesystem, and FakeHost, which builds a
// HostBuilder description there and puts a FakeKernel over it:
//
//   auto host = FakeHost::create(hgx_h100_host());     // Result<std::unique_ptr<FakeHost>>
//   hostdev::Manager m((*host)->kernel(), (*host)->paths(), ...);
#include <memory>
#include <string>

#include "common/error.h"
#include "support/fake_kernel.h"
#include "support/host_builder.h"

namespace feos::test {

// A fresh directory, removed with everything in it on destruction. It lies under
// $FEOS_TEST_TREE_DIR if set, else /dev/shm when writable (a tree is thousands of file creations:
// ~20x faster on tmpfs than on a VM disk), else $TMPDIR, else /tmp. Throws std::runtime_error if
// no directory can be made.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class FakeHost {
 public:
  // Builds `host` in a new ScratchDir and creates its FakeKernel. Errors as HostBuilder::build().
  static Result<std::unique_ptr<FakeHost>> create(const HostBuilder& host);

  FakeKernel& kernel() { return *kernel_; }
  const FakeKernel& kernel() const { return *kernel_; }
  const sys::HostPaths& paths() const { return tree_.paths; }
  const HostTree& tree() const { return tree_; }
  const std::string& root() const { return tree_.root; }

 private:
  FakeHost() = default;
  ScratchDir dir_;  // declared first: destroyed after the kernel
  HostTree tree_;
  std::unique_ptr<FakeKernel> kernel_;
};

}  // namespace feos::test
