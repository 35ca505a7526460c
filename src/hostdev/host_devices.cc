#include "hostdev/host_devices.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "common/log.h"
#include "hostdev/host_view.h"
#include "hostdev/planning.h"
#include "hostdev/timed_write.h"

namespace feos::hostdev {

using detail::device_attr;
using detail::driver_file;
using store::AssignmentStep;
using store::DeviceAssignment;

namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("hostdev"); }

// Joins `items` with "; ".
std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += "; ";
    out += item;
  }
  return out;
}

// Runs `work(i)` for i in [0, n), each on its own thread (the calling thread takes the last one).
template <typename Work>
void run_parallel(size_t n, Work work) {
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (size_t i = 0; i + 1 < n; ++i) threads.emplace_back([&work, i] { work(i); });
  if (n > 0) work(n - 1);
  for (auto& t : threads) t.join();
}

// Groups ledger rows by IOMMU group (rows without one each on their own), keeping their order.
std::vector<std::vector<DeviceAssignment>> by_group(const std::vector<DeviceAssignment>& rows) {
  std::map<std::string, std::vector<DeviceAssignment>> groups;
  for (const auto& row : rows) {
    groups[row.iommu_group.empty() ? "bdf:" + row.bdf : row.iommu_group].push_back(row);
  }
  std::vector<std::vector<DeviceAssignment>> out;
  for (auto& [key, members] : groups) out.push_back(std::move(members));
  return out;
}

}  // namespace

// Devices with a sysfs write that outlived its deadline and is still blocked in the kernel. Such a
// write may still take effect (a late unbind detaches the device after the rollback looked), so
// the device's ledger row stays until the write returns; then its VM's rows are released again by
// the retry thread. Shared with the writing threads, which may outlive HostDevices.
struct HostDevices::InDoubt {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, int> blocked_writes;  // bdf -> writes still in the kernel
  std::deque<std::string> vms_to_release;      // VMs whose last blocked write returned
  bool closed = false;                         // HostDevices is gone: nobody retries

  bool blocked(const std::string& bdf) {
    std::lock_guard lock(mu);
    return blocked_writes.count(bdf) > 0;
  }
};

LateWriteHooks HostDevices::late_hooks(const std::string& vm_id, const std::string& bdf) const {
  LateWriteHooks hooks;
  hooks.abandoned = [in_doubt = in_doubt_, bdf] {
    std::lock_guard lock(in_doubt->mu);
    ++in_doubt->blocked_writes[bdf];
  };
  // The writing thread may outlive this object: it holds the shared state, never `this`.
  hooks.returned = [in_doubt = in_doubt_, vm_id, bdf](const Status&) {
    std::lock_guard lock(in_doubt->mu);
    auto it = in_doubt->blocked_writes.find(bdf);
    if (it != in_doubt->blocked_writes.end() && --it->second <= 0) in_doubt->blocked_writes.erase(it);
    if (in_doubt->closed) return;
    in_doubt->vms_to_release.push_back(vm_id);
    in_doubt->cv.notify_all();
  };
  return hooks;
}

// Marks a VM busy for one operation; the destructor clears the mark.
class VmOperation {
 public:
  VmOperation(HostDevices& host, const std::string& vm_id) : host_(host), vm_id_(vm_id) {
    begun_ = host_.begin_vm_operation(vm_id_);
  }
  ~VmOperation() {
    if (begun_) host_.end_vm_operation(vm_id_);
  }
  VmOperation(const VmOperation&) = delete;
  VmOperation& operator=(const VmOperation&) = delete;
  const Status& begun() const { return begun_; }

 private:
  HostDevices& host_;
  std::string vm_id_;
  Status begun_;
};

HostDevices::HostDevices(sys::Filesystem& fs, sys::HostPaths paths, store::Database& db,
                         Policy policy, Options options)
    : fs_(fs),
      paths_(std::move(paths)),
      db_(db),
      policy_(std::move(policy)),
      options_(std::move(options)),
      device_cache_(std::make_unique<detail::DeviceCache>()),
      in_doubt_(std::make_shared<InDoubt>()),
      retrier_([this] { retry_loop(); }) {}

