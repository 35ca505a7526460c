#include "store/event_log.h"

#include <algorithm>
#include <utility>

#include <sqlite3.h>

#include "common/log.h"
#include "store/row_decoding.h"

namespace feos::store {
namespace {

// The column list is spelled once so the row reader and the statements agree on the order.
#define FEOS_EVENT_COLUMNS "id, vm_id, component_id, state, reason, unix_ms"

constexpr const char* kInsertEvent =
    "INSERT INTO vm_events (vm_id, component_id, state, reason, unix_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr const char* kListVmIds = "SELECT id FROM vms ORDER BY seq";
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

// Reads a row of FEOS_EVENT_COLUMNS.
Result<model::VmEvent> event_from_row(const sqlite::Query& row) {
  model::VmEvent event;
  event.id = row.integer(0);
  event.vm_id = row.text(1);
  event.component_id = row.text(2);
  FEOS_ASSIGN_OR_RETURN(event.state,
                        state_from_column(row.integer(3), "event " + std::to_string(event.id)));
  event.reason = row.text(4);
  event.unix_ms = row.integer(5);
  return event;
}

}  // namespace

Result<int64_t> EventLog::append(const model::VmEvent& event) {
  sqlite::Lock db(connection_);
  int64_t id = 0;
  {
    FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(kInsertEvent));
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
    id = db.last_insert_rowid();
  }
  // Trim every ~10% of the cap, so the OFFSET scan in the trim costs ~10 rows per append.
  const uint32_t interval = std::max<uint32_t>(1, max_events_per_vm_ / 10);
  uint32_t& appended = appends_since_prune_[event.vm_id];
  if (++appended >= interval) {
    // The event is stored; a failed trim must not report the append as failed. The counter
    // stays high, so the next append tries again.
    if (Status pruned = prune_vm(db, event.vm_id); !pruned) {
      log::get("store")->warn("event trim failed vm={} error=\"{}\"", event.vm_id,
                              pruned.error().to_string());
    }
  }
  return id;
}

Result<std::vector<model::VmEvent>> EventLog::query(const EventFilter& filter) {
  sqlite::Lock db(connection_);
  const bool one_vm = filter.vm_id.has_value();
  FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(one_vm ? kEventsOfVm : kEventsOfAll));
  if (one_vm) query.bind(1, *filter.vm_id);
  query.bind(2, filter.after_id);
  query.bind(3, filter.since_unix_ms);
  query.bind(4, filter.component_id);
  query.bind(5, filter.last_n == 0 ? int64_t{-1} : static_cast<int64_t>(filter.last_n));
  std::vector<model::VmEvent> events;
  for (;;) {
    FEOS_ASSIGN_OR_RETURN(const bool row, query.step("query events"));
    if (!row) return events;
    FEOS_ASSIGN_OR_RETURN(model::VmEvent event, event_from_row(query));
    events.push_back(std::move(event));
  }
}

Status EventLog::prune() {
  sqlite::Lock db(connection_);
  std::vector<std::string> vm_ids;
  {
    FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(kListVmIds));
    for (;;) {
      FEOS_ASSIGN_OR_RETURN(const bool row, query.step("list vm ids"));
      if (!row) break;
      vm_ids.push_back(query.text(0));
    }
  }
  // One transaction: one sync for all VMs, and all or nothing.
  FEOS_ASSIGN_OR_RETURN(sqlite::Transaction transaction,
                        sqlite::Transaction::begin(db, "trim events"));
  for (const auto& vm_id : vm_ids) FEOS_TRY(prune_vm(db, vm_id));
  return transaction.commit("trim events");
}

void EventLog::forget_vm(const sqlite::Lock& /*held*/, const std::string& vm_id) {
  appends_since_prune_.erase(vm_id);
}

Status EventLog::prune_vm(sqlite::Lock& db, const std::string& vm_id) {
  FEOS_ASSIGN_OR_RETURN(sqlite::Query query, db.query(kPruneVmEvents));
  query.bind(1, vm_id);
  query.bind(2, static_cast<int64_t>(max_events_per_vm_) - 1);
  FEOS_TRY(query.step("trim events of vm " + vm_id));
  appends_since_prune_[vm_id] = 0;
  return ok();
}

}  // namespace feos::store
