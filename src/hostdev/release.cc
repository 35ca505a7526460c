// HostDevices returning devices to their host drivers, for release(), prepare()'s rollback and
// reconcile(): per device the reverse of prepare's steps, each recorded in the ledger first.
#include <algorithm>
#include <map>
#include <mutex>

#include "common/log.h"
#include "hostdev/host_devices.h"
#include "hostdev/parallel.h"

namespace feos::hostdev {

using detail::join;
using detail::run_parallel;
using store::AssignmentStep;
using store::DeviceAssignment;

namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("hostdev"); }

// For logs: "41", "" without a group.
std::string group_name(const DeviceAssignment& row) {
  return row.iommu_group ? row.iommu_group->to_string() : std::string();
}

// Groups ledger rows by IOMMU group (rows without one each on their own), keeping their order.
std::vector<std::vector<DeviceAssignment>> by_group(const std::vector<DeviceAssignment>& rows) {
  std::map<std::string, std::vector<DeviceAssignment>> groups;
  for (const auto& row : rows) {
    groups[row.iommu_group ? row.iommu_group->to_string() : "bdf:" + row.bdf.to_string()].push_back(row);
  }
  std::vector<std::vector<DeviceAssignment>> out;
  for (auto& [key, members] : groups) out.push_back(std::move(members));
  return out;
}

}  // namespace

Status HostDevices::release_rows_of(const std::string& vm_id) {
  auto rows = ledger_.list(vm_id);
  if (!rows) return fail(rows.error().context("release devices of vm " + vm_id));
  if (rows->empty()) return ok();
  std::vector<std::string> failures;
  if (Status restored = restore_rows(vm_id, *rows, &failures); !restored) {
    return fail(restored.error().code,
                "release devices of vm " + vm_id + ": " + restored.error().message);
  }
  logger()->info("devices released vm={} devices={}", vm_id, rows->size());
  return ok();
}

Status HostDevices::restore_device(const DeviceAssignment& row) {
  const std::string bdf = row.bdf.to_string();
  const std::string& vm_id = row.vm_id;
  const std::string& vfio = binder_.vfio_driver();
  const std::string& original = row.original_driver;
  const std::string prefix = bdf + ": ";  // callers name the VM
  const std::string group = group_name(row);
  bool marked = row.step == AssignmentStep::kReleasing;
  auto mark_releasing = [&]() -> Status {
    if (marked) return ok();
    marked = true;
    return set_step(vm_id, row.bdf, AssignmentStep::kReleasing);
  };
  if (binder_.in_doubt(bdf)) {
    // Whatever is done now could be undone by the blocked write when it lands.
    FEOS_TRY(mark_releasing());
    return fail(Code::kUnavailable, prefix + "a write to it is still blocked in the kernel; it stays "
                                             "held by vm " + vm_id +
                                             " and is returned when that write returns");
  }

  auto driver = binder_.driver(row.bdf);
  if (!driver) {
    if (driver.error().code == Code::kNotFound) {
      // Hot-unplugged: nothing of it is left to strand.
      logger()->warn("device gone, dropping its ledger row vm={} bdf={}", vm_id, bdf);
      return ok();
    }
    return fail(driver.error().context(prefix + "read driver"));
  }
  const BinderTarget device{row.bdf, bdf, vm_id, prefix};
  // Reverse order of prepare: 1. leave vfio-pci, 2. restore the override, 3. rebind the original
  // driver.
  if (*driver == vfio && original != vfio) {
    FEOS_TRY(mark_releasing());
    FEOS_TRY(binder_.unbind(device, vfio));
    logger()->info("device unbound vm={} bdf={} group={} driver={}", vm_id, bdf, group,
                   vfio);
  }
  auto override_now = binder_.driver_override(row.bdf);
  if (!override_now) return fail(override_now.error().context(prefix + "read driver_override"));
  if (*override_now != row.original_override) {
    FEOS_TRY(mark_releasing());
    FEOS_TRY(binder_.restore_override(device, row.original_override));
  }
  driver = binder_.driver(row.bdf);
  if (!driver) return fail(driver.error().context(prefix + "read driver"));
  if (*driver != original) {
    if (!driver->empty()) {
      return fail(Code::kFailedPrecondition,
                  prefix + "is bound to " + *driver + ", not its original driver " +
                      (original.empty() ? std::string("(none)") : original) + "; left as it is");
    }
    if (!original.empty()) {
      FEOS_TRY(mark_releasing());
      Status bound = binder_.bind(device, original);
      if (!bound && bound.error().code != Code::kDeadlineExceeded) {
        // The driver may be gone or refuse an explicit bind; probing finds it if it can.
        logger()->info("explicit bind failed, probing vm={} bdf={} driver={} error=\"{}\"", vm_id,
                       bdf, original, bound.error().to_string());
        bound = binder_.probe(device);
      }
      if (!bound) return bound;
      FEOS_TRY(binder_.wait_for_driver(device, original, "return to " + original));
    }
  }
  logger()->info("device returned vm={} bdf={} group={} driver={}", vm_id, bdf, group,
                 original.empty() ? "none" : original);
  return ok();
}

Status HostDevices::restore_rows(const std::string& vm_id,
                                 const std::vector<DeviceAssignment>& rows,
                                 std::vector<std::string>* failures) {
  auto groups = by_group(rows);
  std::mutex mu;
  std::vector<pci::Address> restored;
  Code code = Code::kOk;
  run_parallel(groups.size(), [&](size_t g) {
    // Last bound first.
    for (auto it = groups[g].rbegin(); it != groups[g].rend(); ++it) {
      Status done = restore_device(*it);
      std::lock_guard lock(mu);
      if (done) {
        restored.push_back(it->bdf);
      } else {
        if (code == Code::kOk) code = done.error().code;
        failures->push_back(done.error().message);
        logger()->error("device not returned vm={} bdf={} group={} error=\"{}\"", vm_id,
                        it->bdf.to_string(),
                        group_name(*it), done.error().to_string());
      }
    }
  });
  auto deleted = ledger_.delete_assignments(vm_id, restored);
  if (!deleted) {
    if (code == Code::kOk) code = deleted.error().code;
    failures->push_back("delete ledger rows: " + deleted.error().message);
  }
  std::sort(failures->begin(), failures->end());
  if (code != Code::kOk) return fail(code, join(*failures));
  return ok();
}

}  // namespace feos::hostdev