HostDevices::~HostDevices() {
  {
    std::lock_guard lock(in_doubt_->mu);
    in_doubt_->closed = true;
    in_doubt_->cv.notify_all();
  }
  retrier_.join();
}

void HostDevices::retry_loop() {
  for (;;) {
    std::string vm_id;
    {
      std::unique_lock lock(in_doubt_->mu);
      in_doubt_->cv.wait(lock, [&] { return in_doubt_->closed || !in_doubt_->vms_to_release.empty(); });
      if (in_doubt_->closed) return;
      vm_id = std::move(in_doubt_->vms_to_release.front());
      in_doubt_->vms_to_release.pop_front();
    }
    // The operation whose write hung may still be rolling back: wait for it to end.
    std::optional<VmOperation> operation;
    for (;;) {
      operation.emplace(*this, vm_id);
      if (operation->begun()) break;
      operation.reset();
      std::unique_lock lock(in_doubt_->mu);
      if (in_doubt_->cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return in_doubt_->closed; }))
        return;
    }
    Status released = release_rows_of(vm_id);
    if (released) {
      logger()->info("devices returned after a late sysfs write vm={}", vm_id);
    } else {
      logger()->error("devices not returned after a late sysfs write vm={} error=\"{}\"", vm_id,
                      released.error().to_string());
    }
  }
}

