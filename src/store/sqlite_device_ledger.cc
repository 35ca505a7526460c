#include "store/sqlite_device_ledger.h"

#include <utility>

#include <sqlite3.h>

#include "store/row_decoding.h"

namespace feos::store {
namespace {

// The column list is spelled once so the row reader and the statements agree on the order.
#define FEOS_ASSIGNMENT_COLUMNS \
  "bdf, vm_id, role, iommu_group, original_driver, original_override, step, updated_unix_ms"

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

// Reads a row of FEOS_ASSIGNMENT_COLUMNS.
Result<DeviceAssignment> assignment_from_row(const sqlite::Query& row) {
  DeviceAssignment a;
  const std::string bdf = row.text(0);
  const std::string what = "device assignment " + bdf;
  auto address = pci::Address::parse(bdf);
  if (!address) return corrupt(what, "bdf: " + address.error().message);
  a.bdf = *address;
  a.vm_id = row.text(1);
  const std::string role = row.text(2);
  auto parsed_role = role_from_name(role);
  if (!parsed_role) return corrupt(what, "role: unknown role \"" + role + "\"");
  a.role = *parsed_role;
  if (const std::string group = row.text(3); !group.empty()) {
    auto parsed_group = pci::IommuGroup::parse(group);
    if (!parsed_group) return corrupt(what, "iommu_group: " + parsed_group.error().message);
    a.iommu_group = *parsed_group;
  }
  a.original_driver = row.text(4);
  a.original_override = row.text(5);
  const std::string step = row.text(6);
  auto parsed_step = step_from_name(step);
  if (!parsed_step) return corrupt(what, "step: unknown step \"" + step + "\"");
  a.step = *parsed_step;
  a.updated_unix_ms = row.integer(7);
  return a;
}

// "vm <id>" for the VM holding `bdf`; "another vm" when that cannot be read (the claim that asks
// fails either way).
std::string holder_of(sqlite::Lock& db, const std::string& bdf, const std::string& op) {
  auto query = db.query(kAssignmentHolder);
  if (!query) return "another vm";
  query->bind(1, bdf);
  auto found = query->step(op + ": look up holder of " + bdf);
  if (found && *found) return "vm " + query->text(0);
  return "another vm";
}

}  // namespace

Status SqliteDeviceLedger::claim(std::string_view vm_id,
                                 const std::vector<DeviceAssignment>& rows) {
  const std::string vm(vm_id);
  FEOS_TRY(check_claim_rows(vm, rows));
  const std::string op = "claim devices for vm " + vm;

  sqlite::Lock db(connection_);
  // Any return before the commit rolls back every row inserted so far: all or nothing.
  FEOS_ASSIGN_OR_RETURN(sqlite::Transaction transaction, sqlite::Transaction::begin(db, op));
  for (const auto& row : rows) {
    const std::string bdf = row.bdf.to_string();
    {
      FEOS_ASSIGN_OR_RETURN(sqlite::Query insert, db.query(kInsertAssignment));
      insert.bind(1, bdf);
      insert.bind(2, row.vm_id);
      insert.bind(3, role_name(row.role));
      insert.bind(4, row.iommu_group ? row.iommu_group->to_string() : std::string());
      insert.bind(5, row.original_driver);
      insert.bind(6, row.original_override);
      insert.bind(7, step_name(row.step));
      insert.bind(8, row.updated_unix_ms);
      auto done = insert.step(op + ": insert " + bdf);
      if (done) continue;
      if (insert.rc() != SQLITE_CONSTRAINT_PRIMARYKEY) return fail(done.error());
    }
    return fail(Code::kFailedPrecondition, bdf + " is assigned to " + holder_of(db, bdf, op));
  }
  FEOS_TRY(transaction.commit(op));
  return ok();
}

Status SqliteDeviceLedger::set_step(std::string_view vm_id, const pci::Address& address,
                                    AssignmentStep step, int64_t now_ms) {
  const std::string bdf = address.to_string();
  sqlite::Lock db(connection_);
  FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(kSetAssignmentStep));
  query.bind(1, vm_id);
  query.bind(2, bdf);
  query.bind(3, step_name(step));
  query.bind(4, now_ms);
  FEOS_TRY(query.step("set step of " + bdf + " of vm " + std::string(vm_id)));
  if (db.changes() == 0) {
    return fail(Code::kNotFound, bdf + " is not assigned to vm " + std::string(vm_id));
  }
  return ok();
}

Result<std::vector<DeviceAssignment>> SqliteDeviceLedger::list(
    std::optional<std::string_view> vm_id) {
  sqlite::Lock db(connection_);
  FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(vm_id ? kAssignmentsOfVm : kAllAssignments));
  if (vm_id) query.bind(1, *vm_id);
  std::vector<DeviceAssignment> rows;
  for (;;) {
    FEOS_ASSIGN_OR_RETURN(const bool row, query.step("list device assignments"));
    if (!row) return rows;
    FEOS_ASSIGN_OR_RETURN(DeviceAssignment assignment, assignment_from_row(query));
    rows.push_back(std::move(assignment));
  }
}

Result<int> SqliteDeviceLedger::delete_assignments(std::string_view vm_id,
                                                   const std::vector<pci::Address>& bdfs) {
  const std::string op = "release devices of vm " + std::string(vm_id);
  sqlite::Lock db(connection_);
  // Any return before the commit rolls back the rows deleted so far: all or nothing.
  FEOS_ASSIGN_OR_RETURN(sqlite::Transaction transaction, sqlite::Transaction::begin(db, op));
  int deleted = 0;
  for (const auto& address : bdfs) {
    const std::string bdf = address.to_string();
    FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(kDeleteAssignment));
    query.bind(1, vm_id);
    query.bind(2, bdf);
    FEOS_TRY(query.step(op + ": delete " + bdf));
    deleted += db.changes();
  }
  FEOS_TRY(transaction.commit(op));
  return deleted;
}

}  // namespace feos::store
