// The device ownership ledger (SqliteDeviceLedger, through Database::ledger()): atomic claims,
// steps, deletion.
#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "store/database.h"
#include "support/pci_literals.h"
#include "support/temp_dir.h"

namespace feos::store {
namespace {

using ::feos::test::TempDir;

DeviceAssignment row(const std::string& vm, const std::string& bdf,
                     DeviceRole role = DeviceRole::kRequested) {
  return DeviceAssignment{.bdf = test::pci_address(bdf),
                          .vm_id = vm,
                          .role = role,
                          .iommu_group = pci::IommuGroup(41),
                          .original_driver = "nvidia",
                          .original_override = "",
                          .step = AssignmentStep::kClaimed,
                          .updated_unix_ms = 1000};
}

class DeviceLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::open(path_);
    ASSERT_TRUE(db) << db.error().to_string();
    db_ = std::move(*db);
  }
  std::vector<std::string> bdfs_of(std::optional<std::string_view> vm = std::nullopt) {
    auto rows = db_->ledger().list(vm);
    EXPECT_TRUE(rows) << rows.error().to_string();
    std::vector<std::string> out;
    if (rows) {
      for (const auto& r : *rows) out.push_back(r.bdf.to_string());
    }
    return out;
  }

  TempDir dir_;
  const std::string path_ = dir_.file("feos.db");
  std::unique_ptr<Database> db_;
};

TEST_F(DeviceLedgerTest, ClaimListStepDelete) {
  const std::vector<DeviceAssignment> rows = {
      row("vm-a", "0000:18:00.0"),
      row("vm-a", "0000:18:00.1", DeviceRole::kFunction),
      row("vm-a", "0000:19:00.0", DeviceRole::kGroupPeer),
  };
  ASSERT_TRUE(db_->ledger().claim("vm-a", rows));
  ASSERT_TRUE(db_->ledger().claim("vm-b", {row("vm-b", "0000:2a:00.0")}));

  auto all = db_->ledger().list(std::nullopt);
  ASSERT_TRUE(all) << all.error().to_string();
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0], rows[0]);
  EXPECT_EQ((*all)[1], rows[1]);
  EXPECT_EQ((*all)[2], rows[2]);
  EXPECT_EQ((*all)[3].vm_id, "vm-b");
  EXPECT_EQ(bdfs_of("vm-a"),
            (std::vector<std::string>{"0000:18:00.0", "0000:18:00.1", "0000:19:00.0"}));
  EXPECT_EQ(bdfs_of("vm-b"), (std::vector<std::string>{"0000:2a:00.0"}));
  EXPECT_TRUE(bdfs_of("vm-none").empty());

  ASSERT_TRUE(db_->ledger().set_step("vm-a", test::pci_address("0000:18:00.1"), AssignmentStep::kUnbound, 2000));
  auto of_a = db_->ledger().list("vm-a");
  ASSERT_TRUE(of_a);
  EXPECT_EQ((*of_a)[1].step, AssignmentStep::kUnbound);
  EXPECT_EQ((*of_a)[1].updated_unix_ms, 2000);
  EXPECT_EQ((*of_a)[0].step, AssignmentStep::kClaimed);

  // The step of a device held by another VM is not touched.
  auto wrong_vm = db_->ledger().set_step("vm-b", test::pci_address("0000:18:00.0"), AssignmentStep::kBound, 3000);
  ASSERT_FALSE(wrong_vm);
  EXPECT_EQ(wrong_vm.error().code, Code::kNotFound);
  EXPECT_EQ(wrong_vm.error().message, "0000:18:00.0 is not assigned to vm vm-b");

  // Deleting touches only the VM's own rows; twice is harmless.
  auto deleted = db_->ledger().delete_assignments(
      "vm-a", {test::pci_address("0000:18:00.0"), test::pci_address("0000:2a:00.0"),
               test::pci_address("0000:99:00.0")});
  ASSERT_TRUE(deleted) << deleted.error().to_string();
  EXPECT_EQ(*deleted, 1);
  deleted = db_->ledger().delete_assignments("vm-a", {test::pci_address("0000:18:00.0")});
  ASSERT_TRUE(deleted);
  EXPECT_EQ(*deleted, 0);
  EXPECT_EQ(bdfs_of(), (std::vector<std::string>{"0000:18:00.1", "0000:19:00.0", "0000:2a:00.0"}));
  // A device whose row was deleted can be claimed again.
  EXPECT_TRUE(db_->ledger().claim("vm-b", {row("vm-b", "0000:18:00.0")}));
}

