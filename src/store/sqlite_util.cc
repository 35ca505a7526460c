#include "store/sqlite_util.h"

#include <algorithm>
#include <string>

#include <sqlite3.h>

namespace feos::store {

Error sqlite_error(sqlite3* db, int rc, std::string_view op) {
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

Status exec_sql(sqlite3* db, const char* sql, std::string_view op) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, op));
  return ok();
}

namespace {

// Runs `sql` and hands its first row's first column to `read`.
template <typename T, typename Read>
Result<T> query_one(sqlite3* db, const char* sql, std::string_view op, Read read) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, op));
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    T value = read(stmt);
    sqlite3_finalize(stmt);
    return value;
  }
  Error error = rc == SQLITE_DONE ? Error{Code::kInternal, std::string(op) + ": no result row"}
                                  : sqlite_error(db, rc, op);
  sqlite3_finalize(stmt);
  return fail(std::move(error));
}

}  // namespace

Result<int64_t> query_int(sqlite3* db, const char* sql, std::string_view op) {
  return query_one<int64_t>(db, sql, op,
                            [](sqlite3_stmt* stmt) { return sqlite3_column_int64(stmt, 0); });
}

Result<std::string> query_text(sqlite3* db, const char* sql, std::string_view op) {
  return query_one<std::string>(db, sql, op, [](sqlite3_stmt* stmt) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    return text != nullptr ? std::string(text) : std::string();
  });
}

}  // namespace feos::store