int64_t HostDevices::now_ms() const {
  if (options_.now_unix_ms) return options_.now_unix_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status HostDevices::begin_vm_operation(const std::string& vm_id) {
  std::lock_guard lock(busy_mu_);
  if (!busy_vms_.insert(vm_id).second) {
    return fail(Code::kFailedPrecondition,
                "vm " + vm_id + ": another device operation (prepare or release) is in progress");
  }
  return ok();
}

void HostDevices::end_vm_operation(const std::string& vm_id) {
  std::lock_guard lock(busy_mu_);
  busy_vms_.erase(vm_id);
}

Result<std::string> HostDevices::current_driver(const std::string& bdf) const {
  auto target = fs_.read_link(device_attr(paths_, bdf, "driver"));
  if (target) return sys::basename_of(*target);
  if (target.error().code == Code::kNotFound) {
    if (!fs_.exists(paths_.pci_device(bdf))) {
      return fail(Code::kNotFound, "PCI device " + bdf + " is gone (no " +
                                       paths_.pci_device(bdf) + ")");
    }
    return std::string();
  }
  return fail(target.error());
}

Result<std::string> HostDevices::current_override(const std::string& bdf) const {
  auto text = fs_.read_file(device_attr(paths_, bdf, "driver_override"));
  if (!text) return fail(text.error());
  std::string value = sys::trim(*text);
  return value == "(null)" ? std::string() : value;
}

Status HostDevices::set_step(const std::string& vm_id, const std::string& bdf,
                             AssignmentStep step) {
  if (Status set = db_.set_device_step(vm_id, bdf, step, now_ms()); !set) {
    return fail(set.error().context("vm " + vm_id + ": record step " +
                                    std::string(store::step_name(step)) + " of " + bdf));
  }
  return ok();
}

Status HostDevices::wait_for_driver(const std::string& bdf, const std::string& driver,
                                    const std::string& what) {
  // Probing is synchronous for vfio-pci and most drivers; the poll covers asynchronous probing.
  const auto deadline = std::chrono::steady_clock::now() + options_.step_timeout;
  std::string now;
  for (auto pause = std::chrono::microseconds(200);; pause = std::min(pause * 2, decltype(pause)(20000))) {
    auto current = current_driver(bdf);
    if (!current) return fail(current.error().context(what));
    now = *current;
    if (now == driver) return ok();
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(pause);
  }
  return fail(Code::kInternal, what + ": " + bdf + " is bound to " +
                                   (now.empty() ? std::string("no driver") : now) + ", not " +
                                   (driver.empty() ? std::string("no driver") : driver) +
                                   " (after waiting " +
                                   std::to_string(options_.step_timeout.count()) + " ms)");
}

Result<std::vector<model::AssignedGpu>> HostDevices::plan(
    const std::string& vm_id, const std::vector<model::GpuSpec>& gpus) const {
  if (vm_id.empty()) return fail(Code::kInvalidArgument, "plan devices: empty vm id");
  detail::HostView view(fs_, paths_);
  detail::PlanContext context(fs_, paths_, db_, policy_, options_, view);
  auto planned = detail::make_plan(context, gpus);
  if (!planned) return fail(planned.error().error.context("vm " + vm_id));
  return std::move(planned->gpus);
}

Status HostDevices::bind_group(const std::string& vm_id,
                               const std::vector<const detail::Target*>& devices,
                               const std::atomic<bool>& abort) {
  const std::string& vfio = options_.vfio_driver;
  const std::string& group = devices.front()->group;
  for (const detail::Target* t : devices) {
    const std::string& bdf = t->bdf;
    const std::string prefix = "vm " + vm_id + ": " + bdf + ": ";
    if (abort) {
      // Another group failed: everything is rolled back anyway, so stop touching devices.
      return fail(Code::kCancelled, prefix + "not bound: another IOMMU group failed");
    }

    FEOS_TRY(set_step(vm_id, bdf, AssignmentStep::kOverrideSet));
    FEOS_TRY(timed_write(fs_, device_attr(paths_, bdf, "driver_override"), vfio,
                         prefix + "set driver_override to " + vfio, options_.step_timeout,
                         late_hooks(vm_id, bdf)));

    auto driver = current_driver(bdf);
    if (!driver) return fail(driver.error().context(prefix + "read driver"));
    if (*driver != vfio) {
      if (!driver->empty()) {
        FEOS_TRY(set_step(vm_id, bdf, AssignmentStep::kUnbound));
        FEOS_TRY(timed_write(fs_, driver_file(paths_, *driver, "unbind"), bdf,
                             prefix + "unbind from " + *driver, options_.step_timeout,
                             late_hooks(vm_id, bdf)));
        logger()->info("device unbound vm={} bdf={} group={} driver={}", vm_id, bdf, group,
                       *driver);
      }
      FEOS_TRY(set_step(vm_id, bdf, AssignmentStep::kBound));
      FEOS_TRY(timed_write(fs_, paths_.pci_drivers_probe(), bdf, prefix + "drivers_probe",
                           options_.step_timeout, late_hooks(vm_id, bdf)));
    } else {
      FEOS_TRY(set_step(vm_id, bdf, AssignmentStep::kBound));
    }
    FEOS_TRY(wait_for_driver(bdf, vfio, prefix + "bind to " + vfio));
    logger()->info("device bound vm={} bdf={} group={} step=bound driver={} original={}", vm_id,
                   bdf, group, vfio, t->original_driver.empty() ? "none" : t->original_driver);
  }
  // The group's node appears when its first device binds (udev may lag); the hypervisor opens it.
  const std::string node = paths_.vfio_group(group);
  const auto deadline = std::chrono::steady_clock::now() + options_.vfio_node_timeout;
  for (auto pause = std::chrono::microseconds(200);; pause = std::min(pause * 2, decltype(pause)(20000))) {
    if (fs_.exists(node)) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      return fail(Code::kDeadlineExceeded,
                  "vm " + vm_id + ": IOMMU group " + group + ": " + node +
                      " did not appear within " + std::to_string(options_.vfio_node_timeout.count()) +
                      " ms after binding " + devices.back()->bdf + " to " + vfio);
    }
    std::this_thread::sleep_for(pause);
  }
  return ok();
}

