#pragma once
// The VM records (table vms): what a restarted feosd knows about its VMs. Specs and resolved GPUs
// are stored as strict JSON (spec_codec.h). Thread-safe: each call holds the shared connection
// for its length.
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "model/vm.h"
#include "store/event_log.h"
#include "store/sqlite.h"

namespace feos::store {

class VmStore {
 public:
  // `events`: the event log on the same connection, told when a VM's events go with its record.
  VmStore(sqlite::Connection& connection, EventLog& events)
      : connection_(connection), events_(events) {}

  // Stores a new VM record (all of its fields, as given, gpus included).
  // Errors: INVALID_ARGUMENT for an empty id or a spec string that is not valid UTF-8;
  // ALREADY_EXISTS when a VM with this id exists; INTERNAL/UNAVAILABLE from SQLite.
  Status insert(const model::VmRecord& record);

  // Returns the VM with this id.
  // Errors: NOT_FOUND naming the id; INTERNAL "corrupt record" when the stored row cannot be
  // decoded (naming the VM and the bad field); INTERNAL/UNAVAILABLE from SQLite.
  Result<model::VmRecord> get(std::string_view id);

  // Returns every VM, oldest first (insertion order).
  // Errors: as get for a corrupt row (the whole call fails; nothing is skipped silently).
  Result<std::vector<model::VmRecord>> list();

  // Sets a VM's state, state_reason, pid and updated_unix_ms (= now_ms).
  // Errors: NOT_FOUND naming the id; INTERNAL/UNAVAILABLE from SQLite.
  Status update_state(std::string_view id, model::VmState state, std::string_view reason, int pid,
                      int64_t now_ms);

  // Replaces a VM's resolved GPUs (VmRecord::gpus), e.g. after the host side prepared them.
  // Errors: INVALID_ARGUMENT for a string that is not valid UTF-8; NOT_FOUND naming the id;
  // INTERNAL/UNAVAILABLE from SQLite.
  Status update_gpus(std::string_view id, const std::vector<model::AssignedGpu>& gpus);

  // Replaces a VM's spec: a device attached or detached, or what a create finished in the
  // background resolved (its image's disk). Errors: as update_gpus.
  Status update_spec(std::string_view id, const model::VmSpec& spec);

  // Deletes a VM and all of its events.
  // Errors: NOT_FOUND naming the id; INTERNAL/UNAVAILABLE from SQLite.
  Status remove(std::string_view id);

 private:
  sqlite::Connection& connection_;
  EventLog& events_;
};

}  // namespace feos::store
