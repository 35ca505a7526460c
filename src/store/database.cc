#include "store/database.h"

#include <algorithm>
#include <limits>
#include <set>
#include <utility>

#include <sqlite3.h>

#include "common/log.h"
#include "store/migrations.h"
#include "store/spec_codec.h"
#include "store/sqlite_util.h"

namespace feos::store {
namespace {

// Column lists are spelled once so row readers and statements agree on the order.
#define FEOS_VM_COLUMNS \
  "id, spec_json, state, state_reason, pid, created_unix_ms, updated_unix_ms, gpus_json"
#define FEOS_EVENT_COLUMNS "id, vm_id, component_id, state, reason, unix_ms"
#define FEOS_ASSIGNMENT_COLUMNS \
  "bdf, vm_id, role, iommu_group, original_driver, original_override, step, updated_unix_ms"

constexpr const char* kInsertVm =
    "INSERT INTO vms (" FEOS_VM_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr const char* kGetVm = "SELECT " FEOS_VM_COLUMNS " FROM vms WHERE id = ?1";
constexpr const char* kListVms = "SELECT " FEOS_VM_COLUMNS " FROM vms ORDER BY seq";
constexpr const char* kListVmIds = "SELECT id FROM vms ORDER BY seq";
constexpr const char* kUpdateVmState =
    "UPDATE vms SET state = ?2, state_reason = ?3, pid = ?4, updated_unix_ms = ?5 WHERE id = ?1";
constexpr const char* kUpdateVmGpus = "UPDATE vms SET gpus_json = ?2 WHERE id = ?1";
constexpr const char* kRemoveVm = "DELETE FROM vms WHERE id = ?1";
constexpr const char* kInsertEvent =
    "INSERT INTO vm_events (vm_id, component_id, state, reason, unix_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
// Keeps the newest ?2 + 1 events: deletes those older than the one at OFFSET ?2 from the newest
// (nothing when the VM has fewer, as the subquery is then NULL). Walks vm_events_by_vm.
constexpr const char* kPruneVmEvents =
    "DELETE FROM vm_events WHERE vm_id = ?1 AND id < "
    "(SELECT id FROM vm_events WHERE vm_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)";
// Event queries take the newest ?5 matches (LIMIT -1 = all) and return them oldest first. The
// per-VM form walks vm_events_by_vm, the other the primary key.
constexpr const char* kEventsOfVm =
    "SELECT " FEOS_EVENT_COLUMNS " FROM (SELECT " FEOS_EVENT_COLUMNS
    " FROM vm_events WHERE vm_id = ?1 AND id > ?2 AND unix_ms >= ?3"
    " AND (?4 = '' OR component_id = ?4) ORDER BY id DESC LIMIT ?5) ORDER BY id";
constexpr const char* kEventsOfAll =
    "SELECT " FEOS_EVENT_COLUMNS " FROM (SELECT " FEOS_EVENT_COLUMNS
    " FROM vm_events WHERE id > ?2 AND unix_ms >= ?3"
    " AND (?4 = '' OR component_id = ?4) ORDER BY id DESC LIMIT ?5) ORDER BY id";

constexpr const char* kInsertAssignment =
    "INSERT INTO device_assignments (" FEOS_ASSIGNMENT_COLUMNS
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr const char* kAssignmentHolder = "SELECT vm_id FROM device_assignments WHERE bdf = ?1";
constexpr const char* kSetAssignmentStep =
    "UPDATE device_assignments SET step = ?3, updated_unix_ms = ?4 WHERE vm_id = ?1 AND bdf = ?2";
constexpr const char* kAllAssignments =
    "SELECT " FEOS_ASSIGNMENT_COLUMNS " FROM device_assignments ORDER BY bdf";
constexpr const char* kAssignmentsOfVm =
    "SELECT " FEOS_ASSIGNMENT_COLUMNS " FROM device_assignments WHERE vm_id = ?1 ORDER BY bdf";
constexpr const char* kDeleteAssignment =
    "DELETE FROM device_assignments WHERE vm_id = ?1 AND bdf = ?2";

// A cached statement in use: binds, steps, and resets on destruction so that it holds no read
// transaction and no bound data once the call is over.
class Query {
 public:
  Query(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Query() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  void bind(int index, std::string_view text) {
    // A null pointer would bind SQL NULL; an empty view must stay an empty string.
    const char* data = text.data() != nullptr ? text.data() : "";
    note(sqlite3_bind_text64(stmt_, index, data, text.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  void bind(int index, int64_t value) { note(sqlite3_bind_int64(stmt_, index, value)); }

  // Advances to the next row: true on a row, false when done.
  // Errors: the first failed bind, else the failed step, as sqlite_error naming `op`.
  Result<bool> step(std::string_view op) {
    if (bind_rc_ != SQLITE_OK) {
      rc_ = bind_rc_;
      return fail(sqlite_error(db_, rc_, op));
    }
    rc_ = sqlite3_step(stmt_);
    if (rc_ == SQLITE_ROW) return true;
    if (rc_ == SQLITE_DONE) return false;
    return fail(sqlite_error(db_, rc_, op));
  }
  // The extended result code of the last bind or step, to tell constraint failures apart.
  int rc() const { return rc_; }

  int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
  std::string text(int column) const {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    if (data == nullptr) return {};
    return std::string(data, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
  }

 private:
  void note(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;  // first failed bind, reported by the next step()
  int rc_ = SQLITE_OK;       // last step()
};

tl::unexpected<Error> corrupt(std::string_view what, std::string_view detail) {
  return fail(Code::kInternal, "corrupt record for " + std::string(what) + ": " +
                                   std::string(detail));
}

Result<model::VmState> state_from_column(int64_t number, std::string_view what) {
  if (number < static_cast<int64_t>(model::VmState::kUnspecified) ||
      number > static_cast<int64_t>(model::VmState::kCrashed)) {
    return corrupt(what, "state: unknown VmState number " + std::to_string(number));
  }
  return static_cast<model::VmState>(number);
}

// Reads a row of FEOS_VM_COLUMNS.
Result<model::VmRecord> vm_from_row(const Query& row) {
  model::VmRecord record;
  record.id = row.text(0);
  const std::string what = "vm " + record.id;
  auto spec = decode_spec(row.text(1));
  if (!spec) return corrupt(what, spec.error().message);
  record.spec = std::move(*spec);
  auto state = state_from_column(row.integer(2), what);
  if (!state) return fail(state.error());
  record.state = *state;
  record.state_reason = row.text(3);
  const int64_t pid = row.integer(4);
  if (pid < 0 || pid > std::numeric_limits<int>::max()) {
    return corrupt(what, "pid: out of range: " + std::to_string(pid));
  }
  record.pid = static_cast<int>(pid);
  record.created_unix_ms = row.integer(5);
  record.updated_unix_ms = row.integer(6);
  auto gpus = decode_assigned_gpus(row.text(7));
  if (!gpus) return corrupt(what, gpus.error().message);
  record.gpus = std::move(*gpus);
  return record;
}

// Reads a row of FEOS_EVENT_COLUMNS.
Result<model::VmEvent> event_from_row(const Query& row) {
  model::VmEvent event;
  event.id = row.integer(0);
  event.vm_id = row.text(1);
  event.component_id = row.text(2);
  auto state = state_from_column(row.integer(3), "event " + std::to_string(event.id));
  if (!state) return fail(state.error());
  event.state = *state;
  event.reason = row.text(4);
  event.unix_ms = row.integer(5);
  return event;
}

// Reads a row of FEOS_ASSIGNMENT_COLUMNS.
Result<DeviceAssignment> assignment_from_row(const Query& row) {
  DeviceAssignment a;
  a.bdf = row.text(0);
  a.vm_id = row.text(1);
  const std::string what = "device assignment " + a.bdf;
  const std::string role = row.text(2);
  auto parsed_role = role_from_name(role);
  if (!parsed_role) return corrupt(what, "role: unknown role \"" + role + "\"");
  a.role = *parsed_role;
  a.iommu_group = row.text(3);
  a.original_driver = row.text(4);
  a.original_override = row.text(5);
  const std::string step = row.text(6);
  auto parsed_step = step_from_name(step);
  if (!parsed_step) return corrupt(what, "step: unknown step \"" + step + "\"");
  a.step = *parsed_step;
  a.updated_unix_ms = row.integer(7);
  return a;
}

}  // namespace

std::string_view role_name(DeviceRole role) {
  switch (role) {
    case DeviceRole::kRequested: return "requested";
    case DeviceRole::kFunction: return "function";
    case DeviceRole::kGroupPeer: return "group_peer";
  }
  return "requested";  // unreachable: every enumerator is listed above
}

std::optional<DeviceRole> role_from_name(std::string_view name) {
  for (DeviceRole role : {DeviceRole::kRequested, DeviceRole::kFunction, DeviceRole::kGroupPeer}) {
    if (name == role_name(role)) return role;
  }
  return std::nullopt;
}

std::string_view step_name(AssignmentStep step) {
  switch (step) {
    case AssignmentStep::kClaimed: return "claimed";
    case AssignmentStep::kOverrideSet: return "override_set";
    case AssignmentStep::kUnbound: return "unbound";
    case AssignmentStep::kBound: return "bound";
    case AssignmentStep::kReleasing: return "releasing";
  }
  return "claimed";  // unreachable: every enumerator is listed above
}

std::optional<AssignmentStep> step_from_name(std::string_view name) {
  for (AssignmentStep step : {AssignmentStep::kClaimed, AssignmentStep::kOverrideSet,
                              AssignmentStep::kUnbound, AssignmentStep::kBound,
                              AssignmentStep::kReleasing}) {
    if (name == step_name(step)) return step;
  }
  return std::nullopt;
}

int Database::latest_schema_version() { return static_cast<int>(schema_migrations().size()); }

Database::Database(std::string path, sqlite3* db, const DatabaseOptions& options)
    : path_(std::move(path)), options_(options), reserve_(path_ + ".reserve", options.reserve_bytes), db_(db) {}

Database::~Database() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close(db_);  // accepts nullptr; all statements are finalized, so it closes now
}

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
  // The connection is used from many threads (one at a time, under mu_): SQLite must not be
  // built single-threaded.
  if (sqlite3_threadsafe() == 0) {
    return fail(Code::kFailedPrecondition,
                "open database " + path + ": SQLite library was built without thread support");
  }
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  // Owns `raw` from here on, so every early return below closes it.
  std::unique_ptr<Database> db(new Database(path, raw, options));
  const std::string op = "open database " + path;
  if (rc != SQLITE_OK) return fail(sqlite_error(raw, rc, op));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);

  FEOS_TRY(exec_sql(raw, "PRAGMA foreign_keys = ON", op + ": enable foreign keys"));
  auto foreign_keys = query_int(raw, "PRAGMA foreign_keys", op + ": check foreign keys");
  if (!foreign_keys) return fail(foreign_keys.error());
  if (*foreign_keys != 1) {
    return fail(Code::kFailedPrecondition,
                op + ": SQLite library lacks foreign key support (events could outlive VMs)");
  }

  // Migrations come before the journal mode switch so that a database from a newer binary is
  // refused before anything is written to it.
  auto version = migrate(raw, schema_migrations(), path);
  if (!version) return fail(version.error());
  db->schema_version_ = *version;

  auto mode = query_text(raw, "PRAGMA journal_mode = WAL", op + ": enable WAL journal");
  if (!mode) return fail(mode.error());
  if (*mode != "wal") {
    return fail(Code::kInternal, op + ": cannot use WAL journal (journal mode stays \"" + *mode +
                                     "\"; the file system may lack shared memory support)");
  }
  // NORMAL (with WAL): a commit survives a crash of feosd as soon as the call returns; only an OS
  // crash or power loss may drop the last commits. That is safe here: after a host reboot no qemu
  // runs and every device is back on its host driver, so reconcile() rebuilds the truth from the
  // kernel. FULL would fsync every ledger step and serialize parallel GPU preparation behind it.
  FEOS_TRY(exec_sql(raw, "PRAGMA synchronous = NORMAL", op + ": set synchronous"));

  {
    std::lock_guard lock(db->mu_);
    FEOS_TRY(db->prune_events_locked());
  }
  db->reserve_.restore();
  log::get("store")->info("database opened path={} schema_version={}", path, *version);
  return db;
}

Result<sqlite3_stmt*> Database::statement(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return fail(sqlite_error(db_, rc, "prepare statement \"" + std::string(sql) + "\""));
  }
  statements_.emplace(sql, stmt);
  return stmt;
}

Status Database::insert_vm(const model::VmRecord& record) {
  if (record.id.empty()) return fail(Code::kInvalidArgument, "insert vm: empty id");
  auto spec_json = encode_spec(record.spec);
  if (!spec_json) return fail(spec_json.error().context("insert vm " + record.id));
  auto gpus_json = encode_assigned_gpus(record.gpus);
  if (!gpus_json) return fail(gpus_json.error().context("insert vm " + record.id));

  std::lock_guard lock(mu_);
  auto stmt = statement(kInsertVm);
  if (!stmt) return fail(stmt.error());
  Query query(db_, *stmt);
  query.bind(1, record.id);
  query.bind(2, *spec_json);
  query.bind(3, static_cast<int64_t>(record.state));
  query.bind(4, record.state_reason);
  query.bind(5, static_cast<int64_t>(record.pid));
  query.bind(6, record.created_unix_ms);
  query.bind(7, record.updated_unix_ms);
  query.bind(8, *gpus_json);
  auto done = query.step("insert vm " + record.id);
  if (!done) {
    if (query.rc() == SQLITE_CONSTRAINT_UNIQUE) {
      return fail(Code::kAlreadyExists, "vm " + record.id + " already exists");
    }
    return fail(done.error());
  }
  return ok();
}

Result<model::VmRecord> Database::get_vm(std::string_view id) {
  std::lock_guard lock(mu_);
  auto stmt = statement(kGetVm);
  if (!stmt) return fail(stmt.error());
  Query query(db_, *stmt);
  query.bind(1, id);
  auto row = query.step("get vm " + std::string(id));
  if (!row) return fail(row.error());
  if (!*row) return fail(Code::kNotFound, "vm " + std::string(id) + " not found");
  return vm_from_row(query);
}

Result<std::vector<model::VmRecord>> Database::list_vms() {
  std::lock_guard lock(mu_);
  auto stmt = statement(kListVms);
  if (!stmt) return fail(stmt.error());
  Query query(db_, *stmt);
  std::vector<model::VmRecord> records;
  for (;;) {
    auto row = query.step("list vms");
    if (!row) return fail(row.error());
    if (!*row) return records;
    auto record = vm_from_row(query);
    if (!record) return fail(record.error());
    records.push_back(std::move(*record));
  }
}

Status Database::update_vm_state(std::string_view id, model::VmState state,
                                 std::string_view reason, int pid, int64_t now_ms) {
  std::lock_guard lock(mu_);
  auto stmt = statement(kUpdateVmState);
  if (!stmt) return fail(stmt.error());
  Query query(db_, *stmt);
  query.bind(1, id);
  query.bind(2, static_cast<int64_t>(state));
  query.bind(3, reason);
  query.bind(4, static_cast<int64_t>(pid));
  query.bind(5, now_ms);
  FEOS_TRY(query.step("update state of vm " + std::string(id)));
  if (sqlite3_changes(db_) == 0) {
    return fail(Code::kNotFound, "vm " + std::string(id) + " not found");
  }
  return ok();
}

Status Database::update_vm_gpus(std::string_view id, const std::vector<model::AssignedGpu>& gpus) {
  auto gpus_json = encode_assigned_gpus(gpus);
  if (!gpus_json) return fail(gpus_json.error().context("update gpus of vm " + std::string(id)));
  std::lock_guard lock(mu_);
  auto stmt = statement(kUpdateVmGpus);
  if (!stmt) return fail(stmt.error());
  Query query(db_, *stmt);
  query.bind(1, id);
  query.bind(2, *gpus_json);
  FEOS_TRY(query.step("update gpus of vm " + std::string(id)));
  if (sqlite3_changes(db_) == 0) {
    return fail(Code::kNotFound, "vm " + std::string(id) + " not found");
  }
  return ok();
}

Status Database::remove_vm(std::string_view id) {
  std::lock_guard lock(mu_);
  auto stmt = statement(kRemoveVm);
  if (!stmt) return fail(stmt.error());
  Query query(db_, *stmt);
  query.bind(1, id);
  // Its events go with it: vm_events.vm_id is ON DELETE CASCADE (foreign keys are on).
  FEOS_TRY(query.step("remove vm " + std::string(id)));
  if (sqlite3_changes(db_) == 0) {
    return fail(Code::kNotFound, "vm " + std::string(id) + " not found");
  }
  appends_since_prune_.erase(std::string(id));
  return ok();
}

Result<int64_t> Database::append_event(const model::VmEvent& event) {
  std::lock_guard lock(mu_);
  auto stmt = statement(kInsertEvent);
  if (!stmt) return fail(stmt.error());
  int64_t id = 0;
  {
    Query query(db_, *stmt);
    query.bind(1, event.vm_id);
    query.bind(2, event.component_id);
    query.bind(3, static_cast<int64_t>(event.state));
    query.bind(4, event.reason);
    query.bind(5, event.unix_ms);
    auto done = query.step("append event of vm " + event.vm_id);
    if (!done) {
      if (query.rc() == SQLITE_CONSTRAINT_FOREIGNKEY) {
        return fail(Code::kNotFound,
                    "vm " + event.vm_id + " not found: cannot append its event");
      }
      return fail(done.error());
    }
    id = sqlite3_last_insert_rowid(db_);
  }
  // Trim every ~10% of the cap, so the OFFSET scan in the trim costs ~10 rows per append.
  const uint32_t interval = std::max<uint32_t>(1, options_.max_events_per_vm / 10);
  uint32_t& appended = appends_since_prune_[event.vm_id];
  if (++appended >= interval) {
    // The event is stored; a failed trim must not report the append as failed. The counter
    // stays high, so the next append tries again.
    if (Status pruned = prune_vm_events_locked(event.vm_id); !pruned) {
      log::get("store")->warn("event trim failed vm={} error=\"{}\"", event.vm_id,
                              pruned.error().to_string());
    }
  }
  return id;
}

Result<std::vector<model::VmEvent>> Database::query_events(const EventFilter& filter) {
  std::lock_guard lock(mu_);
  const bool one_vm = filter.vm_id.has_value();
  auto stmt = statement(one_vm ? kEventsOfVm : kEventsOfAll);
  if (!stmt) return fail(stmt.error());
  Query query(db_, *stmt);
  if (one_vm) query.bind(1, *filter.vm_id);
  query.bind(2, filter.after_id);
  query.bind(3, filter.since_unix_ms);
  query.bind(4, filter.component_id);
  query.bind(5, filter.last_n == 0 ? int64_t{-1} : static_cast<int64_t>(filter.last_n));
  std::vector<model::VmEvent> events;
  for (;;) {
    auto row = query.step("query events");
    if (!row) return fail(row.error());
    if (!*row) return events;
    auto event = event_from_row(query);
    if (!event) return fail(event.error());
    events.push_back(std::move(*event));
  }
}

Status Database::prune_events() {
  std::lock_guard lock(mu_);
  return prune_events_locked();
}

Status Database::claim_devices(std::string_view vm_id,
                               const std::vector<DeviceAssignment>& rows) {
  const std::string vm(vm_id);
  if (vm.empty()) return fail(Code::kInvalidArgument, "claim devices: empty vm id");
  std::set<std::string_view> seen;
  for (const auto& row : rows) {
    if (row.bdf.empty()) {
      return fail(Code::kInvalidArgument, "claim devices for vm " + vm + ": empty address");
    }
    if (row.vm_id != vm) {
      return fail(Code::kInvalidArgument, "claim devices for vm " + vm + ": row of " + row.bdf +
                                              " names vm \"" + row.vm_id + "\"");
    }
    if (!seen.insert(row.bdf).second) {
      return fail(Code::kInvalidArgument,
                  "claim devices for vm " + vm + ": " + row.bdf + " is listed twice");
    }
  }
  const std::string op = "claim devices for vm " + vm;

  std::lock_guard lock(mu_);
  auto insert = statement(kInsertAssignment);
  if (!insert) return fail(insert.error());
  auto holder = statement(kAssignmentHolder);
  if (!holder) return fail(holder.error());
  // IMMEDIATE: takes the write lock up front, so claims from other processes on the same file
  // serialize with this one instead of failing half way.
  FEOS_TRY(exec_sql(db_, "BEGIN IMMEDIATE", op));
  auto abort = [&](Error error) {
    (void)exec_sql(db_, "ROLLBACK", "rollback");  // the error returned says why
    return fail(std::move(error));
  };
  for (const auto& row : rows) {
    Result<bool> done = false;
    int rc = 0;
    {
      Query query(db_, *insert);
      query.bind(1, row.bdf);
      query.bind(2, row.vm_id);
      query.bind(3, role_name(row.role));
      query.bind(4, row.iommu_group);
      query.bind(5, row.original_driver);
      query.bind(6, row.original_override);
      query.bind(7, step_name(row.step));
      query.bind(8, row.updated_unix_ms);
      done = query.step(op + ": insert " + row.bdf);
      rc = query.rc();
    }
    if (done) continue;
    if (rc != SQLITE_CONSTRAINT_PRIMARYKEY) return abort(done.error());
    std::string held_by = "another vm";
    {
      Query query(db_, *holder);
      query.bind(1, row.bdf);
      auto found = query.step(op + ": look up holder of " + row.bdf);
      if (found && *found) held_by = "vm " + query.text(0);
    }
    return abort(Error{Code::kFailedPrecondition, row.bdf + " is assigned to " + held_by});
  }
  if (Status committed = exec_sql(db_, "COMMIT", op); !committed) {
    return abort(committed.error());  // a failed COMMIT leaves the transaction open
  }
  return ok();
}

Status Database::set_device_step(std::string_view vm_id, std::string_view bdf,
                                 AssignmentStep step, int64_t now_ms) {
  std::lock_guard lock(mu_);
  auto stmt = statement(kSetAssignmentStep);
  if (!stmt) return fail(stmt.error());
  Query query(db_, *stmt);
  query.bind(1, vm_id);
  query.bind(2, bdf);
  query.bind(3, step_name(step));
  query.bind(4, now_ms);
  FEOS_TRY(query.step("set step of " + std::string(bdf) + " of vm " + std::string(vm_id)));
  if (sqlite3_changes(db_) == 0) {
    return fail(Code::kNotFound,
                std::string(bdf) + " is not assigned to vm " + std::string(vm_id));
  }
  return ok();
}

Result<std::vector<DeviceAssignment>> Database::list_device_assignments(
    std::optional<std::string_view> vm_id) {
  std::lock_guard lock(mu_);
  auto stmt = statement(vm_id ? kAssignmentsOfVm : kAllAssignments);
  if (!stmt) return fail(stmt.error());
  Query query(db_, *stmt);
  if (vm_id) query.bind(1, *vm_id);
  std::vector<DeviceAssignment> rows;
  for (;;) {
    auto row = query.step("list device assignments");
    if (!row) return fail(row.error());
    if (!*row) return rows;
    auto assignment = assignment_from_row(query);
    if (!assignment) return fail(assignment.error());
    rows.push_back(std::move(*assignment));
  }
}

Result<int> Database::release_devices(std::string_view vm_id,
                                      const std::vector<std::string>& bdfs) {
  const std::string op = "release devices of vm " + std::string(vm_id);
  std::lock_guard lock(mu_);
  auto stmt = statement(kDeleteAssignment);
  if (!stmt) return fail(stmt.error());
  FEOS_TRY(exec_sql(db_, "BEGIN IMMEDIATE", op));
  int deleted = 0;
  for (const auto& bdf : bdfs) {
    Result<bool> done = false;
    {
      Query query(db_, *stmt);
      query.bind(1, vm_id);
      query.bind(2, bdf);
      done = query.step(op + ": delete " + bdf);
    }
    if (!done) {
      (void)exec_sql(db_, "ROLLBACK", "rollback");  // the error returned says why
      return fail(done.error());
    }
    deleted += sqlite3_changes(db_);
  }
  if (Status committed = exec_sql(db_, "COMMIT", op); !committed) {
    (void)exec_sql(db_, "ROLLBACK", "rollback");
    return fail(committed.error());
  }
  return deleted;
}

Status Database::prune_vm_events_locked(const std::string& vm_id) {
  auto stmt = statement(kPruneVmEvents);
  if (!stmt) return fail(stmt.error());
  Query query(db_, *stmt);
  query.bind(1, vm_id);
  query.bind(2, static_cast<int64_t>(options_.max_events_per_vm) - 1);
  FEOS_TRY(query.step("trim events of vm " + vm_id));
  appends_since_prune_[vm_id] = 0;
  return ok();
}

Status Database::prune_events_locked() {
  std::vector<std::string> vm_ids;
  {
    auto stmt = statement(kListVmIds);
    if (!stmt) return fail(stmt.error());
    Query query(db_, *stmt);
    for (;;) {
      auto row = query.step("list vm ids");
      if (!row) return fail(row.error());
      if (!*row) break;
      vm_ids.push_back(query.text(0));
    }
  }
  // One transaction: one sync for all VMs, and all or nothing.
  FEOS_TRY(exec_sql(db_, "BEGIN IMMEDIATE", "trim events"));
  for (const auto& vm_id : vm_ids) {
    if (Status pruned = prune_vm_events_locked(vm_id); !pruned) {
      (void)exec_sql(db_, "ROLLBACK", "rollback");  // the error below says why
      return pruned;
    }
  }
  if (Status committed = exec_sql(db_, "COMMIT", "trim events"); !committed) {
    (void)exec_sql(db_, "ROLLBACK", "rollback");  // a failed COMMIT leaves the transaction open
    return committed;
  }
  return ok();
}

}  // namespace feos::store
