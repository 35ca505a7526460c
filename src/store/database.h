#pragma once
// The daemon's persistent state in one SQLite file: VM records, their event history, and the
// host-device ownership ledger.
//
// One connection, guarded by a mutex: every method is thread-safe and runs to completion before
// the next starts (SQLite serializes writers anyway; one connection keeps statements cached and
// avoids SQLITE_BUSY between our own threads). The file is in WAL mode with synchronous=NORMAL, so
// readers do not block the writer and a call that returned success survives a crash of feosd (not
// necessarily an OS crash or power loss; see open() for why that is enough).
// Schema changes go through migrations.h.
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "model/vm.h"
#include "store/device_assignment.h"
#include "store/device_ledger.h"
#include "store/space_reserve.h"

struct sqlite3;
struct sqlite3_stmt;

namespace feos::store {

struct DatabaseOptions {
  // How long a call waits for a lock held by another connection (another process on the same
  // file) before failing with UNAVAILABLE.
  int busy_timeout_ms = 5000;
  // Events kept per VM. Appending trims a VM's oldest events once it holds about 10% more than
  // this (amortized: trimming scans `max_events_per_vm` index entries); open() and
  // prune_events() trim to exactly this. Must be >= 1.
  uint32_t max_events_per_vm = 10000;
  // Bytes kept aside beside the database file (<path>.reserve) so that DeleteVm works on a full
  // disk (make_room()); 0: none.
  uint64_t reserve_bytes = 0;
};

// Which events query_events returns. All conditions must hold. (Every member has an initializer
// so designated initializers may name only some: {.vm_id = "a", .last_n = 10}.)
struct EventFilter {
  std::optional<std::string> vm_id = {};  // only this VM's events; nullopt = every VM's
  std::string component_id = {};         // only this component's; empty = every component's
  int64_t after_id = 0;       // only events with id > after_id (resume after a seen event)
  int64_t since_unix_ms = 0;  // only events with unix_ms >= since_unix_ms
  uint32_t last_n = 0;        // only the newest last_n of the matches; 0 = all matches
};

class Database : public DeviceLedger {
 public:
  // Opens (creating if needed) the database file at `path`, enables WAL, the busy timeout and
  // foreign keys, applies pending schema migrations (each in its own transaction) and trims every
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

  const std::string& path() const { return path_; }
  // The file's schema version after open() (== latest_schema_version()).
  int schema_version() const { return schema_version_; }

  // Gives up the reserve (DatabaseOptions::reserve_bytes) when the disk is nearly full, so that
  // the writes of a delete that follow find room; restore_reserve() takes it back when there is
  // room again. Writes that fail for lack of space are RESOURCE_EXHAUSTED naming the directory.
  void make_room() { reserve_.make_room(); }
  void restore_reserve() { reserve_.restore(); }

  // Stores a new VM record (all of its fields, as given, gpus included).
  // Errors: INVALID_ARGUMENT for an empty id or a spec string that is not valid UTF-8;
  // ALREADY_EXISTS when a VM with this id exists; INTERNAL/UNAVAILABLE from SQLite.
  Status insert_vm(const model::VmRecord& record);

  // Returns the VM with this id.
  // Errors: NOT_FOUND naming the id; INTERNAL "corrupt record" when the stored row cannot be
  // decoded (naming the VM and the bad field); INTERNAL/UNAVAILABLE from SQLite.
  Result<model::VmRecord> get_vm(std::string_view id);

  // Returns every VM, oldest first (insertion order).
  // Errors: as get_vm for a corrupt row (the whole call fails; nothing is skipped silently).
  Result<std::vector<model::VmRecord>> list_vms();

  // Sets a VM's state, state_reason, pid and updated_unix_ms (= now_ms).
  // Errors: NOT_FOUND naming the id; INTERNAL/UNAVAILABLE from SQLite.
  Status update_vm_state(std::string_view id, model::VmState state, std::string_view reason,
                         int pid, int64_t now_ms);

  // Replaces a VM's resolved GPUs (VmRecord::gpus), e.g. after the host side prepared them.
  // Errors: INVALID_ARGUMENT for a string that is not valid UTF-8; NOT_FOUND naming the id;
  // INTERNAL/UNAVAILABLE from SQLite.
  Status update_vm_gpus(std::string_view id, const std::vector<model::AssignedGpu>& gpus);

  // Deletes a VM and all of its events.
  // Errors: NOT_FOUND naming the id; INTERNAL/UNAVAILABLE from SQLite.
  Status remove_vm(std::string_view id);

