#pragma once
// The daemon's persistent state in one SQLite file: VM records (VmStore), their event history
// (EventLog), and the host-device ownership ledger (DeviceLedger). Database opens the file,
// brings its schema up to date and owns the three stores, which share its one connection.
//
// The stores are thread-safe: each call holds the connection and runs to completion before the
// next starts (sqlite.h says why one connection). The file is in WAL mode with
// synchronous=NORMAL, so readers do not block the writer and a call that returned success
// survives a crash of feosd (not necessarily an OS crash or power loss; see open() for why that
// is enough). Schema changes go through migrations.h.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "model/vm.h"
#include "store/device_assignment.h"
#include "store/device_ledger.h"
#include "store/event_log.h"
#include "store/space_reserve.h"
#include "store/sqlite.h"
#include "store/sqlite_device_ledger.h"
#include "store/vm_store.h"

namespace feos::store {

struct DatabaseOptions {
  // How long a call waits for a lock held by another connection (another process on the same
  // file) before failing with UNAVAILABLE.
  int busy_timeout_ms = 5000;
  // Events kept per VM. Appending trims a VM's oldest events once it holds about 10% more than
  // this (amortized: trimming scans `max_events_per_vm` index entries); open() and
  // EventLog::prune() trim to exactly this. Must be >= 1.
  uint32_t max_events_per_vm = 10000;
  // Bytes kept aside beside the database file (<path>.reserve) so that DeleteVm works on a full
  // disk (make_room()); 0: none.
  uint64_t reserve_bytes = 0;
};

class Database {
 public:
  // Opens (creating if needed) the database file at `path`, enables the busy timeout, foreign
  // keys and WAL, applies pending schema migrations (each in its own transaction) and trims every
  // VM's events to options.max_events_per_vm.
  // Errors: INVALID_ARGUMENT for bad options; FAILED_PRECONDITION when the file's schema version
  // is newer than this binary knows (naming both versions; the file is left untouched) or SQLite
  // was built without thread support; INTERNAL when the file cannot be opened or is not a
  // database (with SQLite's message); UNAVAILABLE when another process holds it locked.
  static Result<std::unique_ptr<Database>> open(const std::string& path,
                                                const DatabaseOptions& options = {});

  // The newest schema version this binary knows (the number of migration steps).
  static int latest_schema_version();

  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // The stores, valid as long as this Database.
  VmStore& vms() { return vms_; }
  EventLog& events() { return events_; }
  DeviceLedger& ledger() { return ledger_; }

  const std::string& path() const { return path_; }
  // The file's schema version after open() (== latest_schema_version()).
  int schema_version() const { return schema_version_; }

  // Gives up the reserve (DatabaseOptions::reserve_bytes) when the disk is nearly full, so that
  // the writes of a delete that follow find room; restore_reserve() takes it back when there is
  // room again. Writes that fail for lack of space are RESOURCE_EXHAUSTED naming the directory.
  void make_room() { reserve_.make_room(); }
  void restore_reserve() { reserve_.restore(); }

 private:
  Database(std::string path, std::unique_ptr<sqlite::Connection> connection,
           const DatabaseOptions& options);

  const std::string path_;
  SpaceReserve reserve_;
  int schema_version_ = 0;
  std::unique_ptr<sqlite::Connection> connection_;
  // The stores refer to *connection_ and to each other; declared after it, so they go first.
  EventLog events_;
  VmStore vms_;
  SqliteDeviceLedger ledger_;
};

}  // namespace feos::store
