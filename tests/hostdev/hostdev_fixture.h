#pragma once
// A host tree (HostBuilder), the fake kernel over it, a ledger (a database file, or an in-memory
// fake), and HostDevices and HostInventory on top; they and the database can be destroyed and
// rebuilt on the same kernel and file (a daemon restart).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "hostdev/host_devices.h"
#include "hostdev/inventory.h"
#include "store/database.h"
#include "support/fake_device_ledger.h"
#include "support/fake_host.h"
#include "support/fake_kernel.h"
#include "support/host_builder.h"
#include "support/pci_literals.h"
#include "sysfs_tree.h"

namespace feos::hostdev::testing {

// Writes a plain file into a host tree (directories created), e.g. a /proc or /sys attribute
// the builder does not make.
inline void put_file(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

inline std::vector<model::GpuSpec> gpus_at(const std::vector<std::string>& addresses) {
  std::vector<model::GpuSpec> out;
  for (const auto& a : addresses) out.push_back(model::GpuSpec{.address = test::pci_address(a)});
  return out;
}

// The eight GPUs of hgx_h100_host(), in address order.
inline const std::vector<std::string>& hgx_gpus() {
  static const std::vector<std::string> gpus = {"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0",
                                                "0000:5d:00.0", "0000:9a:00.0", "0000:ab:00.0",
                                                "0000:ba:00.0", "0000:db:00.0"};
  return gpus;
}

class HostdevTest : public ::testing::Test {
 protected:
  // Short timeouts: a test that waits for one fails in well under a second.
  static Options test_options() {
    Options o;
    o.step_timeout = std::chrono::milliseconds(2000);
    o.vfio_node_timeout = std::chrono::milliseconds(2000);
    return o;
  }

  // The ledger is the SQLite file unless this is called before start(): then an in-memory fake
  // (it survives restart(), as the file does).
  void use_in_memory_ledger() { in_memory_ledger_ = true; }

  // Writes `builder`'s tree and starts the fake kernel, the ledger, HostDevices and HostInventory.
  void start(const test::HostBuilder& builder, Policy policy = {}, Options options = test_options()) {
    auto tree = builder.build(dir_.path() + "/host");
    ASSERT_TRUE(tree) << tree.error().to_string();
    tree_ = std::make_unique<test::HostTree>(std::move(*tree));
    kernel_ = std::make_unique<test::FakeKernel>(*tree_);
    policy_ = std::move(policy);
    options_ = std::move(options);
    before_ = kernel_->snapshot();
    open_host();
  }

  // (Re)opens the ledger and builds a new HostDevices and HostInventory on the same kernel.
  void open_host() {
    inventory_.reset();
    host_.reset();
    db_.reset();
    if (in_memory_ledger_) {
      if (!fake_ledger_) fake_ledger_ = std::make_unique<test::FakeDeviceLedger>();
      ledger_ = fake_ledger_.get();
    } else {
      auto db = store::Database::open(dir_.path() + "/feos.db");
      ASSERT_TRUE(db) << db.error().to_string();
      db_ = std::move(*db);
      ledger_ = &db_->ledger();
    }
    host_ = std::make_unique<HostDevices>(*kernel_, tree_->paths, *ledger_, policy_, options_);
    inventory_ = std::make_unique<HostInventory>(*kernel_, tree_->paths, *ledger_, policy_, options_);
  }

  // A daemon restart: HostDevices and the database connection go away and come back.
  void restart() { open_host(); }

  std::vector<store::DeviceAssignment> ledger() {
    auto rows = ledger_->list(std::nullopt);
    EXPECT_TRUE(rows) << rows.error().to_string();
    return rows ? *rows : std::vector<store::DeviceAssignment>();
  }

  const sys::HostPaths& paths() const { return tree_->paths; }
  std::string root() const { return tree_->root; }

  // The host is exactly as before: every driver link and override, no VFIO nodes, empty ledger.
  void expect_host_as_before(const std::string& where) {
    EXPECT_EQ(kernel_->snapshot(), before_) << where;
    EXPECT_TRUE(kernel_->vfio_groups().empty()) << where;
    EXPECT_TRUE(ledger().empty()) << where;
  }

  // tmpfs when available: trees and ledgers are many small writes.
  test::TempDir dir_ = test::TempDir::for_trees();
  std::unique_ptr<test::HostTree> tree_;
  std::unique_ptr<test::FakeKernel> kernel_;
  Policy policy_;
  Options options_;
  test::BindingSnapshot before_;
  bool in_memory_ledger_ = false;
  std::unique_ptr<test::FakeDeviceLedger> fake_ledger_;
  std::unique_ptr<store::Database> db_;  // the SQLite ledger, unless in memory
  store::DeviceLedger* ledger_ = nullptr;  // the one in use
  std::unique_ptr<HostDevices> host_;
  std::unique_ptr<HostInventory> inventory_;
};

}  // namespace feos::hostdev::testing
