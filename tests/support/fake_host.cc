#include "support/fake_host.h"

namespace feos::test {

Result<std::unique_ptr<FakeHost>> FakeHost::create(const HostBuilder& host) {
  std::unique_ptr<FakeHost> h(new FakeHost());
  auto tree = host.build(h->dir_.path());
  if (!tree) return fail(tree.error());
  h->tree_ = std::move(*tree);
  h->kernel_ = std::make_unique<FakeKernel>(h->tree_);
  return h;
}

}  // namespace feos::test
