#pragma once
// The store's SQLite layer (internal to src/store): the one connection the stores share, used by
// one thread at a time through a Lock, with its prepared statements cached; a Query that binds,
// steps and resets a cached statement; a Transaction that rolls back unless committed; and
// SQLite's failures as Error.
//
// One connection for all stores: SQLite serializes writers anyway, one connection keeps the
// statements cached, and our own threads never meet SQLITE_BUSY among themselves (only another
// process on the same file can make a call wait, up to the busy timeout).
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/error.h"

struct sqlite3;
struct sqlite3_stmt;

namespace feos::store::sqlite {

// Turns a failed SQLite call into an Error whose message is
// "<op>: <sqlite3_errmsg> (sqlite code <extended code>)".
// Code: UNAVAILABLE for SQLITE_BUSY / SQLITE_LOCKED (another connection holds the database past
// the busy timeout; retrying may succeed), RESOURCE_EXHAUSTED for SQLITE_FULL (the message then
// starts "the state directory <dir of the database file> is full: "), INTERNAL for everything
// else.
// Precondition: `rc` is the result of the last call on `db` (or `db` is null), so
// sqlite3_errmsg describes it.
Error to_error(sqlite3* db, int rc, std::string_view op);

class Lock;

// An open database file, shared by the stores.
class Connection {
 public:
  // Opens (creating if needed) the database file at `path` for use from many threads, one at a
  // time (through Lock), with extended result codes, waiting up to `busy_timeout_ms` for locks
  // that other connections hold.
  // Errors: FAILED_PRECONDITION when SQLite was built without thread support; as to_error naming
  // "open database <path>" when the file cannot be opened.
  static Result<std::unique_ptr<Connection>> open(const std::string& path, int busy_timeout_ms);

  // Finalizes the cached statements and closes the file. No Lock may be alive.
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

 private:
  friend class Lock;
  explicit Connection(sqlite3* db) : db_(db) {}

  std::mutex mu_;
  sqlite3* const db_;                                                // used under mu_
  std::unordered_map<std::string_view, sqlite3_stmt*> statements_;  // by SQL text; guarded by mu_
};

// A cached statement in use: binds, steps, and on destruction resets, so that it holds no read
// transaction and no bound data once the call is over. Made by Lock::query; must not outlive that
// Lock.
class Query {
 public:
  Query(Query&& other) noexcept;
  Query& operator=(Query&&) = delete;
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  ~Query();

  // Binds ?index. An empty view binds an empty string, not NULL. A failed bind is reported by the
  // next step().
  void bind(int index, std::string_view text);
  void bind(int index, int64_t value);

  // Advances to the next row: true on a row, false when done.
  // Errors: the first failed bind, else the failed step, as to_error naming `op`.
  Result<bool> step(std::string_view op);
  // The extended result code of the last bind or step, to tell constraint failures apart.
  int rc() const { return rc_; }

  // Columns of the current row.
  int64_t integer(int column) const;
  std::string text(int column) const;

 private:
  friend class Lock;
  Query(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

  sqlite3* db_;
  sqlite3_stmt* stmt_;  // null once moved from
  int bind_rc_ = 0;     // first failed bind (SQLITE_OK = 0 while none), reported by step()
  int rc_ = 0;          // last bind or step
};

// Exclusive use of a Connection: holds its mutex from construction to destruction. Every use of
// the connection goes through one, so a function that takes `Lock&` runs with it held.
class Lock {
 public:
  explicit Lock(Connection& connection)
      : connection_(connection), guard_(connection.mu_) {}
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  // The cached statement for `sql`, ready to bind; prepared on first use. `sql` must be a string
  // literal: the cache keys on its text.
  // Errors: as to_error naming "prepare statement \"<sql>\"".
  Result<Query> query(const char* sql);

  // Runs one or more statements that return no rows (sqlite3_exec), e.g. a pragma.
  // Errors: as to_error naming `op`.
  Status exec(const char* sql, std::string_view op);

  // Runs a statement (not cached) that returns one integer, e.g. "PRAGMA user_version".
  // Errors: as to_error naming `op`; INTERNAL "<op>: no result row" when it yields no row.
  Result<int64_t> query_int(const char* sql, std::string_view op);
  // As query_int, for one text value (e.g. "PRAGMA journal_mode = WAL"); NULL reads as "".
  Result<std::string> query_text(const char* sql, std::string_view op);

  // Rows changed by the last INSERT, UPDATE or DELETE on this connection.
  int changes() const;
  // The rowid of the last successful INSERT on this connection.
  int64_t last_insert_rowid() const;
  // Whether a transaction is open (not in autocommit mode).
  bool in_transaction() const;

 private:
  Connection& connection_;
  std::lock_guard<std::mutex> guard_;
};

// A write transaction, BEGIN IMMEDIATE to COMMIT, rolled back when it ends without a successful
// commit(): on an early return with an error, and after a failed COMMIT (which leaves SQLite's
// transaction open). IMMEDIATE takes the write lock up front, so a transaction of another
// connection on the same file waits for this one (up to the busy timeout) instead of failing half
// way. Must end before its Lock; Queries made inside it should end before it.
class Transaction {
 public:
  // Errors: as to_error naming `op` (UNAVAILABLE when another connection holds the write lock
  // past the busy timeout).
  static Result<Transaction> begin(Lock& lock, std::string_view op);

  Transaction(Transaction&& other) noexcept : lock_(other.lock_) { other.lock_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  // ROLLBACK unless committed. A failed rollback is ignored: the caller returns the error that
  // made it roll back, and nothing was committed.
  ~Transaction();

  // COMMIT.
  // Errors: as to_error naming `op`; the transaction then stays open, and ends rolled back when
  // this object does.
  Status commit(std::string_view op);

 private:
  explicit Transaction(Lock& lock) : lock_(&lock) {}

  Lock* lock_;  // null once committed (or moved from)
};

}  // namespace feos::store::sqlite
