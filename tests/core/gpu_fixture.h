#pragma once
// The fixture of the VmManager tests with GPUs: the real HostDevices (ledger + vfio binding) on
// the fake kernel of an HGX H100 host, the scriptable FakeHypervisor for the process side.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/vm_manager.h"
#include "fake_hypervisor.h"
#include "support/fake_kernel.h"
#include "support/host_builder.h"
#include "support/pci_literals.h"
#include "support/vm_ids.h"
#include "sysfs_tree.h"
#include "wait_created.h"

namespace feos::core {

using model::VmState;

class VmManagerGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Without its NVSwitches: these tests take the board's GPUs in any number (the fabric rules
    // are tests/hostdev/nvswitch_test.cc's and tests/api/dry_run_test.cc's).
    auto tree = test::without_nvswitches(test::hgx_h100_host()).build(dir_.path() + "/host");
    ASSERT_TRUE(tree) << tree.error().to_string();
    tree_ = std::make_unique<test::HostTree>(std::move(*tree));
    kernel_ = std::make_unique<test::FakeKernel>(*tree_);
    before_ = kernel_->snapshot();
    std::filesystem::create_directories(dir_.path() + "/vms");
    reopen();
  }
  void TearDown() override {
    manager_.reset();
    devices_.reset();
    db_.reset();
  }
  // A daemon restart on the same kernel and database file.
  void reopen() {
    manager_.reset();
    devices_.reset();
    db_.reset();
    auto db = store::Database::open(dir_.path() + "/feosd.db");
    ASSERT_TRUE(db) << db.error().to_string();
    db_ = std::move(*db);
    hostdev::Options options;
    options.step_timeout = std::chrono::milliseconds(2000);
    options.vfio_node_timeout = std::chrono::milliseconds(2000);
    devices_ = std::make_unique<hostdev::HostDevices>(*kernel_, tree_->paths, db_->ledger(), hostdev::Policy(), options);
    manager_ = std::make_unique<VmManager>(*db_, hv_, devices_.get(), bus_, dir_.path() + "/vms", VmLimits{},
                                           shutdown_);
    ASSERT_TRUE(manager_->recover());
  }
  Result<model::VmId> create(std::vector<std::string> addresses) {
    model::VmSpec spec;
    spec.boot.kernel = "/boot/vmlinuz";
    for (auto& a : addresses) spec.gpus.push_back(model::GpuSpec{.address = test::pci_address(a)});
    return create_and_wait(spec);
  }
  // CreateVm, then its background part: the VM's state once it left creating is state()'s.
  Result<model::VmId> create_and_wait(const model::VmSpec& spec) {
    auto id = manager_->create(spec, std::nullopt);
    if (id) (void)wait_created(*manager_, *id);
    return id;
  }
  std::string driver(const std::string& bdf) { return kernel_->snapshot().at(bdf).driver; }
  VmState state(const model::VmId& id) { return manager_->get(id)->state; }
  // The VM's newest `n` events as "<component> <state>: <reason>", oldest first.
  std::vector<std::string> last_events(const model::VmId& id, uint32_t n) {
    auto events = manager_->history({.vm_id = id.text(), .last_n = n});
    EXPECT_TRUE(events) << events.error().to_string();
    std::vector<std::string> out;
    for (const auto& e : events ? *events : std::vector<model::VmEvent>{})
      out.push_back(e.component_id + " " + std::string(model::state_name(e.state)) + ": " + e.reason);
    return out;
  }

  test::TempDir dir_;
  std::unique_ptr<test::HostTree> tree_;
  std::unique_ptr<test::FakeKernel> kernel_;
  test::BindingSnapshot before_;
  FakeHypervisor hv_;
  ShutdownOptions shutdown_;
  EventBus bus_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<hostdev::HostDevices> devices_;
  std::unique_ptr<VmManager> manager_;
};

}  // namespace feos::core
