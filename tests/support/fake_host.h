#pragma once
// FakeHost: builds a HostBuilder description in a TempDir::for_trees() (tmpfs when it can) and
// puts a FakeKernel over it:
//
//   auto host = FakeHost::create(hgx_h100_host());     // Result<std::unique_ptr<FakeHost>>
//   hostdev::Manager m((*host)->kernel(), (*host)->paths(), ...);
#include <memory>
#include <string>

#include "common/error.h"
#include "support/fake_kernel.h"
#include "support/host_builder.h"
#include "support/temp_dir.h"

namespace feos::test {

class FakeHost {
 public:
  // Builds `host` in a new TempDir::for_trees() and creates its FakeKernel. Errors as HostBuilder::build().
  static Result<std::unique_ptr<FakeHost>> create(const HostBuilder& host);

  FakeKernel& kernel() { return *kernel_; }
  const FakeKernel& kernel() const { return *kernel_; }
  const sys::HostPaths& paths() const { return tree_.paths; }
  const HostTree& tree() const { return tree_; }
  const std::string& root() const { return tree_.root; }

 private:
  FakeHost() = default;
  TempDir dir_ = TempDir::for_trees();  // declared first: destroyed after the kernel
  HostTree tree_;
  std::unique_ptr<FakeKernel> kernel_;
};

}  // namespace feos::test