Result<std::vector<model::AssignedGpu>> HostDevices::prepare(
    const std::string& vm_id, const std::vector<model::GpuSpec>& gpus) {
  if (vm_id.empty()) return fail(Code::kInvalidArgument, "prepare devices: empty vm id");
  if (gpus.empty()) return std::vector<model::AssignedGpu>();
  VmOperation operation(*this, vm_id);
  if (!operation.begun()) return fail(operation.begun().error());

  // The plan reads each device's driver and driver_override before the claim, and another VM's
  // release may be returning the device right then (its rows go only once the device is back):
  // the plan may have seen a passing state, and recording that as the device's original state
  // would strand it on release. Once the claim holds the rows nobody else writes the devices, so
  // they are read again; if they moved, the claim is given back and the plan made again.
  constexpr int kPlanAttempts = 3;
  std::optional<detail::Plan> planned_once;
  std::vector<DeviceAssignment> rows;
  for (int attempt = 1; !planned_once; ++attempt) {
    detail::HostView view(fs_, paths_);
    detail::PlanContext context(fs_, paths_, db_, policy_, options_, view);
    auto planned = detail::make_plan(context, gpus);
    if (!planned) return fail(planned.error().error.context("vm " + vm_id));

    // The claim is the commit point between concurrent prepares: all devices or none.
    rows.clear();
    const int64_t now = now_ms();
    for (const auto& t : planned->targets) {
      rows.push_back(DeviceAssignment{.bdf = t.bdf,
                                      .vm_id = vm_id,
                                      .role = t.role,
                                      .iommu_group = t.group,
                                      .original_driver = t.original_driver,
                                      .original_override = t.original_override,
                                      .step = AssignmentStep::kClaimed,
                                      .updated_unix_ms = now});
    }
    if (Status claimed = db_.claim_devices(vm_id, rows); !claimed) {
      return fail(claimed.error().context("vm " + vm_id));
    }
    std::string moved;
    for (const auto& row : rows) {
      auto driver = current_driver(row.bdf);
      auto override_now = driver ? current_override(row.bdf) : Result<std::string>(driver);
      if (!driver || !override_now) {
        std::vector<std::string> bdfs;
        for (const auto& r : rows) bdfs.push_back(r.bdf);
        (void)db_.release_devices(vm_id, bdfs);  // nothing was written to sysfs yet
        const Error& e = driver ? override_now.error() : driver.error();
        return fail(e.context("vm " + vm_id + ": " + row.bdf + ": read after claim"));
      }
      if (*driver != row.original_driver || *override_now != row.original_override) {
        moved = row.bdf + " (planned with driver '" + row.original_driver + "' override '" +
                row.original_override + "', now '" + *driver + "' / '" + *override_now + "')";
        break;
      }
    }
    if (moved.empty()) {
      planned_once = std::move(*planned);
      break;
    }
    std::vector<std::string> bdfs;
    for (const auto& r : rows) bdfs.push_back(r.bdf);
    if (auto released = db_.release_devices(vm_id, bdfs); !released) {
      return fail(released.error().context("vm " + vm_id + ": give back a stale claim"));
    }
    logger()->info("device changed between plan and claim, planning again vm={} attempt={} device=\"{}\"",
                   vm_id, attempt, moved);
    if (attempt == kPlanAttempts) {
      return fail(Code::kAborted, "vm " + vm_id + ": " + moved +
                                      " kept changing while it was being planned (another VM was "
                                      "returning it); try again");
    }
  }
  const detail::Plan& plan = *planned_once;
  const auto by_group_targets = detail::targets_by_group(plan);
  logger()->info("devices claimed vm={} devices={} groups={}", vm_id, rows.size(),
                 by_group_targets.size());

  std::vector<std::pair<std::string, std::vector<const detail::Target*>>> groups(
      by_group_targets.begin(), by_group_targets.end());
  std::vector<Status> results(groups.size());
  std::atomic<bool> abort{false};
  const auto started = std::chrono::steady_clock::now();
  run_parallel(groups.size(), [&](size_t i) {
    results[i] = bind_group(vm_id, groups[i].second, abort);
    if (!results[i]) abort = true;
  });

  // The groups' own failures; groups that stopped because of them add nothing.
  std::vector<std::string> errors;
  Code code = Code::kOk;
  for (const auto& result : results) {
    if (result || result.error().code == Code::kCancelled) continue;
    if (code == Code::kOk) code = result.error().code;
    errors.push_back(result.error().message);
  }
  for (const auto& result : results) {
    if (errors.empty() && !result) {  // only cancellations (cannot happen; be safe)
      code = result.error().code;
      errors.push_back(result.error().message);
    }
  }
  if (errors.empty()) {
    logger()->info("devices prepared vm={} devices={} groups={} ms={}", vm_id, rows.size(),
                   groups.size(),
                   std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - started)
                       .count());
    return plan.gpus;
  }

  logger()->warn("prepare failed, rolling back vm={} error=\"{}\"", vm_id, join(errors));
  auto held = db_.list_device_assignments(vm_id);
  std::string message = join(errors);
  if (!held) {
    message += "; rollback not attempted: " + held.error().message;
  } else {
    std::vector<std::string> failures;
    if (Status restored = restore_rows(vm_id, *held, &failures); !restored) {
      message += "; rollback left devices held by vm " + vm_id + " (release retries them): " +
                 join(failures);  // restore_rows names each device and step
    }
  }
  return fail(code, message);
}