TEST_F(DeviceLedgerTest, ClaimIsAllOrNothing) {
  ASSERT_TRUE(db_->ledger().claim("vm-a", {row("vm-a", "0000:3a:00.0")}));
  auto claimed = db_->ledger().claim(
      "vm-b", {row("vm-b", "0000:18:00.0"), row("vm-b", "0000:2a:00.0"),
               row("vm-b", "0000:3a:00.0"), row("vm-b", "0000:5d:00.0")});
  ASSERT_FALSE(claimed);
  EXPECT_EQ(claimed.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(claimed.error().message, "0000:3a:00.0 is assigned to vm vm-a");
  EXPECT_EQ(bdfs_of(), (std::vector<std::string>{"0000:3a:00.0"})) << "a partial claim was kept";
  // The holder itself cannot claim a device twice either.
  auto again = db_->ledger().claim("vm-a", {row("vm-a", "0000:3a:00.0")});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, "0000:3a:00.0 is assigned to vm vm-a");
}

TEST_F(DeviceLedgerTest, ClaimRejectsBadRows) {
  auto empty_vm = db_->ledger().claim("", {row("", "0000:18:00.0")});
  ASSERT_FALSE(empty_vm);
  EXPECT_EQ(empty_vm.error().code, Code::kInvalidArgument);
  auto other_vm = db_->ledger().claim("vm-a", {row("vm-b", "0000:18:00.0")});
  ASSERT_FALSE(other_vm);
  EXPECT_EQ(other_vm.error().code, Code::kInvalidArgument);
  EXPECT_EQ(other_vm.error().message,
            "claim devices for vm vm-a: row of 0000:18:00.0 names vm \"vm-b\"");
  auto twice =
      db_->ledger().claim("vm-a", {row("vm-a", "0000:18:00.0"), row("vm-a", "0000:18:00.0")});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, Code::kInvalidArgument);
  EXPECT_EQ(twice.error().message, "claim devices for vm vm-a: 0000:18:00.0 is listed twice");
  EXPECT_TRUE(bdfs_of().empty());
  // An empty claim stores nothing and succeeds.
  EXPECT_TRUE(db_->ledger().claim("vm-a", {}));
}

TEST_F(DeviceLedgerTest, SurvivesReopenWithEveryStepAndRole) {
  std::vector<DeviceAssignment> rows;
  const AssignmentStep steps[] = {AssignmentStep::kClaimed, AssignmentStep::kOverrideSet,
                                  AssignmentStep::kUnbound, AssignmentStep::kBound,
                                  AssignmentStep::kReleasing};
  const DeviceRole roles[] = {DeviceRole::kRequested, DeviceRole::kFunction,
                              DeviceRole::kGroupPeer, DeviceRole::kFabric};
  for (int i = 0; i < 5; ++i) {
    DeviceAssignment r = row("vm-a", "0000:1" + std::to_string(i) + ":00.0", roles[i % 4]);
    r.step = steps[i];
    r.original_driver = i == 2 ? "" : "drv" + std::to_string(i);
    r.original_override = i == 4 ? "vfio-pci" : "";
    if (i == 3) r.iommu_group.reset();  // stored as ""
    else r.iommu_group = pci::IommuGroup(static_cast<uint32_t>(i + 40));
    r.updated_unix_ms = 1000 + i;
    rows.push_back(r);
  }
  ASSERT_TRUE(db_->ledger().claim("vm-a", rows));
  db_.reset();  // "daemon restart"
  auto reopened = Database::open(path_);
  ASSERT_TRUE(reopened);
  auto stored = (*reopened)->ledger().list(std::nullopt);
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, rows);
}

