#pragma once
// An in-memory store::DeviceLedger with the SQLite ledger's rules and messages (store::Database):
// claims are all or nothing and refuse a device that already has a row, naming its holder; rows
// list sorted by bdf. Thread-safe (hostdev prepares IOMMU groups in parallel). For tests that
// need the ledger's behaviour but not its file: plans, inventories, and HostDevices on the fake
// kernel.
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/device_ledger.h"

namespace feos::test {

class FakeDeviceLedger final : public store::DeviceLedger {
 public:
  Status claim(std::string_view vm_id, const std::vector<store::DeviceAssignment>& rows) override {
    FEOS_TRY(store::check_claim_rows(std::string(vm_id), rows));
    std::lock_guard lock(mu_);
    for (const auto& row : rows) {
      auto held = rows_.find(row.bdf);
      if (held != rows_.end()) {
        return fail(Code::kFailedPrecondition,
                    row.bdf.to_string() + " is assigned to vm " + held->second.vm_id);
      }
    }
    for (const auto& row : rows) rows_.emplace(row.bdf, row);
    return ok();
  }

  Status set_step(std::string_view vm_id, const pci::Address& bdf, store::AssignmentStep step,
                  int64_t now_ms) override {
    std::lock_guard lock(mu_);
    auto it = rows_.find(bdf);
    if (it == rows_.end() || it->second.vm_id != vm_id) {
      return fail(Code::kNotFound,
                  bdf.to_string() + " is not assigned to vm " + std::string(vm_id));
    }
    it->second.step = step;
    it->second.updated_unix_ms = now_ms;
    return ok();
  }

  Result<std::vector<store::DeviceAssignment>> list(
      std::optional<std::string_view> vm_id = std::nullopt) override {
    std::lock_guard lock(mu_);
    std::vector<store::DeviceAssignment> out;
    for (const auto& [bdf, row] : rows_) {
      if (!vm_id || row.vm_id == *vm_id) out.push_back(row);
    }
    return out;
  }

  Result<int> delete_assignments(std::string_view vm_id,
                                 const std::vector<pci::Address>& bdfs) override {
    std::lock_guard lock(mu_);
    int deleted = 0;
    for (const auto& bdf : bdfs) {
      auto it = rows_.find(bdf);
      if (it == rows_.end() || it->second.vm_id != vm_id) continue;
      rows_.erase(it);
      ++deleted;
    }
    return deleted;
  }

 private:
  std::mutex mu_;
  std::map<pci::Address, store::DeviceAssignment> rows_;  // by bdf; guarded by mu_
};

}  // namespace feos::test
