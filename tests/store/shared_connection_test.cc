// VmStore, EventLog and SqliteDeviceLedger built directly over ONE sqlite::Connection (as
// Database builds them), used from many threads at once: each call holds the connection, so the
// ledger's and the event log's transactions never interleave with another store's statements.
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "spec_samples.h"
#include "support/pci_literals.h"
#include "store/device_ledger.h"
#include "store/event_log.h"
#include "store/migrations.h"
#include "store/sqlite.h"
#include "store/sqlite_device_ledger.h"
#include "store/vm_store.h"
#include "support/temp_dir.h"

namespace feos::store {
namespace {

using ::feos::test::TempDir;

class SharedConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = sqlite::Connection::open(dir_.file("feos.db"), 5000);
    ASSERT_TRUE(opened) << opened.error().to_string();
    connection_ = std::move(*opened);
    sqlite::Lock db(*connection_);
    ASSERT_TRUE(db.exec("PRAGMA foreign_keys = ON", "foreign keys"));
    auto migrated = migrate(db, schema_migrations(), "feos.db");
    ASSERT_TRUE(migrated) << migrated.error().to_string();
    // As Database::open sets it up (and no fsync per commit, so the test runs in a blink).
    ASSERT_TRUE(db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL", "journal"));
  }

  model::VmRecord vm(const std::string& id) {
    model::VmRecord record;
    record.id = id;
    record.spec = testing::full_spec();
    record.state = model::VmState::kCreated;
    return record;
  }
  DeviceAssignment device(const std::string& vm_id, const std::string& bdf) {
    DeviceAssignment row;
    row.bdf = test::pci_address(bdf);
    row.vm_id = vm_id;
    row.iommu_group = pci::IommuGroup(7);
    row.updated_unix_ms = 1;
    return row;
  }
  model::VmEvent event(const std::string& vm_id, int64_t unix_ms) {
    model::VmEvent event;
    event.vm_id = vm_id;
    event.component_id = "vm";
    event.unix_ms = unix_ms;
    return event;
  }

  TempDir dir_;
  std::unique_ptr<sqlite::Connection> connection_;
};

TEST_F(SharedConnectionTest, StoresShareOneConnectionAcrossThreads) {
  EventLog events(*connection_, 5);
  VmStore vms(*connection_, events);
  SqliteDeviceLedger sqlite_ledger(*connection_);
  DeviceLedger& ledger = sqlite_ledger;  // as hostdev sees it

  constexpr int kThreads = 8;
  constexpr int kRounds = 20;
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto check = [&](const Status& status) {
        if (!status && errors[t].empty()) errors[t] = status.error().to_string();
        return static_cast<bool>(status);
      };
      const std::string id = "vm-" + std::to_string(t);
      // Devices before the record, as hostdev claims them.
      const std::string bdf = "0000:" + std::to_string(10 + t) + ":00.0";
      if (!check(ledger.claim(id, {device(id, bdf)}))) return;
      if (!check(vms.insert(vm(id)))) return;
      for (int r = 0; r < kRounds; ++r) {
        auto appended = events.append(event(id, r));
        if (!appended) return (void)check(fail(appended.error()));
        if (!check(ledger.set_step(id, test::pci_address(bdf), AssignmentStep::kBound, r))) return;
        if (!check(vms.update_state(id, model::VmState::kRunning, "r" + std::to_string(r), 1, r))) {
          return;
        }
        if (r % 5 == 0 && !check(events.prune())) return;  // a transaction of its own
      }
      auto deleted = ledger.delete_assignments(id, {test::pci_address(bdf)});
      if (!deleted) return (void)check(fail(deleted.error()));
      if (*deleted != 1) errors[t] = "deleted " + std::to_string(*deleted) + " rows";
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;

  auto records = vms.list();
  ASSERT_TRUE(records) << records.error().to_string();
  ASSERT_EQ(records->size(), static_cast<size_t>(kThreads));
  for (const auto& record : *records) {
    EXPECT_EQ(record.state_reason, "r" + std::to_string(kRounds - 1)) << record.id;
    auto history = events.query({.vm_id = record.id});
    ASSERT_TRUE(history);
    EXPECT_GE(history->size(), 5u) << record.id;  // trimmed to the cap, plus amortization slack
    EXPECT_LE(history->size(), 6u) << record.id;
    EXPECT_EQ(history->back().unix_ms, kRounds - 1) << record.id;
  }
  auto rows = ledger.list(std::nullopt);
  ASSERT_TRUE(rows);
  EXPECT_TRUE(rows->empty());

  // Removing a record takes its events along (the foreign key on the shared connection).
  ASSERT_TRUE(vms.remove("vm-0"));
  EXPECT_TRUE(events.query({.vm_id = "vm-0"})->empty());
  auto orphan = events.append(event("vm-0", 1));
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.error().code, Code::kNotFound);
}

// A claim that fails half way rolls back inside its own transaction; the other stores go on on
// the same connection (no transaction is left open for them to fall into).
TEST_F(SharedConnectionTest, FailedClaimLeavesNoTransactionOpen) {
  EventLog events(*connection_, 100);
  VmStore vms(*connection_, events);
  SqliteDeviceLedger ledger(*connection_);
  ASSERT_TRUE(ledger.claim("vm-a", {device("vm-a", "0000:3a:00.0")}));
  auto clash =
      ledger.claim("vm-b", {device("vm-b", "0000:18:00.0"), device("vm-b", "0000:3a:00.0")});
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().message, "0000:3a:00.0 is assigned to vm vm-a");
  {
    sqlite::Lock db(*connection_);
    EXPECT_FALSE(db.in_transaction());
  }
  ASSERT_TRUE(vms.insert(vm("vm-b")));
  ASSERT_TRUE(events.append(event("vm-b", 1)));
  EXPECT_EQ(ledger.list("vm-b")->size(), 0u) << "the failed claim kept a row";
  EXPECT_EQ(vms.list()->size(), 1u);
}

}  // namespace
}  // namespace feos::store
