#pragma once
// The VMs' event history (table vm_events): what the API's event stream replays. Bounded per VM
// (the oldest events are trimmed) and deleted with its VM (foreign key, ON DELETE CASCADE).
// Thread-safe: each call holds the shared connection for its length.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "model/vm.h"
#include "store/sqlite.h"

namespace feos::store {

// Which events EventLog::query returns. All conditions must hold. (Every member has an
// initializer so designated initializers may name only some: {.vm_id = "a", .last_n = 10}.)
struct EventFilter {
  std::optional<std::string> vm_id = {};  // only this VM's events; nullopt = every VM's
  std::string component_id = {};         // only this component's; empty = every component's
  int64_t after_id = 0;       // only events with id > after_id (resume after a seen event)
  int64_t since_unix_ms = 0;  // only events with unix_ms >= since_unix_ms
  uint32_t last_n = 0;        // only the newest last_n of the matches; 0 = all matches
};

class EventLog {
 public:
  // Keeps about `max_events_per_vm` (>= 1) events per VM: appending trims a VM's oldest events
  // once it holds about 10% more (amortized: a trim scans `max_events_per_vm` index entries);
  // prune() trims to exactly this.
  EventLog(sqlite::Connection& connection, uint32_t max_events_per_vm)
      : connection_(connection), max_events_per_vm_(max_events_per_vm) {}

  // Stores an event (event.id is ignored) and returns its id: greater than every id handed out
  // before on this file, never reused. May trim the VM's oldest events (a failed trim is logged,
  // not returned: the event is stored).
  // Errors: NOT_FOUND when event.vm_id names no stored VM; INTERNAL/UNAVAILABLE from SQLite.
  Result<int64_t> append(const model::VmEvent& event);

  // Returns the events matching `filter`, oldest first (by id). A vm_id naming no VM matches
  // nothing (an empty list, not an error).
  // Errors: INTERNAL "corrupt record" for an undecodable row; INTERNAL/UNAVAILABLE from SQLite.
  Result<std::vector<model::VmEvent>> query(const EventFilter& filter);

  // Trims every VM's events to the newest max_events_per_vm, in one transaction.
  // Errors: INTERNAL/UNAVAILABLE from SQLite (then nothing is trimmed).
  Status prune();

  // Forgets the trim bookkeeping of a VM whose record was just deleted (its events went with it).
  // For VmStore::remove, which holds `held`, the lock of the shared connection.
  void forget_vm(const sqlite::Lock& held, const std::string& vm_id);

 private:
  // Trims one VM's events to max_events_per_vm_.
  Status prune_vm(sqlite::Lock& db, const std::string& vm_id);

  sqlite::Connection& connection_;
  const uint32_t max_events_per_vm_;
  // Events appended per VM since its last trim (trimming is amortized over many appends).
  std::unordered_map<std::string, uint32_t> appends_since_prune_;  // under the connection's Lock
};

}  // namespace feos::store