Status HostDevices::restore_device(const DeviceAssignment& row) {
  const std::string& bdf = row.bdf;
  const std::string& vm_id = row.vm_id;
  const std::string& vfio = options_.vfio_driver;
  const std::string& original = row.original_driver;
  const std::string prefix = bdf + ": ";  // callers name the VM
  bool marked = row.step == AssignmentStep::kReleasing;
  auto mark_releasing = [&]() -> Status {
    if (marked) return ok();
    marked = true;
    return set_step(vm_id, bdf, AssignmentStep::kReleasing);
  };
  if (in_doubt_->blocked(bdf)) {
    // Whatever is done now could be undone by the blocked write when it lands.
    FEOS_TRY(mark_releasing());
    return fail(Code::kUnavailable, prefix + "a write to it is still blocked in the kernel; it stays "
                                             "held by vm " + vm_id +
                                             " and is returned when that write returns");
  }

  auto driver = current_driver(bdf);
  if (!driver) {
    if (driver.error().code == Code::kNotFound) {
      // Hot-unplugged: nothing of it is left to strand.
      logger()->warn("device gone, dropping its ledger row vm={} bdf={}", vm_id, bdf);
      return ok();
    }
    return fail(driver.error().context(prefix + "read driver"));
  }
  // Reverse order of prepare: leave vfio-pci, restore the override, rebind the original driver.
  if (*driver == vfio && original != vfio) {
    FEOS_TRY(mark_releasing());
    FEOS_TRY(timed_write(fs_, driver_file(paths_, vfio, "unbind"), bdf,
                         prefix + "unbind from " + vfio, options_.step_timeout,
                         late_hooks(vm_id, bdf)));
    logger()->info("device unbound vm={} bdf={} group={} driver={}", vm_id, bdf, row.iommu_group,
                   vfio);
  }
  auto override_now = current_override(bdf);
  if (!override_now) return fail(override_now.error().context(prefix + "read driver_override"));
  if (*override_now != row.original_override) {
    FEOS_TRY(mark_releasing());
    // A lone newline clears driver_override (an empty write(2) may not reach the attribute).
    const std::string value = row.original_override.empty() ? "\n" : row.original_override;
    FEOS_TRY(timed_write(fs_, device_attr(paths_, bdf, "driver_override"), value,
                         prefix + (row.original_override.empty()
                                       ? std::string("clear driver_override")
                                       : "restore driver_override " + row.original_override),
                         options_.step_timeout, late_hooks(vm_id, bdf)));
  }
  driver = current_driver(bdf);
  if (!driver) return fail(driver.error().context(prefix + "read driver"));
  if (*driver != original) {
    if (!driver->empty()) {
      return fail(Code::kFailedPrecondition,
                  prefix + "is bound to " + *driver + ", not its original driver " +
                      (original.empty() ? std::string("(none)") : original) + "; left as it is");
    }
    if (!original.empty()) {
      FEOS_TRY(mark_releasing());
      Status bound = fail(Code::kNotFound, "driver " + original + " is not loaded");
      if (fs_.exists(paths_.pci_driver(original))) {
        bound = timed_write(fs_, driver_file(paths_, original, "bind"), bdf,
                            prefix + "bind to " + original, options_.step_timeout,
                            late_hooks(vm_id, bdf));
      }
      if (!bound && bound.error().code != Code::kDeadlineExceeded) {
        // The driver may be gone or refuse an explicit bind; probing finds it if it can.
        logger()->info("explicit bind failed, probing vm={} bdf={} driver={} error=\"{}\"", vm_id,
                       bdf, original, bound.error().to_string());
        bound = timed_write(fs_, paths_.pci_drivers_probe(), bdf, prefix + "drivers_probe",
                            options_.step_timeout, late_hooks(vm_id, bdf));
      }
      if (!bound) return bound;
      FEOS_TRY(wait_for_driver(bdf, original, prefix + "return to " + original));
    }
  }
  logger()->info("device returned vm={} bdf={} group={} driver={}", vm_id, bdf, row.iommu_group,
                 original.empty() ? "none" : original);
  return ok();
}

