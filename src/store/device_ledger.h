#pragma once
// The host-device ownership ledger as the hostdev layer uses it: which VM holds which host PCI
// function and how far binding it to vfio-pci has come (rows: device_assignment.h). An interface,
// so hostdev depends on these four calls only: store::Database implements it over SQLite; tests
// may use an in-memory ledger.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "store/device_assignment.h"

namespace feos::store {

class DeviceLedger {
 public:
  virtual ~DeviceLedger() = default;

  // Records that `vm_id` holds every device of `rows`, all or nothing: of two concurrent claims
  // of the same device, exactly one succeeds. Each row is stored as given (its vm_id must be
  // `vm_id`).
  // Errors: INVALID_ARGUMENT for an empty vm_id, an empty bdf, a row of another VM, or a bdf twice
  // in `rows`; FAILED_PRECONDITION "0000:18:00.0 is assigned to vm <holder>" when a device already
  // has a row (whichever VM holds it, `vm_id` included), and then nothing is written; storage
  // errors (INTERNAL/UNAVAILABLE).
  virtual Status claim(std::string_view vm_id, const std::vector<DeviceAssignment>& rows) = 0;

  // Sets the step and updated_unix_ms (= now_ms) of the row of `bdf` held by `vm_id`.
  // Errors: NOT_FOUND "0000:18:00.0 is not assigned to vm <id>" when there is no such row;
  // storage errors.
  virtual Status set_step(std::string_view vm_id, std::string_view bdf, AssignmentStep step,
                          int64_t now_ms) = 0;

  // Rows sorted by bdf: all of them, or only those held by `vm_id`.
  // Errors: INTERNAL "corrupt record" for a row with an unknown role or step; storage errors.
  virtual Result<std::vector<DeviceAssignment>> list(
      std::optional<std::string_view> vm_id = std::nullopt) = 0;

  // Deletes the rows of `bdfs` held by `vm_id`, all or none, and returns how many it deleted.
  // Rows that do not exist or belong to another VM are left alone, so deleting twice is harmless.
  // Errors: storage errors (then nothing is deleted).
  virtual Result<int> delete_assignments(std::string_view vm_id,
                                         const std::vector<std::string>& bdfs) = 0;
};

}  // namespace feos::store
