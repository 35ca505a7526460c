#include "store/migrations.h"

#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "store/sqlite.h"

namespace feos::store {
namespace {

// A private in-memory database for one test, held for the whole test.
class MigrationsTest : public ::testing::Test {
 protected:
  int64_t int_of(const std::string& sql) {
    auto value = db_.query_int(sql.c_str(), "test query");
    EXPECT_TRUE(value) << sql << ": " << value.error().to_string();
    return value.value_or(-1);
  }
  void exec(const char* sql) {
    auto done = db_.exec(sql, "test statement");
    ASSERT_TRUE(done) << done.error().to_string();
  }
  int64_t version() { return int_of("PRAGMA user_version"); }
  bool has_table(const std::string& name) {
    return int_of("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '" + name +
                  "'") == 1;
  }

  std::unique_ptr<sqlite::Connection> connection_ = sqlite::Connection::open(":memory:", 0).value();
  sqlite::Lock db_{*connection_};
};

constexpr Migration kStep1{"create t1", "CREATE TABLE t1 (a INTEGER); INSERT INTO t1 VALUES (1);"};
constexpr Migration kStep2{"create t2", "CREATE TABLE t2 (b INTEGER);"};
// Fails half way: t3 is created, then the INSERT fails; the transaction must undo t3.
constexpr Migration kBrokenStep2{"broken step",
                                 "CREATE TABLE t3 (c INTEGER); INSERT INTO missing VALUES (1);"};

TEST_F(MigrationsTest, SchemaFromEmpty) {
  auto migrated = migrate(db_, schema_migrations(), "mem");
  ASSERT_TRUE(migrated) << migrated.error().to_string();
  EXPECT_EQ(*migrated, static_cast<int>(schema_migrations().size()));
  EXPECT_EQ(version(), static_cast<int64_t>(schema_migrations().size()));
  EXPECT_TRUE(has_table("vms"));
  EXPECT_TRUE(has_table("vm_events"));
  EXPECT_TRUE(has_table("device_assignments"));
  // Running it again changes nothing (every step already applied).
  auto again = migrate(db_, schema_migrations(), "mem");
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(*again, *migrated);
}

TEST_F(MigrationsTest, AppliesOnlyMissingSteps) {
  const Migration v1[] = {kStep1};
  ASSERT_TRUE(migrate(db_, v1, "mem"));
  EXPECT_EQ(version(), 1);
  // Step 1 re-run would fail ("table t1 already exists") and would insert a second row.
  const Migration v2[] = {kStep1, kStep2};
  auto migrated = migrate(db_, v2, "mem");
  ASSERT_TRUE(migrated) << migrated.error().to_string();
  EXPECT_EQ(*migrated, 2);
  EXPECT_EQ(version(), 2);
  EXPECT_TRUE(has_table("t2"));
  EXPECT_EQ(int_of("SELECT count(*) FROM t1"), 1);
}

TEST_F(MigrationsTest, FailedStepIsRolledBack) {
  const Migration steps[] = {kStep1, kBrokenStep2};
  auto migrated = migrate(db_, steps, "/var/lib/feos/test.db");
  ASSERT_FALSE(migrated);
  EXPECT_EQ(migrated.error().code, Code::kInternal);
  const std::string& message = migrated.error().message;
  EXPECT_NE(message.find("migrate /var/lib/feos/test.db to schema version 2 (broken step)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("no such table: missing"), std::string::npos) << message;
  // Step 1 committed on its own; step 2 left nothing behind.
  EXPECT_EQ(version(), 1);
  EXPECT_TRUE(has_table("t1"));
  EXPECT_FALSE(has_table("t3"));
  EXPECT_FALSE(db_.in_transaction()) << "a transaction was left open";
}

TEST_F(MigrationsTest, RefusesNewerVersionWithoutWriting) {
  exec("PRAGMA user_version = 7");
  const Migration steps[] = {kStep1, kStep2};
  auto migrated = migrate(db_, steps, "/data/feos.db");
  ASSERT_FALSE(migrated);
  EXPECT_EQ(migrated.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(migrated.error().message,
            "database /data/feos.db has schema version 7 but this feosd knows only versions up "
            "to 2; it was written by a newer feosd");
  EXPECT_EQ(version(), 7);
  EXPECT_FALSE(has_table("t1"));
}

// Step 4 (issue 17): ids stored as clients spelled them become lower case, with their events and
// ledger rows; a record whose lower-case id is taken keeps its spelling.
TEST_F(MigrationsTest, VmIdsBecomeLowerCaseWithTheirEventsAndDevices) {
  exec("PRAGMA foreign_keys = ON");
  ASSERT_TRUE(migrate(db_, schema_migrations().first(3), "mem"));
  const char* rows = R"sql(
    INSERT INTO vms (id, spec_json, state, state_reason, pid, created_unix_ms, updated_unix_ms)
      VALUES ('AAAAAAAA-0000-4000-8000-000000000001', '{}', 2, 'created', 0, 1, 1),
             ('bbbbbbbb-0000-4000-8000-000000000002', '{}', 2, 'created', 0, 2, 2),
             ('BBBBBBBB-0000-4000-8000-000000000002', '{}', 2, 'created', 0, 3, 3);
    INSERT INTO vm_events (vm_id, component_id, state, reason, unix_ms)
      VALUES ('AAAAAAAA-0000-4000-8000-000000000001', 'vm', 2, 'created', 1),
             ('BBBBBBBB-0000-4000-8000-000000000002', 'vm', 2, 'created', 3);
    INSERT INTO device_assignments VALUES
      ('0000:18:00.0', 'AAAAAAAA-0000-4000-8000-000000000001', 'requested', '40', 'nvidia', '', 'bound', 1);
  )sql";
  exec(rows);
  auto migrated = migrate(db_, schema_migrations(), "mem");
  ASSERT_TRUE(migrated) << migrated.error().to_string();
  EXPECT_EQ(int_of("SELECT count(*) FROM vms WHERE id = 'aaaaaaaa-0000-4000-8000-000000000001'"), 1);
  EXPECT_EQ(int_of("SELECT count(*) FROM vm_events WHERE vm_id = 'aaaaaaaa-0000-4000-8000-000000000001'"), 1);
  EXPECT_EQ(int_of("SELECT count(*) FROM device_assignments WHERE vm_id = 'aaaaaaaa-0000-4000-8000-000000000001'"), 1);
  // The collision: both spellings stay, each with its own events.
  EXPECT_EQ(int_of("SELECT count(*) FROM vms WHERE lower(id) = 'bbbbbbbb-0000-4000-8000-000000000002'"), 2);
  EXPECT_EQ(int_of("SELECT count(*) FROM vm_events WHERE vm_id = 'BBBBBBBB-0000-4000-8000-000000000002'"), 1);
  EXPECT_EQ(int_of("SELECT count(*) FROM pragma_foreign_key_check"), 0);
  EXPECT_EQ(int_of("SELECT count(*) FROM sqlite_temp_master"), 0);  // the helper table is gone
}


// Every column of every table has a comment saying why it exists: on its line or on the line(s)
// right above it.
TEST(SchemaTest, EveryColumnIsCommented) {
  int columns = 0;
  for (const Migration& step : schema_migrations()) {
    std::istringstream lines(step.sql);
    std::string line;
    bool in_table = false;
    bool comment_above = false;
    while (std::getline(lines, line)) {
      const auto start = line.find_first_not_of(' ');
      if (start == std::string::npos) {
        comment_above = false;
        continue;
      }
      if (line.compare(start, 2, "--") == 0) {
        comment_above = true;
        continue;
      }
      if (line.find("ADD COLUMN") != std::string::npos) {
        ++columns;
        EXPECT_TRUE(comment_above || line.find("--") != std::string::npos)
            << "step \"" << step.description << "\": column without comment: " << line;
      } else if (line.find("CREATE TABLE") != std::string::npos) {
        in_table = true;
      } else if (in_table && line[start] == ')') {
        in_table = false;
      } else if (in_table) {
        ++columns;
        EXPECT_TRUE(comment_above || line.find("--") != std::string::npos)
            << "step \"" << step.description << "\": column without comment: " << line;
      }
      comment_above = false;
    }
    EXPECT_FALSE(in_table) << "step \"" << step.description << "\": unterminated CREATE TABLE";
  }
  EXPECT_GE(columns, 23);  // vms 9, vm_events 6, device_assignments 8: the check saw them
}

}  // namespace
}  // namespace feos::store
