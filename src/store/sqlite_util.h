#pragma once
// Helpers shared by the store's SQLite code (internal to src/store): error mapping and
// statements run once. The caller must own the connection exclusively while calling them
// (Database holds its mutex; migrate() runs before the connection is shared).
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"

struct sqlite3;

namespace feos::store {

// Turns a failed SQLite call into an Error whose message is
// "<op>: <sqlite3_errmsg> (sqlite code <extended code>)".
// Code: UNAVAILABLE for SQLITE_BUSY / SQLITE_LOCKED (another connection holds the database past
// the busy timeout; retrying may succeed), RESOURCE_EXHAUSTED for SQLITE_FULL (the message then
// starts "the state directory <dir of the database file> is full: "), INTERNAL for everything
// else.
// Precondition: `rc` is the result of the last call on `db`, so sqlite3_errmsg describes it.
Error sqlite_error(sqlite3* db, int rc, std::string_view op);

// Runs one or more SQL statements that return no rows (sqlite3_exec).
// Errors: as sqlite_error, naming `op`.
Status exec_sql(sqlite3* db, const char* sql, std::string_view op);

// Runs a statement that returns one integer (e.g. "PRAGMA user_version") and returns it.
// Errors: as sqlite_error; INTERNAL when the statement yields no row.
Result<int64_t> query_int(sqlite3* db, const char* sql, std::string_view op);

// Runs a statement that returns one text value (e.g. "PRAGMA journal_mode=WAL") and returns it.
// Errors: as query_int.
Result<std::string> query_text(sqlite3* db, const char* sql, std::string_view op);

}  // namespace feos::store
