#include "store/sqlite.h"

#include <algorithm>
#include <string>
#include <utility>

#include <sqlite3.h>

namespace feos::store::sqlite {

Error to_error(sqlite3* db, int rc, std::string_view op) {
  const int primary = rc & 0xff;
  // Without a connection (open failed before one existed) only the generic text is known.
  const char* text = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string message = std::string(op) + ": " + text + " (sqlite code " + std::to_string(rc) + ")";
  if (primary == SQLITE_FULL) {
    // Out of space is the operator's to fix: say where.
    const char* file = db != nullptr ? sqlite3_db_filename(db, "main") : nullptr;
    std::string dir = file != nullptr && *file != '\0' ? std::string(file) : std::string("?");
    dir = dir.substr(0, dir.rfind('/') == std::string::npos ? dir.size() : std::max<size_t>(dir.rfind('/'), 1));
    return Error{Code::kResourceExhausted, "the state directory " + dir + " is full: " + message};
  }
  const Code code =
      (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) ? Code::kUnavailable : Code::kInternal;
  return Error{code, std::move(message)};
}

// --- Connection ---

Result<std::unique_ptr<Connection>> Connection::open(const std::string& path,
                                                     int busy_timeout_ms) {
  const std::string op = "open database " + path;
  // The connection is used from many threads (one at a time, under a Lock): SQLite must not be
  // built single-threaded.
  if (sqlite3_threadsafe() == 0) {
    return fail(Code::kFailedPrecondition,
                op + ": SQLite library was built without thread support");
  }
  sqlite3* raw = nullptr;
  // NOMUTEX: Lock serializes the threads already.
  const int rc = sqlite3_open_v2(path.c_str(), &raw,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  // Owns `raw` from here on (a failed open still allocates a handle), so an error return closes
  // it.
  std::unique_ptr<Connection> connection(new Connection(raw));
  if (rc != SQLITE_OK) return fail(to_error(raw, rc, op));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  return connection;
}

Connection::~Connection() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close(db_);  // accepts nullptr; all statements are finalized, so it closes now
}

// --- Query ---

Query::Query(Query&& other) noexcept
    : db_(other.db_), stmt_(other.stmt_), bind_rc_(other.bind_rc_), rc_(other.rc_) {
  other.stmt_ = nullptr;
}

Query::~Query() {
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void Query::bind(int index, std::string_view text) {
  // A null pointer would bind SQL NULL; an empty view must stay an empty string.
  const char* data = text.data() != nullptr ? text.data() : "";
  const int rc =
      sqlite3_bind_text64(stmt_, index, data, text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

void Query::bind(int index, int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

Result<bool> Query::step(std::string_view op) {
  if (bind_rc_ != SQLITE_OK) {
    rc_ = bind_rc_;
    return fail(to_error(db_, rc_, op));
  }
  rc_ = sqlite3_step(stmt_);
  if (rc_ == SQLITE_ROW) return true;
  if (rc_ == SQLITE_DONE) return false;
  return fail(to_error(db_, rc_, op));
}

int64_t Query::integer(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Query::text(int column) const {
  const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  if (data == nullptr) return {};
  return std::string(data, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

// --- Lock ---

Result<Query> Lock::query(const char* sql) {
  sqlite3* db = connection_.db_;
  auto& statements = connection_.statements_;
  auto it = statements.find(sql);
  if (it != statements.end()) return Query(db, it->second);
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return fail(to_error(db, rc, "prepare statement \"" + std::string(sql) + "\""));
  }
  statements.emplace(sql, stmt);
  return Query(db, stmt);
}

Status Lock::exec(const char* sql, std::string_view op) {
  const int rc = sqlite3_exec(connection_.db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return fail(to_error(connection_.db_, rc, op));
  return ok();
}

namespace {

// Runs `sql` and hands its first row's first column to `read`.
template <typename T, typename Read>
Result<T> query_one(sqlite3* db, const char* sql, std::string_view op, Read read) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return fail(to_error(db, rc, op));
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    T value = read(stmt);
    sqlite3_finalize(stmt);
    return value;
  }
  Error error = rc == SQLITE_DONE ? Error{Code::kInternal, std::string(op) + ": no result row"}
                                  : to_error(db, rc, op);
  sqlite3_finalize(stmt);
  return fail(std::move(error));
}

}  // namespace

Result<int64_t> Lock::query_int(const char* sql, std::string_view op) {
  return query_one<int64_t>(connection_.db_, sql, op,
                            [](sqlite3_stmt* stmt) { return sqlite3_column_int64(stmt, 0); });
}

Result<std::string> Lock::query_text(const char* sql, std::string_view op) {
  return query_one<std::string>(connection_.db_, sql, op, [](sqlite3_stmt* stmt) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    return text != nullptr ? std::string(text) : std::string();
  });
}

int Lock::changes() const { return sqlite3_changes(connection_.db_); }

int64_t Lock::last_insert_rowid() const { return sqlite3_last_insert_rowid(connection_.db_); }

bool Lock::in_transaction() const { return sqlite3_get_autocommit(connection_.db_) == 0; }

// --- Transaction ---

Result<Transaction> Transaction::begin(Lock& lock, std::string_view op) {
  FEOS_TRY(lock.exec("BEGIN IMMEDIATE", op));
  return Transaction(lock);
}

Transaction::~Transaction() {
  if (lock_ != nullptr) (void)lock_->exec("ROLLBACK", "rollback");
}

Status Transaction::commit(std::string_view op) {
  FEOS_TRY(lock_->exec("COMMIT", op));  // a failed COMMIT leaves the transaction open
  lock_ = nullptr;
  return ok();
}

}  // namespace feos::store::sqlite
