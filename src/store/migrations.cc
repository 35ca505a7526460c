#include "store/migrations.h"

#include <string>

#include "common/log.h"
#include "store/sqlite.h"

namespace feos::store {
namespace {

// Notes for later steps:
// - PRAGMA foreign_keys cannot change inside a transaction; a step that rebuilds a referenced
//   table uses PRAGMA defer_foreign_keys=ON instead (SQLite's "12-step" ALTER procedure).
// - VmSpec is stored as strict JSON (spec_codec.h): a field added to VmSpec either decodes its
//   absence as a default, or gets a step that adds its key to every stored spec (spec_codec.h
//   says which and what each means for an older feosd), e.g.
//   UPDATE vms SET spec_json = json_set(spec_json, '$.new_field', <default>);
constexpr Migration kMigrations[] = {
    {"vms and vm_events", R"sql(
-- One row per VM the daemon manages; survives daemon restarts.
CREATE TABLE vms (
  -- Insertion order: list returns VMs in creation order without trusting the wall clock.
  seq INTEGER PRIMARY KEY,
  -- The API's VM id (a UUID); vm_events refer to it.
  id TEXT NOT NULL UNIQUE CHECK (id <> ''),
  -- model::VmSpec as JSON (spec_codec.h): it nests lists of disks and nets, and its fields
  -- follow the API, which changes more often than this schema.
  spec_json TEXT NOT NULL,
  -- model::VmState number (equal to FeOS's VmState enum): the last recorded state.
  state INTEGER NOT NULL,
  -- Why the VM is in its state ("guest powered off"); shown to clients.
  state_reason TEXT NOT NULL,
  -- Hypervisor process id while running or paused, else 0: lets a restarted daemon find the
  -- process again or clean up after it.
  pid INTEGER NOT NULL,
  -- Creation time, ms since the Unix epoch; reported to clients.
  created_unix_ms INTEGER NOT NULL,
  -- Time of the last state change, ms since the Unix epoch.
  updated_unix_ms INTEGER NOT NULL
) STRICT;

-- Lifecycle events of VMs: the history behind the API's event stream. Bounded per VM (Database
-- trims the oldest) and deleted with their VM.
CREATE TABLE vm_events (
  -- The API's event id. AUTOINCREMENT: ids never repeat, even after the newest rows are
  -- deleted, so a client's after_id resume point stays valid.
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  -- The VM it belongs to; deleting the VM deletes its events.
  vm_id TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
  -- Which part reported it ("vm" for state changes); clients filter on it.
  component_id TEXT NOT NULL,
  -- model::VmState number the VM entered (0 when the event is not a state change).
  state INTEGER NOT NULL,
  -- Human-readable cause.
  reason TEXT NOT NULL,
  -- When it happened, ms since the Unix epoch; clients filter on it (since).
  unix_ms INTEGER NOT NULL
) STRICT;

-- Per-VM queries and trimming walk a VM's events in id order; it also serves the cascade delete.
CREATE INDEX vm_events_by_vm ON vm_events (vm_id, id);
)sql"},
    {"gpus of vms", R"sql(
-- VmSpec gained gpus (whole GPUs by host PCIe address): specs stored before asked for none.
UPDATE vms SET spec_json = json_set(spec_json, '$.gpus', json('[]'));
-- What the host side resolved for a VM's GPUs (std::vector<model::AssignedGpu> as JSON,
-- spec_codec.h): the functions, IOMMU groups, original drivers and BARs the hypervisor was given.
-- JSON for the same reason as spec_json; '[]' for VMs without GPUs and for rows stored before.
ALTER TABLE vms ADD COLUMN gpus_json TEXT NOT NULL DEFAULT '[]';
)sql"},
    {"device ownership ledger", R"sql(
-- Which VM holds which host PCI function, and how far binding it to vfio-pci has come. hostdev
-- writes a row's step BEFORE the sysfs write it names, so a restarted feosd knows what a crash
-- interrupted and can finish or undo it. No foreign key to vms: a crash between claiming devices
-- and recording the VM leaves rows of a VM that was never stored; reconcile at start cleans them.
CREATE TABLE device_assignments (
  -- Canonical PCI address ("0000:18:00.0"); the primary key makes one holder per function.
  bdf TEXT PRIMARY KEY CHECK (bdf <> ''),
  -- The API id of the VM holding it.
  vm_id TEXT NOT NULL CHECK (vm_id <> ''),
  -- Why it is held: the GPU function the client named ('requested'), another function of that
  -- card's slot ('function'), or another endpoint of its IOMMU group that the operator's policy
  -- lets travel along ('group_peer').
  role TEXT NOT NULL CHECK (role IN ('requested', 'function', 'group_peer')),
  -- IOMMU group number ("41"): VFIO hands whole groups to a VM; release works group by group.
  iommu_group TEXT NOT NULL,
  -- Driver bound before vfio-pci took the device ('' when it was unbound): what release rebinds.
  original_driver TEXT NOT NULL,
  -- driver_override before we set it ('' for none): what release and rollback restore.
  original_override TEXT NOT NULL,
  -- How far prepare got: 'claimed' (nothing written yet), 'override_set' (driver_override is
  -- being or was set), 'unbound' (detaching from the original driver), 'bound' (probing onto
  -- vfio-pci; ready once prepare returned), 'releasing' (being returned to the host). Set before
  -- the write it announces.
  step TEXT NOT NULL CHECK (step IN ('claimed', 'override_set', 'unbound', 'bound', 'releasing')),
  -- Time of the last step change, ms since the Unix epoch; shows how long a device was stuck.
  updated_unix_ms INTEGER NOT NULL
) STRICT;

-- Release and listing of one VM's devices.
CREATE INDEX device_assignments_by_vm ON device_assignments (vm_id, bdf);
)sql"},
    {"vm ids in lower case", R"sql(
-- VM ids are UUIDs compared case-insensitively and stored in lower case from this version on.
-- Earlier versions stored ids as the client spelled them. A record whose lower-case id another
-- record already has keeps its spelling (feosd looks ids up as given first, then in lower case).
-- vm_events follow their VM in the same transaction: the foreign key is checked at COMMIT.
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE renamed AS
  SELECT min(id) AS old_id, lower(id) AS new_id FROM vms
  WHERE id <> lower(id) AND lower(id) NOT IN (SELECT id FROM vms) GROUP BY lower(id);
UPDATE vms SET id = (SELECT new_id FROM renamed WHERE old_id = vms.id)
  WHERE id IN (SELECT old_id FROM renamed);
UPDATE vm_events SET vm_id = (SELECT new_id FROM renamed WHERE old_id = vm_events.vm_id)
  WHERE vm_id IN (SELECT old_id FROM renamed);
UPDATE device_assignments SET vm_id = (SELECT new_id FROM renamed WHERE old_id = device_assignments.vm_id)
  WHERE vm_id IN (SELECT old_id FROM renamed);
DROP TABLE temp.renamed;
)sql"},
    {"fabric role in the device ledger", R"sql(
-- A VM that takes every GPU of an HGX board also holds its NVSwitches ('fabric'). SQLite cannot
-- change a CHECK constraint, so the table is copied into one with the wider check.
CREATE TABLE device_assignments_v6 (
  bdf TEXT PRIMARY KEY CHECK (bdf <> ''),  -- as in version 3
  vm_id TEXT NOT NULL CHECK (vm_id <> ''),  -- as in version 3
  -- As in version 3, plus 'fabric': an NVSwitch passed with the whole board (policy nvswitch_mode).
  role TEXT NOT NULL CHECK (role IN ('requested', 'function', 'group_peer', 'fabric')),
  iommu_group TEXT NOT NULL,  -- as in version 3
  original_driver TEXT NOT NULL,  -- as in version 3
  original_override TEXT NOT NULL,  -- as in version 3
  step TEXT NOT NULL CHECK (step IN ('claimed', 'override_set', 'unbound', 'bound', 'releasing')),  -- as in version 3
  updated_unix_ms INTEGER NOT NULL  -- as in version 3
) STRICT;
INSERT INTO device_assignments_v6 SELECT bdf, vm_id, role, iommu_group, original_driver,
  original_override, step, updated_unix_ms FROM device_assignments;
DROP TABLE device_assignments;
ALTER TABLE device_assignments_v6 RENAME TO device_assignments;
CREATE INDEX device_assignments_by_vm ON device_assignments (vm_id, bdf);
)sql"},
};

}  // namespace

