#pragma once
// The host-device ownership ledger as hostdev uses it: which VM holds which host PCI function and
// how far binding it has come (rows: device_assignment.h). hostdev writes a row's step BEFORE the
// sysfs write it announces, so after a crash the ledger says what may have happened.
// Implemented over the database by SqliteDeviceLedger (sqlite_device_ledger.h); an interface so
// that hostdev depends on these four calls only, and tests may hold the ledger in memory.
// Rows do not refer to VM records: a VM may hold devices before its record is stored, and rows of
// a VM that never got stored are reconciled by hostdev.
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "store/device_assignment.h"

namespace feos::store {

// The checks every claim() makes on its arguments before it touches a row (the errors named at
// claim() below): shared by the implementations, so that they answer the same.
inline Status check_claim_rows(const std::string& vm_id, const std::vector<DeviceAssignment>& rows) {
  if (vm_id.empty()) return fail(Code::kInvalidArgument, "claim devices: empty vm id");
  std::set<pci::Address> seen;
  for (const auto& row : rows) {
    if (row.vm_id != vm_id) {
      return fail(Code::kInvalidArgument, "claim devices for vm " + vm_id + ": row of " +
                                              row.bdf.to_string() + " names vm \"" + row.vm_id +
                                              "\"");
    }
    if (!seen.insert(row.bdf).second) {
      return fail(Code::kInvalidArgument,
                  "claim devices for vm " + vm_id + ": " + row.bdf.to_string() + " is listed twice");
    }
  }
  return ok();
}

class DeviceLedger {
 public:
  virtual ~DeviceLedger() = default;

  // Records that `vm_id` holds every device of `rows`, all or nothing, atomically (also against
  // other processes on the same file): of two concurrent claims of the same device, exactly one
  // succeeds. Each row is stored as given (its vm_id must be `vm_id`). An empty `rows` succeeds.
  // Errors: INVALID_ARGUMENT for an empty vm_id, a row of another VM, or a bdf twice
  // in `rows`; FAILED_PRECONDITION "0000:18:00.0 is assigned to vm <holder>" when a device already
  // has a row (whichever VM holds it, `vm_id` included), and then nothing is written;
  // INTERNAL/UNAVAILABLE from the storage.
  virtual Status claim(std::string_view vm_id, const std::vector<DeviceAssignment>& rows) = 0;

  // Sets the step and updated_unix_ms (= now_ms) of the row of `bdf` held by `vm_id`.
  // Errors: NOT_FOUND "0000:18:00.0 is not assigned to vm <id>" when there is no such row;
  // INTERNAL/UNAVAILABLE from the storage.
  virtual Status set_step(std::string_view vm_id, const pci::Address& bdf, AssignmentStep step,
                          int64_t now_ms) = 0;

  // Rows sorted by bdf: those held by `vm_id`, or all of them for nullopt.
  // Errors: INTERNAL "corrupt record" for a row with an unknown role or step, a bdf that is not
  // a PCI address or an iommu_group that is not a number;
  // INTERNAL/UNAVAILABLE from the storage.
  virtual Result<std::vector<DeviceAssignment>> list(std::optional<std::string_view> vm_id) = 0;

  // Deletes the rows of `bdfs` held by `vm_id`, atomically, and returns how many it deleted. Rows
  // that do not exist or belong to another VM are left alone, so deleting twice is harmless.
  // Errors: INTERNAL/UNAVAILABLE from the storage (then nothing is deleted).
  virtual Result<int> delete_assignments(std::string_view vm_id,
                                         const std::vector<pci::Address>& bdfs) = 0;
};

}  // namespace feos::store
