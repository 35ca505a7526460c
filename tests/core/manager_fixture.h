#pragma once
// The fixture the VmManager tests share: a manager on a real store in a temporary directory, the
// fake hypervisor, no host devices; reopen() is a daemon restart on the same state.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "core/vm_manager.h"
#include "fake_hypervisor.h"
#include "support/temp_dir.h"
#include "wait_created.h"

namespace feos::core {

class ManagerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "vms");
    ASSERT_TRUE(reopen_with({}));
  }
  void TearDown() override {
    manager_.reset();
    db_.reset();
  }
  // A daemon (re)start: a new store connection and manager on the same files, then recover().
  Status reopen_with(RecoverOptions options, VmLimits limits = {}, ShutdownOptions shutdown = {}) {
    manager_.reset();
    db_.reset();
    auto db = store::Database::open((dir_ / "feosd.db").string());
    if (!db) return fail(db.error());
    db_ = std::move(*db);
    manager_ = std::make_unique<VmManager>(*db_, hv_, nullptr, bus_, (dir_ / "vms").string(), limits, shutdown);
    return manager_->recover(options);
  }
  // A VM booting a kernel, created (its background part waited for).
  model::VmId create_vm() {
    model::VmSpec spec;
    spec.boot.kernel = "/boot/vmlinuz";
    auto id = manager_->create(spec, std::nullopt);
    EXPECT_TRUE(id) << id.error().to_string();
    if (!id) return model::VmId::random();
    EXPECT_EQ(wait_created(*manager_, *id), model::VmState::kCreated);
    return *id;
  }
  model::VmState state(const model::VmId& id) { return manager_->get(id)->state; }

  test::TempDir temp_;
  std::filesystem::path dir_ = temp_.path();
  FakeHypervisor hv_;
  EventBus bus_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<VmManager> manager_;
};

}  // namespace feos::core
