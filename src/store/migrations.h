#pragma once
// The database schema as an ordered list of migration steps, and the runner that applies them.
//
// PRAGMA user_version holds how many steps a database has had: step i (0-based) takes it from
// version i to i+1. To change the schema, APPEND a step to the list in migrations.cc (never edit
// a step that has shipped: databases in the field already ran it) and comment every new column.
// Each step runs in its own transaction together with its user_version bump, so a failed or
// interrupted step leaves the database at the previous version, unchanged.
#include <span>
#include <string_view>

#include "common/error.h"

#include "store/sqlite.h"

namespace feos::store {

struct Migration {
  const char* description;  // for logs and errors: "vms and vm_events"
  const char* sql;          // one or more statements; run with sqlite3_exec
};

// The schema's history, oldest first. Its size is the newest version this binary knows.
std::span<const Migration> schema_migrations();

// Applies to the database held by `db` every step of `steps` it has not had yet, in order, each
// in its own sqlite::Transaction (the version is re-read inside it, so two processes opening the
// same file at once do not both apply a step). Returns the resulting version (== steps.size()).
// `path` only names the database in messages and logs.
// Precondition: no transaction is open on the connection.
// Errors: FAILED_PRECONDITION when the database's version is newer than steps.size() (written by
// a newer binary; it is left untouched), naming both versions; a failing step as
// sqlite::to_error (INTERNAL, or UNAVAILABLE when locked) prefixed with the step's version and
// description (the step is rolled back).
Result<int> migrate(sqlite::Lock& db, std::span<const Migration> steps, std::string_view path);

}  // namespace feos::store