  // Stores an event (event.id is ignored) and returns its id: greater than every id handed out
  // before on this file, never reused. May trim the VM's oldest events (DatabaseOptions).
  // Errors: NOT_FOUND when event.vm_id names no stored VM; INTERNAL/UNAVAILABLE from SQLite.
  Result<int64_t> append_event(const model::VmEvent& event);

  // Returns the events matching `filter`, oldest first (by id). A vm_id naming no VM matches
  // nothing (an empty list, not an error).
  // Errors: INTERNAL "corrupt record" for an undecodable row; INTERNAL/UNAVAILABLE from SQLite.
  Result<std::vector<model::VmEvent>> query_events(const EventFilter& filter);

  // Trims every VM's events to the newest options.max_events_per_vm, in one transaction.
  // Errors: INTERNAL/UNAVAILABLE from SQLite (then nothing is trimmed).
  Status prune_events();

  // --- Device ownership ledger (device_assignments). Rows do not refer to vms: a VM may hold
  // devices before its record is stored, and rows of a VM that never got stored are reconciled
  // by hostdev. ---

  // Records that `vm_id` holds every device of `rows`, all or nothing, in ONE transaction (also
  // against other processes on the same file): of two concurrent claims of the same device,
  // exactly one succeeds. Each row is stored as given (its vm_id must be `vm_id`).
  // Errors: INVALID_ARGUMENT for an empty vm_id, an empty bdf, a row of another VM, or a bdf twice
  // in `rows`; FAILED_PRECONDITION "0000:18:00.0 is assigned to vm <holder>" when a device already
  // has a row (whichever VM holds it, `vm_id` included), and then nothing is written;
  // INTERNAL/UNAVAILABLE from SQLite.
  Status claim_devices(std::string_view vm_id, const std::vector<DeviceAssignment>& rows);

  // Sets the step and updated_unix_ms (= now_ms) of the row of `bdf` held by `vm_id`.
  // Errors: NOT_FOUND "0000:18:00.0 is not assigned to vm <id>" when there is no such row;
  // INTERNAL/UNAVAILABLE from SQLite.
  Status set_device_step(std::string_view vm_id, std::string_view bdf, AssignmentStep step,
                         int64_t now_ms);

  // Ledger rows sorted by bdf: all of them, or only those held by `vm_id`.
  // Errors: INTERNAL "corrupt record" for a row with an unknown role or step;
  // INTERNAL/UNAVAILABLE from SQLite.
  Result<std::vector<DeviceAssignment>> list_device_assignments(
      std::optional<std::string_view> vm_id = std::nullopt);

  // Deletes the rows of `bdfs` held by `vm_id`, in one transaction, and returns how many it
  // deleted. Rows that do not exist or belong to another VM are left alone, so releasing twice is
  // harmless.
  // Errors: INTERNAL/UNAVAILABLE from SQLite (then nothing is deleted).
  Result<int> release_devices(std::string_view vm_id, const std::vector<std::string>& bdfs);

  // store::DeviceLedger, forwarding to the four methods above (transitional, issue 12).
  Status claim(std::string_view vm_id, const std::vector<DeviceAssignment>& rows) override {
    return claim_devices(vm_id, rows);
  }
  Status set_step(std::string_view vm_id, std::string_view bdf, AssignmentStep step,
                  int64_t now_ms) override {
    return set_device_step(vm_id, bdf, step, now_ms);
  }
  Result<std::vector<DeviceAssignment>> list(std::optional<std::string_view> vm_id) override {
    return list_device_assignments(vm_id);
  }
  Result<int> delete_assignments(std::string_view vm_id,
                                 const std::vector<std::string>& bdfs) override {
    return release_devices(vm_id, bdfs);
  }

 private:
  Database(std::string path, sqlite3* db, const DatabaseOptions& options);

  // Returns the cached prepared statement for `sql` (a string literal), preparing it on first
  // use. Caller holds mu_.
  Result<sqlite3_stmt*> statement(const char* sql);
  // Trims one VM's events to max_events_per_vm. Caller holds mu_.
  Status prune_vm_events_locked(const std::string& vm_id);
  Status prune_events_locked();

  const std::string path_;
  const DatabaseOptions options_;
  SpaceReserve reserve_;
  int schema_version_ = 0;

  std::mutex mu_;
  sqlite3* db_;                                                  // guarded by mu_
  std::unordered_map<std::string_view, sqlite3_stmt*> statements_;  // by SQL text; guarded by mu_
  // Events appended per VM since its last trim (trimming is amortized over many appends).
  std::unordered_map<std::string, uint32_t> appends_since_prune_;  // guarded by mu_
};

}  // namespace feos::store