TEST_F(DeviceLedgerTest, CorruptRowIsInternalError) {
  ASSERT_TRUE(db_->ledger().claim("vm-a", {row("vm-a", "0000:18:00.0")}));
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  sqlite3_busy_timeout(raw, 5000);
  // The CHECK constraint guards the column; a damaged file could still hold anything.
  ASSERT_EQ(sqlite3_exec(raw,
                         "PRAGMA ignore_check_constraints = ON; "
                         "UPDATE device_assignments SET step = 'flying'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(raw);
  sqlite3_close(raw);
  auto rows = db_->ledger().list(std::nullopt);
  ASSERT_FALSE(rows);
  EXPECT_EQ(rows.error().code, Code::kInternal);
  EXPECT_EQ(rows.error().message,
            "corrupt record for device assignment 0000:18:00.0: step: unknown step \"flying\"");
}

// The address column holds canonical text; one that is not an address is a damaged file too.
TEST_F(DeviceLedgerTest, RowWhoseAddressDoesNotParseIsInternalError) {
  ASSERT_TRUE(db_->ledger().claim("vm-a", {row("vm-a", "0000:18:00.0")}));
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  sqlite3_busy_timeout(raw, 5000);
  ASSERT_EQ(sqlite3_exec(raw, "UPDATE device_assignments SET bdf = '../18:00.0'", nullptr, nullptr,
                         nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(raw);
  sqlite3_close(raw);
  auto rows = db_->ledger().list(std::nullopt);
  ASSERT_FALSE(rows);
  EXPECT_EQ(rows.error().code, Code::kInternal);
  EXPECT_EQ(rows.error().message,
            "corrupt record for device assignment ../18:00.0: bdf: invalid PCI address "
            "'../18:00.0': wrong length (expected DDDD:BB:DD.F or BB:DD.F, hex)");
}

TEST_F(DeviceLedgerTest, StepAndRoleNamesRoundTrip) {
  for (auto step : {AssignmentStep::kClaimed, AssignmentStep::kOverrideSet,
                    AssignmentStep::kUnbound, AssignmentStep::kBound, AssignmentStep::kReleasing}) {
    EXPECT_EQ(step_from_name(step_name(step)), step);
  }
  for (auto role : {DeviceRole::kRequested, DeviceRole::kFunction, DeviceRole::kGroupPeer, DeviceRole::kFabric}) {
    EXPECT_EQ(role_from_name(role_name(role)), role);
  }
  EXPECT_FALSE(step_from_name("Bound"));
  EXPECT_FALSE(role_from_name(""));
}

// Claims racing from two connections (as two processes would) and many threads: each device ends
// up with exactly one holder, and every claim either got all of its devices or none.
TEST_F(DeviceLedgerTest, ConcurrentClaimsHaveOneWinnerPerDevice) {
  auto second = Database::open(path_);
  ASSERT_TRUE(second);
  constexpr int kClaims = 40;
  const std::vector<std::string> gpus = {"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0",
                                         "0000:5d:00.0", "0000:9a:00.0", "0000:ab:00.0",
                                         "0000:ba:00.0", "0000:db:00.0"};
  std::vector<int> outcome(kClaims, -1);  // 1 won, 0 lost cleanly, -1 other error
  std::vector<std::vector<std::string>> wanted(kClaims);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClaims; ++c) {
    // Each claim wants two neighbouring GPUs (with their second function).
    for (int k = 0; k < 2; ++k) {
      const std::string& gpu = gpus[(c + k) % gpus.size()];
      wanted[c].push_back(gpu);
      wanted[c].push_back(gpu.substr(0, 11) + "1");
    }
    threads.emplace_back([&, c] {
      Database& db = c % 2 == 0 ? *db_ : **second;
      const std::string vm = "vm-" + std::to_string(c);
      std::vector<DeviceAssignment> rows;
      for (const auto& bdf : wanted[c]) rows.push_back(row(vm, bdf));
      while (!go) std::this_thread::yield();
      auto claimed = db.ledger().claim(vm, rows);
      if (claimed) outcome[c] = 1;
      else if (claimed.error().code == Code::kFailedPrecondition) outcome[c] = 0;
    });
  }
  go = true;
  for (auto& t : threads) t.join();

  auto rows = db_->ledger().list(std::nullopt);
  ASSERT_TRUE(rows);
  std::map<std::string, int> rows_per_vm;
  for (const auto& r : *rows) ++rows_per_vm[r.vm_id];
  int winners = 0;
  for (int c = 0; c < kClaims; ++c) {
    ASSERT_NE(outcome[c], -1) << "claim " << c << " failed with an unexpected error";
    const std::string vm = "vm-" + std::to_string(c);
    if (outcome[c] == 1) {
      ++winners;
      EXPECT_EQ(rows_per_vm[vm], 4) << vm;
    } else {
      EXPECT_EQ(rows_per_vm.count(vm), 0u) << vm << " lost but kept rows";
    }
  }
  EXPECT_GE(winners, 1);
  EXPECT_LE(winners, 4);  // 8 GPUs, 2 per claim
  EXPECT_EQ(rows->size(), static_cast<size_t>(winners * 4));
}

}  // namespace
}  // namespace feos::store
