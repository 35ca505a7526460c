#pragma once
// DeviceLedger over the database's table device_assignments (see migrations.cc), on the
// connection the other stores share. Thread-safe: each call holds the connection for its length.
// Claims and deletions run in one BEGIN IMMEDIATE transaction each, so they serialize with those
// of other processes on the same file.
#include "store/device_ledger.h"
#include "store/sqlite.h"

namespace feos::store {

class SqliteDeviceLedger final : public DeviceLedger {
 public:
  explicit SqliteDeviceLedger(sqlite::Connection& connection) : connection_(connection) {}

  Status claim(std::string_view vm_id, const std::vector<DeviceAssignment>& rows) override;
  Status set_step(std::string_view vm_id, const pci::Address& bdf, AssignmentStep step,
                  int64_t now_ms) override;
  Result<std::vector<DeviceAssignment>> list(std::optional<std::string_view> vm_id) override;
  Result<int> delete_assignments(std::string_view vm_id,
                                 const std::vector<pci::Address>& bdfs) override;

 private:
  sqlite::Connection& connection_;
};

}  // namespace feos::store