Status HostDevices::restore_rows(const std::string& vm_id,
                                 const std::vector<DeviceAssignment>& rows,
                                 std::vector<std::string>* failures) {
  auto groups = by_group(rows);
  std::mutex mu;
  std::vector<std::string> restored;
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
        logger()->error("device not returned vm={} bdf={} group={} error=\"{}\"", vm_id, it->bdf,
                        it->iommu_group, done.error().to_string());
      }
    }
  });
  auto released = db_.release_devices(vm_id, restored);
  if (!released) {
    if (code == Code::kOk) code = released.error().code;
    failures->push_back("delete ledger rows: " + released.error().message);
  }
  std::sort(failures->begin(), failures->end());
  if (code != Code::kOk) return fail(code, join(*failures));
  return ok();
}

Status HostDevices::release(const std::string& vm_id) {
  VmOperation operation(*this, vm_id);
  if (!operation.begun()) return fail(operation.begun().error());
  return release_rows_of(vm_id);
}

Status HostDevices::release_rows_of(const std::string& vm_id) {
  auto rows = db_.list_device_assignments(vm_id);
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

Result<ReconcileReport> HostDevices::reconcile(const std::set<std::string>& vms_that_keep_devices) {
  auto rows = db_.list_device_assignments();
  if (!rows) return fail(rows.error().context("reconcile devices"));
  std::map<std::string, std::vector<DeviceAssignment>> by_vm;
  std::set<std::string> owned;
  for (const auto& row : *rows) {
    by_vm[row.vm_id].push_back(row);
    owned.insert(row.bdf);
  }
  ReconcileReport report;
  auto label = [](const DeviceAssignment& row) { return row.bdf + " (vm " + row.vm_id + ")"; };
  for (auto& [vm_id, vm_rows] : by_vm) {
    std::vector<DeviceAssignment> to_release;
    const bool keeps = vms_that_keep_devices.count(vm_id) > 0;
    for (const auto& row : vm_rows) {
      if (keeps) {
        auto driver = current_driver(row.bdf);
        if (driver && *driver == options_.vfio_driver) {
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
    auto left = db_.list_device_assignments(vm_id);
    if (!left) return fail(left.error().context("reconcile devices"));
    std::set<std::string> still_held;
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
  auto on_vfio = fs_.list_dir(paths_.pci_driver(options_.vfio_driver));
  if (on_vfio) {
    for (const auto& name : *on_vfio) {
      if (pci::Address::parse(name) && owned.count(name) == 0) report.unowned_vfio.push_back(name);
    }
  }
  logger()->info("reconciled kept={} released={} failed={} unowned_vfio={}", report.kept.size(),
                 report.released.size(), report.failed.size(), report.unowned_vfio.size());
  return report;
}

}  // namespace feos::hostdev
