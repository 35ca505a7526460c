// The rules of store::DeviceLedger that hostdev relies on, run against both implementations: the
// SQLite ledger and the in-memory one hostdev tests use (tests/support/fake_device_ledger.h), so
// the fake cannot drift from the real ledger.
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/database.h"
#include "support/fake_device_ledger.h"
#include "support/pci_literals.h"
#include "support/temp_dir.h"

namespace feos::store {
namespace {

DeviceAssignment row(const std::string& vm, const std::string& bdf) {
  DeviceAssignment r;
  r.bdf = test::pci_address(bdf);
  r.vm_id = vm;
  r.step = AssignmentStep::kClaimed;
  return r;
}

std::vector<std::string> bdfs(DeviceLedger& ledger, std::optional<std::string_view> vm) {
  std::vector<std::string> out;
  auto rows = ledger.list(vm);
  EXPECT_TRUE(rows) << rows.error().to_string();
  if (rows)
    for (const auto& r : *rows) out.push_back(r.bdf.to_string());
  return out;
}

enum class Kind { kSqlite, kInMemory };
void PrintTo(Kind kind, std::ostream* out) { *out << (kind == Kind::kSqlite ? "sqlite" : "in-memory"); }

class DeviceLedgerContractTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::kInMemory) {
      fake_ = std::make_unique<test::FakeDeviceLedger>();
      ledger_ = fake_.get();
      return;
    }
    auto db = Database::open(dir_.file("feosd.db"));
    ASSERT_TRUE(db) << db.error().to_string();
    db_ = std::move(*db);
    ledger_ = &db_->ledger();
  }
  test::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<test::FakeDeviceLedger> fake_;
  DeviceLedger* ledger_ = nullptr;
};

TEST_P(DeviceLedgerContractTest, AHeldDeviceIsRefusedNamingItsHolderAndNothingIsWritten) {
  ASSERT_TRUE(ledger_->claim("vm-a", {row("vm-a", "0000:18:00.0")}));
  auto second = ledger_->claim("vm-b", {row("vm-b", "0000:2a:00.0"), row("vm-b", "0000:18:00.0")});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(second.error().message, "0000:18:00.0 is assigned to vm vm-a");
  EXPECT_EQ(bdfs(*ledger_, std::nullopt), std::vector<std::string>{"0000:18:00.0"});
}

TEST_P(DeviceLedgerContractTest, BadClaimsAreInvalidArgumentWithTheSameMessages) {
  auto twice = ledger_->claim("vm-a", {row("vm-a", "0000:18:00.0"), row("vm-a", "0000:18:00.0")});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().message, "claim devices for vm vm-a: 0000:18:00.0 is listed twice");
  auto other = ledger_->claim("vm-a", {row("vm-b", "0000:18:00.0")});
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().message, "claim devices for vm vm-a: row of 0000:18:00.0 names vm \"vm-b\"");
  auto empty = ledger_->claim("", {});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, Code::kInvalidArgument);
  EXPECT_TRUE(bdfs(*ledger_, std::nullopt).empty());
}

TEST_P(DeviceLedgerContractTest, RowsListSortedAndDeleteTouchesOnlyTheHoldersRows) {
  ASSERT_TRUE(ledger_->claim("vm-a", {row("vm-a", "0000:3a:00.0"), row("vm-a", "0000:18:00.0")}));
  ASSERT_TRUE(ledger_->claim("vm-b", {row("vm-b", "0000:2a:00.0")}));
  EXPECT_EQ(bdfs(*ledger_, std::nullopt),
            (std::vector<std::string>{"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0"}));
  EXPECT_EQ(bdfs(*ledger_, "vm-a"), (std::vector<std::string>{"0000:18:00.0", "0000:3a:00.0"}));
  auto step = ledger_->set_step("vm-b", test::pci_address("0000:18:00.0"), AssignmentStep::kBound, 1);
  ASSERT_FALSE(step);
  EXPECT_EQ(step.error().code, Code::kNotFound);
  std::vector<pci::Address> all = {test::pci_address("0000:18:00.0"), test::pci_address("0000:2a:00.0")};
  auto deleted = ledger_->delete_assignments("vm-a", all);
  ASSERT_TRUE(deleted) << deleted.error().to_string();
  EXPECT_EQ(*deleted, 1);  // 0000:2a:00.0 is vm-b's
  EXPECT_EQ(bdfs(*ledger_, std::nullopt), (std::vector<std::string>{"0000:2a:00.0", "0000:3a:00.0"}));
}

INSTANTIATE_TEST_SUITE_P(Ledgers, DeviceLedgerContractTest,
                         ::testing::Values(Kind::kSqlite, Kind::kInMemory),
                         [](const auto& info) {
                           return info.param == Kind::kSqlite ? std::string("Sqlite")
                                                              : std::string("InMemory");
                         });

}  // namespace
}  // namespace feos::store
