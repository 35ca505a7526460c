// HostDevices::reconcile(): the ledger against the kernel's driver links at daemon start.
#include <map>
#include <set>

#include "common/log.h"
#include "hostdev/host_devices.h"

namespace feos::hostdev {

using store::AssignmentStep;
using store::DeviceAssignment;

Result<ReconcileReport> HostDevices::reconcile(const std::set<std::string>& vms_that_keep_devices) {
  auto rows = ledger_.list(std::nullopt);
  if (!rows) return fail(rows.error().context("reconcile devices"));
  std::map<std::string, std::vector<DeviceAssignment>> by_vm;
  std::set<pci::Address> owned;
  for (const auto& row : *rows) {
    by_vm[row.vm_id].push_back(row);
    owned.insert(row.bdf);
  }
  ReconcileReport report;
  auto label = [](const DeviceAssignment& row) {
    return row.bdf.to_string() + " (vm " + row.vm_id + ")";
  };
  for (auto& [vm_id, vm_rows] : by_vm) {
    std::vector<DeviceAssignment> to_release;
    const bool keeps = vms_that_keep_devices.count(vm_id) > 0;
    for (const auto& row : vm_rows) {
      if (keeps) {
        auto driver = binder_.driver(row.bdf);
        if (driver && *driver == binder_.vfio_driver()) {
          if (row.step != AssignmentStep::kBound) {
            FEOS_TRY(set_step(vm_id, row.bdf, AssignmentStep::kBound));
          }
          report.kept.push_back(label(row));
          continue;
        }
      }
      to_release.push_back(row);
    }
    if (to_release.empty()) continue;
    std::vector<std::string> failures;
    (void)restore_rows(vm_id, to_release, &failures);  // failures are reported below
    auto left = ledger_.list(vm_id);
    if (!left) return fail(left.error().context("reconcile devices"));
    std::set<pci::Address> still_held;
    for (const auto& row : *left) still_held.insert(row.bdf);
    for (const auto& row : to_release) {
      if (still_held.count(row.bdf) == 0) {
        report.released.push_back(label(row) + ": returned to " +
                                  (row.original_driver.empty() ? std::string("no driver")
                                                               : row.original_driver) +
                                  " (was at step " + std::string(store::step_name(row.step)) +
                                  ")");
      }
    }
    for (const auto& failure : failures) report.failed.push_back("vm " + vm_id + ": " + failure);
  }
  if (auto on_vfio = binder_.bound_to_vfio()) {
    for (const auto& address : *on_vfio) {
      if (owned.count(address) == 0) report.unowned_vfio.push_back(address.to_string());
    }
  }
  log::get("hostdev")->info("reconciled kept={} released={} failed={} unowned_vfio={}",
                            report.kept.size(), report.released.size(), report.failed.size(),
                            report.unowned_vfio.size());
  return report;
}

}  // namespace feos::hostdev