std::span<const Migration> schema_migrations() { return kMigrations; }

Result<int> migrate(sqlite::Lock& db, std::span<const Migration> steps, std::string_view path) {
  const int known = static_cast<int>(steps.size());
  auto newer_error = [&](int64_t version) {
    return fail(Code::kFailedPrecondition,
                "database " + std::string(path) + " has schema version " +
                    std::to_string(version) + " but this feosd knows only versions up to " +
                    std::to_string(known) + "; it was written by a newer feosd");
  };
  // Checked before taking the write lock so a newer database is refused without writing to it.
  const std::string read_version = "read schema version of " + std::string(path);
  FEOS_ASSIGN_OR_RETURN(const int64_t version, db.query_int("PRAGMA user_version", read_version));
  if (version > known) return newer_error(version);

  auto logger = log::get("store");
  for (;;) {
    // Every return before the commit rolls the step back: nothing of it stays behind.
    FEOS_ASSIGN_OR_RETURN(
        sqlite::Transaction transaction,
        sqlite::Transaction::begin(db, "begin migration of " + std::string(path)));
    FEOS_ASSIGN_OR_RETURN(const int64_t current, db.query_int("PRAGMA user_version", read_version));
    if (current > known) return newer_error(current);
    if (current == known) return known;  // nothing written: the rollback loses nothing
    const int from = static_cast<int>(current);
    const Migration& step = steps[from];
    const std::string what = "migrate " + std::string(path) + " to schema version " +
                             std::to_string(from + 1) + " (" + step.description + ")";
    const std::string bump = "PRAGMA user_version = " + std::to_string(from + 1);
    FEOS_TRY(db.exec(step.sql, what));
    FEOS_TRY(db.exec(bump.c_str(), what));
    FEOS_TRY(transaction.commit(what));
    logger->info("schema migrated path={} version={} step=\"{}\"", path, from + 1,
                 step.description);
  }
}

}  // namespace feos::store
