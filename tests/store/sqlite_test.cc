// store/sqlite: the shared connection, cached queries, transactions and error mapping.
#include "store/sqlite.h"

#include <string>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "support/temp_dir.h"

namespace feos::store::sqlite {
namespace {

using ::feos::test::TempDir;

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Connection::open(path_, 50);
    ASSERT_TRUE(opened) << opened.error().to_string();
    connection_ = std::move(*opened);
    Lock db(*connection_);
    ASSERT_TRUE(db.exec("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)", "create"));
  }
  int64_t rows() {
    Lock db(*connection_);
    return db.query_int("SELECT count(*) FROM t", "count").value();
  }

  TempDir dir_;
  const std::string path_ = dir_.file("test.db");
  std::unique_ptr<Connection> connection_;
};

TEST_F(SqliteTest, TransactionCommits) {
  {
    Lock db(*connection_);
    auto transaction = Transaction::begin(db, "begin");
    ASSERT_TRUE(transaction) << transaction.error().to_string();
    EXPECT_TRUE(db.in_transaction());
    ASSERT_TRUE(db.exec("INSERT INTO t VALUES (1, 'x')", "insert"));
    ASSERT_TRUE(transaction->commit("commit"));
    EXPECT_FALSE(db.in_transaction());
  }  // the committed transaction ends without a rollback
  EXPECT_EQ(rows(), 1);
  // Another connection sees it.
  auto other = Connection::open(path_, 50);
  ASSERT_TRUE(other);
  Lock db(**other);
  EXPECT_EQ(db.query_text("SELECT b FROM t WHERE a = 1", "read").value(), "x");
}

TEST_F(SqliteTest, TransactionRollsBackOnScopeExitWithoutCommit) {
  auto insert_then_fail = [&]() -> Status {
    Lock db(*connection_);
    FEOS_ASSIGN_OR_RETURN(Transaction transaction, Transaction::begin(db, "begin"));
    FEOS_TRY(db.exec("INSERT INTO t VALUES (1, 'x')", "insert 1"));
    FEOS_TRY(db.exec("INSERT INTO t VALUES (1, 'again')", "insert 2"));  // primary key clash
    return transaction.commit("commit");
  };
  auto status = insert_then_fail();
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message.rfind("insert 2: UNIQUE constraint failed", 0), 0u)
      << status.error().message;
  EXPECT_EQ(rows(), 0) << "the first insert was kept";
  Lock db(*connection_);
  EXPECT_FALSE(db.in_transaction());
}

// SQLite leaves the transaction open when COMMIT fails (here: a deferred foreign key); the
// Transaction rolls it back when it ends.
TEST_F(SqliteTest, FailedCommitLeavesTheTransactionOpenUntilItEnds) {
  Lock db(*connection_);
  ASSERT_TRUE(db.exec("PRAGMA foreign_keys = ON; CREATE TABLE child (p INTEGER REFERENCES t (a) "
                      "DEFERRABLE INITIALLY DEFERRED)",
                      "schema"));
  {
    auto transaction = Transaction::begin(db, "begin");
    ASSERT_TRUE(transaction);
    ASSERT_TRUE(db.exec("INSERT INTO child VALUES (42)", "insert orphan"));
    auto committed = transaction->commit("commit orphan");
    ASSERT_FALSE(committed);
    EXPECT_EQ(committed.error().code, Code::kInternal);
    EXPECT_EQ(committed.error().message.rfind("commit orphan: FOREIGN KEY constraint failed", 0),
              0u)
        << committed.error().message;
    EXPECT_TRUE(db.in_transaction());
  }
  EXPECT_FALSE(db.in_transaction());
  EXPECT_EQ(db.query_int("SELECT count(*) FROM child", "count").value(), 0);
}

TEST_F(SqliteTest, BeginWhileAnotherConnectionWritesIsUnavailable) {
  auto other = Connection::open(path_, 50);
  ASSERT_TRUE(other);
  Lock other_db(**other);
  auto holding = Transaction::begin(other_db, "other begin");
  ASSERT_TRUE(holding);
  Lock db(*connection_);
  auto blocked = Transaction::begin(db, "claim devices for vm a");
  ASSERT_FALSE(blocked);
  EXPECT_EQ(blocked.error().code, Code::kUnavailable);
  EXPECT_EQ(blocked.error().message.rfind("claim devices for vm a: database is locked", 0), 0u)
      << blocked.error().message;
  EXPECT_FALSE(db.in_transaction());
}

TEST_F(SqliteTest, QueriesBindStepAndReset) {
  Lock db(*connection_);
  ASSERT_TRUE(db.exec("INSERT INTO t VALUES (1, 'one'), (2, ''), (3, 'three')", "insert"));
  for (int round = 0; round < 2; ++round) {  // the second round reuses the cached statement
    auto query = db.query("SELECT b FROM t WHERE a >= ?1 ORDER BY a");
    ASSERT_TRUE(query);
    query->bind(1, int64_t{1});
    ASSERT_EQ(query->step("read").value(), true);
    EXPECT_EQ(query->text(0), "one");
    // Destroyed after one row: reset, so the next use starts from the first row again.
  }
  // An empty text binds '' (not NULL).
  auto empty = db.query("SELECT ?1 IS NULL, length(?1)");
  ASSERT_TRUE(empty);
  empty->bind(1, std::string_view());
  ASSERT_EQ(empty->step("read").value(), true);
  EXPECT_EQ(empty->integer(0), 0);
  EXPECT_EQ(empty->integer(1), 0);
}

TEST_F(SqliteTest, FailedBindIsReportedByStep) {
  Lock db(*connection_);
  auto query = db.query("SELECT ?1");
  ASSERT_TRUE(query);
  query->bind(2, int64_t{5});  // no ?2
  auto stepped = query->step("select");
  ASSERT_FALSE(stepped);
  EXPECT_EQ(stepped.error().code, Code::kInternal);
  EXPECT_EQ(query->rc(), SQLITE_RANGE);
  EXPECT_EQ(stepped.error().message.rfind("select: ", 0), 0u) << stepped.error().message;
}

TEST_F(SqliteTest, ErrorsNameTheOperation) {
  Lock db(*connection_);
  auto missing = db.query("SELECT * FROM nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kInternal);
  EXPECT_EQ(missing.error().message.rfind(
                "prepare statement \"SELECT * FROM nope\": no such table: nope (sqlite code 1)", 0),
            0u)
      << missing.error().message;
  auto none = db.query_int("SELECT a FROM t", "first a");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message, "first a: no result row");

  EXPECT_EQ(to_error(nullptr, SQLITE_BUSY, "op").code, Code::kUnavailable);
  EXPECT_EQ(to_error(nullptr, SQLITE_LOCKED, "op").code, Code::kUnavailable);
  const Error full = to_error(nullptr, SQLITE_FULL, "insert vm a");
  EXPECT_EQ(full.code, Code::kResourceExhausted);
  EXPECT_EQ(full.message,
            "the state directory ? is full: insert vm a: database or disk is full (sqlite code 13)");
  EXPECT_EQ(to_error(nullptr, SQLITE_CORRUPT, "op").code, Code::kInternal);
}

TEST(SqliteOpenTest, UnopenablePathNamesIt) {
  TempDir dir;
  const std::string path = dir.file("missing-dir/test.db");
  auto opened = Connection::open(path, 0);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kInternal);
  EXPECT_EQ(opened.error().message.rfind("open database " + path + ": ", 0), 0u)
      << opened.error().message;
}

}  // namespace
}  // namespace feos::store::sqlite
