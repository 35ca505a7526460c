#include "store/vm_store.h"

#include <limits>
#include <string>
#include <utility>

#include <sqlite3.h>

#include "store/row_decoding.h"
#include "store/spec_codec.h"

namespace feos::store {
namespace {

// The column list is spelled once so the row reader and the statements agree on the order.
#define FEOS_VM_COLUMNS \
  "id, spec_json, state, state_reason, pid, created_unix_ms, updated_unix_ms, gpus_json"

constexpr const char* kInsertVm =
    "INSERT INTO vms (" FEOS_VM_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr const char* kGetVm = "SELECT " FEOS_VM_COLUMNS " FROM vms WHERE id = ?1";
constexpr const char* kListVms = "SELECT " FEOS_VM_COLUMNS " FROM vms ORDER BY seq";
constexpr const char* kUpdateVmState =
    "UPDATE vms SET state = ?2, state_reason = ?3, pid = ?4, updated_unix_ms = ?5 WHERE id = ?1";
constexpr const char* kUpdateVmGpus = "UPDATE vms SET gpus_json = ?2 WHERE id = ?1";
constexpr const char* kUpdateVmSpec = "UPDATE vms SET spec_json = ?2 WHERE id = ?1";
constexpr const char* kRemoveVm = "DELETE FROM vms WHERE id = ?1";

// Reads a row of FEOS_VM_COLUMNS.
Result<model::VmRecord> vm_from_row(const sqlite::Query& row) {
  model::VmRecord record;
  record.id = row.text(0);
  const std::string what = "vm " + record.id;
  auto spec = decode_spec(row.text(1));
  if (!spec) return corrupt(what, spec.error().message);
  record.spec = std::move(*spec);
  FEOS_ASSIGN_OR_RETURN(record.state, state_from_column(row.integer(2), what));
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

Status not_found(std::string_view id) {
  return fail(Code::kNotFound, "vm " + std::string(id) + " not found");
}

}  // namespace

Status VmStore::insert(const model::VmRecord& record) {
  if (record.id.empty()) return fail(Code::kInvalidArgument, "insert vm: empty id");
  auto spec_json = encode_spec(record.spec);
  if (!spec_json) return fail(spec_json.error().context("insert vm " + record.id));
  auto gpus_json = encode_assigned_gpus(record.gpus);
  if (!gpus_json) return fail(gpus_json.error().context("insert vm " + record.id));

  sqlite::Lock db(connection_);
  FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(kInsertVm));
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

Result<model::VmRecord> VmStore::get(std::string_view id) {
  sqlite::Lock db(connection_);
  FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(kGetVm));
  query.bind(1, id);
  FEOS_ASSIGN_OR_RETURN(const bool row, query.step("get vm " + std::string(id)));
  if (!row) return fail(not_found(id).error());
  return vm_from_row(query);
}

Result<std::vector<model::VmRecord>> VmStore::list() {
  sqlite::Lock db(connection_);
  FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(kListVms));
  std::vector<model::VmRecord> records;
  for (;;) {
    FEOS_ASSIGN_OR_RETURN(const bool row, query.step("list vms"));
    if (!row) return records;
    FEOS_ASSIGN_OR_RETURN(model::VmRecord record, vm_from_row(query));
    records.push_back(std::move(record));
  }
}

Status VmStore::update_state(std::string_view id, model::VmState state, std::string_view reason,
                             int pid, int64_t now_ms) {
  sqlite::Lock db(connection_);
  FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(kUpdateVmState));
  query.bind(1, id);
  query.bind(2, static_cast<int64_t>(state));
  query.bind(3, reason);
  query.bind(4, static_cast<int64_t>(pid));
  query.bind(5, now_ms);
  FEOS_TRY(query.step("update state of vm " + std::string(id)));
  if (db.changes() == 0) return not_found(id);
  return ok();
}

Status VmStore::update_gpus(std::string_view id, const std::vector<model::AssignedGpu>& gpus) {
  auto gpus_json = encode_assigned_gpus(gpus);
  if (!gpus_json) return fail(gpus_json.error().context("update gpus of vm " + std::string(id)));
  sqlite::Lock db(connection_);
  FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(kUpdateVmGpus));
  query.bind(1, id);
  query.bind(2, *gpus_json);
  FEOS_TRY(query.step("update gpus of vm " + std::string(id)));
  if (db.changes() == 0) return not_found(id);
  return ok();
}

Status VmStore::update_spec(std::string_view id, const model::VmSpec& spec) {
  auto spec_json = encode_spec(spec);
  if (!spec_json) return fail(spec_json.error().context("update spec of vm " + std::string(id)));
  sqlite::Lock db(connection_);
  FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(kUpdateVmSpec));
  query.bind(1, id);
  query.bind(2, *spec_json);
  FEOS_TRY(query.step("update spec of vm " + std::string(id)));
  if (db.changes() == 0) return not_found(id);
  return ok();
}

Status VmStore::remove(std::string_view id) {
  sqlite::Lock db(connection_);
  FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(kRemoveVm));
  query.bind(1, id);
  // Its events go with it: vm_events.vm_id is ON DELETE CASCADE (foreign keys are on).
  FEOS_TRY(query.step("remove vm " + std::string(id)));
  if (db.changes() == 0) return not_found(id);
  events_.forget_vm(db, std::string(id));
  return ok();
}

}  // namespace feos::store
