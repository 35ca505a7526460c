#include "store/database.h"

#include <utility>

#include "common/log.h"
#include "store/migrations.h"

namespace feos::store {

int Database::latest_schema_version() { return static_cast<int>(schema_migrations().size()); }

Database::Database(std::string path, std::unique_ptr<sqlite::Connection> connection,
                   const DatabaseOptions& options)
    : path_(std::move(path)),
      reserve_(path_ + ".reserve", options.reserve_bytes),
      connection_(std::move(connection)),
      events_(*connection_, options.max_events_per_vm),
      vms_(*connection_, events_),
      ledger_(*connection_) {}

Database::~Database() = default;

Result<std::unique_ptr<Database>> Database::open(const std::string& path,
                                                 const DatabaseOptions& options) {
  if (options.max_events_per_vm == 0) {
    return fail(Code::kInvalidArgument,
                "open database " + path + ": max_events_per_vm must be >= 1");
  }
  if (options.busy_timeout_ms < 0) {
    return fail(Code::kInvalidArgument,
                "open database " + path + ": busy_timeout_ms must be >= 0");
  }
  FEOS_ASSIGN_OR_RETURN(std::unique_ptr<sqlite::Connection> connection,
                        sqlite::Connection::open(path, options.busy_timeout_ms));
  const std::string op = "open database " + path;
  int version = 0;
  {
    sqlite::Lock db(*connection);
    FEOS_TRY(db.exec("PRAGMA foreign_keys = ON", op + ": enable foreign keys"));
    FEOS_ASSIGN_OR_RETURN(const int64_t foreign_keys,
                          db.query_int("PRAGMA foreign_keys", op + ": check foreign keys"));
    if (foreign_keys != 1) {
      return fail(Code::kFailedPrecondition,
                  op + ": SQLite library lacks foreign key support (events could outlive VMs)");
    }

    // Migrations come before the journal mode switch so that a database from a newer binary is
    // refused before anything is written to it.
    FEOS_ASSIGN_OR_RETURN(version, migrate(db, schema_migrations(), path));

    FEOS_ASSIGN_OR_RETURN(const std::string mode,
                          db.query_text("PRAGMA journal_mode = WAL", op + ": enable WAL journal"));
    if (mode != "wal") {
      return fail(Code::kInternal, op + ": cannot use WAL journal (journal mode stays \"" + mode +
                                       "\"; the file system may lack shared memory support)");
    }
    // NORMAL (with WAL): a commit survives a crash of feosd as soon as the call returns; only an
    // OS crash or power loss may drop the last commits. That is safe here: after a host reboot no
    // qemu runs and every device is back on its host driver, so reconcile() rebuilds the truth
    // from the kernel. FULL would fsync every ledger step and serialize parallel GPU preparation
    // behind it.
    FEOS_TRY(db.exec("PRAGMA synchronous = NORMAL", op + ": set synchronous"));
  }

  std::unique_ptr<Database> database(new Database(path, std::move(connection), options));
  database->schema_version_ = version;
  FEOS_TRY(database->events_.prune());
  database->reserve_.restore();
  log::get("store")->info("database opened path={} schema_version={}", path, version);
  return database;
}

}  // namespace feos::store
