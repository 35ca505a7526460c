// HostDevices: construction, plan(), and prepare() with its three steps. Returning devices is in
// release.cc, reconcile() in reconcile.cc.
#include "hostdev/host_devices.h"

#include <chrono>
#include <utility>

#include "common/log.h"
#include "hostdev/host_view.h"
#include "hostdev/parallel.h"
#include "hostdev/placement.h"
#include "hostdev/planning.h"

namespace feos::hostdev {

using detail::join;
using detail::run_parallel;
using store::AssignmentStep;
using store::DeviceAssignment;

namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("hostdev"); }

}  // namespace

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

HostDevices::HostDevices(sys::Filesystem& fs, sys::HostPaths paths, store::DeviceLedger& ledger,
                         Policy policy, Options options)
    : fs_(fs),
      paths_(std::move(paths)),
      ledger_(ledger),
      policy_(std::move(policy)),
      options_(std::move(options)),
      device_cache_(std::make_unique<detail::DeviceCache>()),
      binder_(fs, paths_, options_,
              [this](const std::string& vm_id) { return release_after_late_write(vm_id); }) {}

HostDevices::~HostDevices() = default;

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

Status HostDevices::set_step(const std::string& vm_id, const pci::Address& bdf,
                             AssignmentStep step) {
  if (Status set = ledger_.set_step(vm_id, bdf, step, now_ms()); !set) {
    return fail(set.error().context("vm " + vm_id + ": record step " +
                                    std::string(store::step_name(step)) + " of " +
                                    bdf.to_string()));
  }
  return ok();
}

Result<detail::Plan> HostDevices::make_full_plan(const std::vector<model::GpuSpec>& gpus,
                                                 const std::optional<model::GpuCount>& by_count) const {
  detail::HostView view(fs_, paths_);
  detail::PlanContext context(fs_, paths_, ledger_, policy_, options_, view);
  std::vector<model::GpuSpec> wanted = gpus;
  std::vector<std::string> placement_decisions;
  // Every GPU and NVSwitch (from the cache after the first plan): the fabric rules need them.
  FEOS_TRY(view.load_displays(*device_cache_));
  if (by_count) {
    FEOS_ASSIGN_OR_RETURN(detail::Placement placement, detail::place_gpus(context, *by_count, gpus));
    wanted.insert(wanted.end(), placement.gpus.begin(), placement.gpus.end());
    placement_decisions = std::move(placement.decisions);
  }
  auto planned = detail::make_plan(context, wanted);
  if (!planned) return fail(planned.error().error);
  planned->decisions.insert(planned->decisions.begin(), placement_decisions.begin(), placement_decisions.end());
  return std::move(*planned);
}

Result<std::vector<model::AssignedGpu>> HostDevices::plan(
    const std::string& vm_id, const std::vector<model::GpuSpec>& gpus,
    std::vector<std::string>* decisions, const std::optional<model::GpuCount>& by_count) const {
  if (vm_id.empty()) return fail(Code::kInvalidArgument, "plan devices: empty vm id");
  auto planned = make_full_plan(gpus, by_count);
  if (!planned) return fail(planned.error().context("vm " + vm_id));
  if (decisions)
    decisions->insert(decisions->end(), planned->decisions.begin(), planned->decisions.end());
  return std::move(planned->gpus);
}

// The steps follow libvirt's virHostdevPreparePCIDevicesImpl: nothing is written before every
// device is validated and held, every write is announced in the ledger first, and a failure
// anywhere undoes everything.
Result<std::vector<model::AssignedGpu>> HostDevices::prepare(
    const std::string& vm_id, const std::vector<model::GpuSpec>& gpus,
    const std::optional<model::GpuCount>& by_count) {
  if (vm_id.empty()) return fail(Code::kInvalidArgument, "prepare devices: empty vm id");
  if (gpus.empty() && !by_count) return std::vector<model::AssignedGpu>();
  VmOperation operation(*this, vm_id);
  if (!operation.begun()) return fail(operation.begun().error());

  // 1. Plan and claim: validate the request, hold every device in the ledger (all or none).
  FEOS_ASSIGN_OR_RETURN(const detail::Plan plan, claim_plan(vm_id, gpus, by_count));
  // 2. Bind every device to vfio-pci, IOMMU groups in parallel, each step recorded first.
  Status bound = bind_groups(vm_id, plan);
  if (bound) return plan.gpus;
  // 3. Roll back: return every device the VM holds to its recorded state.
  return fail(roll_back(vm_id, bound.error()));
}

Result<std::vector<model::AssignedGpu>> HostDevices::claim(const std::string& vm_id,
                                                            const std::vector<model::GpuSpec>& gpus,
                                                            const std::optional<model::GpuCount>& by_count) {
  if (vm_id.empty()) return fail(Code::kInvalidArgument, "claim devices: empty vm id");
  if (gpus.empty() && !by_count) return std::vector<model::AssignedGpu>();
  VmOperation operation(*this, vm_id);
  if (!operation.begun()) return fail(operation.begun().error());
  FEOS_ASSIGN_OR_RETURN(detail::Plan plan, claim_plan(vm_id, gpus, by_count));
  std::vector<model::AssignedGpu> out = plan.gpus;
  std::lock_guard lock(busy_mu_);
  claims_[vm_id] = std::make_unique<detail::Plan>(std::move(plan));
  return out;
}

Status HostDevices::bind(const std::string& vm_id, const std::atomic<bool>* cancel) {
  VmOperation operation(*this, vm_id);
  if (!operation.begun()) return fail(operation.begun().error());
  std::unique_ptr<detail::Plan> plan;
  {
    std::lock_guard lock(busy_mu_);
    auto it = claims_.find(vm_id);
    if (it == claims_.end()) return fail(Code::kFailedPrecondition, "vm " + vm_id + ": no claimed devices to bind");
    plan = std::move(it->second);
    claims_.erase(it);
  }
  // No rollback here: the caller stops showing the devices on its VM first, then release()
  // returns them (the rows, written before each write, say how far each one got).
  return bind_groups(vm_id, *plan, cancel);
}

Result<detail::Plan> HostDevices::claim_plan(const std::string& vm_id,
                                             const std::vector<model::GpuSpec>& gpus,
                                             const std::optional<model::GpuCount>& by_count) {
  std::lock_guard claim_lock(claim_mu_);
  // The plan reads each device's driver and driver_override before the claim, and another VM's
  // release may be returning the device right then (its rows go only once the device is back):
  // the plan may have seen a passing state, and recording that as the device's original state
  // would strand it on release. Once the claim holds the rows nobody else writes the devices, so
  // they are read again; if they moved, the claim is given back and the plan made again.
  constexpr int kPlanAttempts = 3;
  for (int attempt = 1;; ++attempt) {
    // 1a. Validate and resolve the request, picking GPUs asked by count (no side effects).
    auto planned = make_full_plan(gpus, by_count);
    if (!planned) return fail(planned.error().context("vm " + vm_id));

    // 1b. Claim: the commit point between concurrent prepares, all devices or none.
    std::vector<DeviceAssignment> rows;
    std::vector<pci::Address> bdfs;
    const int64_t now = now_ms();
    for (const auto& t : planned->targets) {
      rows.push_back(DeviceAssignment{.bdf = t.address,
                                      .vm_id = vm_id,
                                      .role = t.role,
                                      .iommu_group = t.group,
                                      .original_driver = t.original_driver,
                                      .original_override = t.original_override,
                                      .step = AssignmentStep::kClaimed,
                                      .updated_unix_ms = now});
      bdfs.push_back(t.address);
    }
    if (Status claimed = ledger_.claim(vm_id, rows); !claimed) {
      return fail(claimed.error().context("vm " + vm_id));
    }

    // 1c. Read each device again under the claim: the state recorded must be the state now.
    std::string moved;
    for (const auto& t : planned->targets) {
      auto driver = binder_.driver(t.address);
      auto override_now = driver ? binder_.driver_override(t.address) : Result<std::string>(driver);
      if (!driver || !override_now) {
        (void)ledger_.delete_assignments(vm_id, bdfs);  // nothing was written to sysfs yet
        const Error& e = driver ? override_now.error() : driver.error();
        return fail(e.context("vm " + vm_id + ": " + t.address.to_string() + ": read after claim"));
      }
      if (*driver != t.original_driver || *override_now != t.original_override) {
        moved = t.address.to_string() + " (planned with driver '" + t.original_driver +
                "' override '" +
                t.original_override + "', now '" + *driver + "' / '" + *override_now + "')";
        break;
      }
    }
    if (moved.empty()) {
      logger()->info("devices claimed vm={} devices={} groups={}", vm_id, rows.size(),
                     detail::targets_by_group(*planned).size());
      return std::move(*planned);
    }
    if (auto released = ledger_.delete_assignments(vm_id, bdfs); !released) {
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
}

Status HostDevices::bind_groups(const std::string& vm_id, const detail::Plan& plan, const std::atomic<bool>* cancel) {
  const auto by_group_targets = detail::targets_by_group(plan);
  std::vector<std::pair<pci::IommuGroup, std::vector<const detail::Target*>>> groups(
      by_group_targets.begin(), by_group_targets.end());
  std::vector<Status> results(groups.size());
  std::atomic<bool> abort{false};
  const auto started = std::chrono::steady_clock::now();
  run_parallel(groups.size(), [&](size_t i) {
    results[i] = bind_group(vm_id, groups[i].second, abort, cancel);
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
    if (errors.empty() && !result) {  // only cancellations: the caller's `cancel`
      code = result.error().code;
      errors.push_back(result.error().message);
    }
  }
  if (!errors.empty()) return fail(code, join(errors));
  logger()->info("devices prepared vm={} devices={} groups={} ms={}", vm_id, plan.targets.size(),
                 groups.size(),
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - started)
                     .count());
  return ok();
}

Status HostDevices::bind_group(const std::string& vm_id,
                               const std::vector<const detail::Target*>& devices,
                               const std::atomic<bool>& abort, const std::atomic<bool>* cancel) {
  const std::string& vfio = binder_.vfio_driver();
  const pci::IommuGroup& group = devices.front()->group;
  const std::string group_name = group.to_string();
  auto target_of = [&](const detail::Target& t) {
    const std::string bdf = t.address.to_string();
    return BinderTarget{t.address, bdf, vm_id, "vm " + vm_id + ": " + bdf + ": "};
  };
  for (const detail::Target* t : devices) {
    const BinderTarget device = target_of(*t);
    const pci::Address& bdf = t->address;
    if (abort) {
      // Another group failed: everything is rolled back anyway, so stop touching devices.
      return fail(Code::kCancelled, device.prefix + "not bound: another IOMMU group failed");
    }
    if (cancel && *cancel) return fail(Code::kCancelled, device.prefix + "not bound: cancelled");

    // 2a. driver_override := vfio-pci: from now on no other driver can take the device.
    FEOS_TRY(set_step(vm_id, bdf, AssignmentStep::kOverrideSet));
    FEOS_TRY(binder_.set_override(device, vfio));

    auto driver = binder_.driver(t->address);
    if (!driver) return fail(driver.error().context(device.prefix + "read driver"));
    if (*driver != vfio) {
      // 2b. Detach it from its host driver (an unbound device has none).
      if (!driver->empty()) {
        FEOS_TRY(set_step(vm_id, bdf, AssignmentStep::kUnbound));
        FEOS_TRY(binder_.unbind(device, *driver));
        logger()->info("device unbound vm={} bdf={} group={} driver={}", vm_id, device.bdf, group_name,
                       *driver);
      }
      // 2c. drivers_probe: the kernel attaches it to its override, vfio-pci.
      FEOS_TRY(set_step(vm_id, bdf, AssignmentStep::kBound));
      FEOS_TRY(binder_.probe(device));
    } else {
      FEOS_TRY(set_step(vm_id, bdf, AssignmentStep::kBound));
    }
    // 2d. Verify: the driver link names vfio-pci.
    FEOS_TRY(binder_.wait_for_driver(device, vfio, "bind to " + vfio));
    logger()->info("device bound vm={} bdf={} group={} step=bound driver={} original={}", vm_id,
                   device.bdf, group_name, vfio, t->original_driver.empty() ? "none" : t->original_driver);
  }
  // 2e. The group's VFIO node, which the hypervisor opens.
  return binder_.wait_for_group_node(group, target_of(*devices.back()));
}

Error HostDevices::roll_back(const std::string& vm_id, const Error& failure) {
  logger()->warn("prepare failed, rolling back vm={} error=\"{}\"", vm_id, failure.message);
  auto held = ledger_.list(vm_id);
  std::string message = failure.message;
  if (!held) {
    message += "; rollback not attempted: " + held.error().message;
  } else {
    std::vector<std::string> failures;
    if (Status restored = restore_rows(vm_id, *held, &failures); !restored) {
      message += "; rollback left devices held by vm " + vm_id + " (release retries them): " +
                 join(failures);  // restore_rows names each device and step
    }
  }
  return Error{failure.code, message};
}

Status HostDevices::release(const std::string& vm_id) {
  VmOperation operation(*this, vm_id);
  if (!operation.begun()) return fail(operation.begun().error());
  {
    std::lock_guard lock(busy_mu_);
    claims_.erase(vm_id);  // a claim never bound: its rows go below
  }
  return release_rows_of(vm_id);
}

bool HostDevices::release_after_late_write(const std::string& vm_id) {
  // The operation whose write hung may still be rolling back: wait for it to end.
  VmOperation operation(*this, vm_id);
  if (!operation.begun()) return false;
  Status released = release_rows_of(vm_id);
  if (released) {
    logger()->info("devices returned after a late sysfs write vm={}", vm_id);
  } else {
    logger()->error("devices not returned after a late sysfs write vm={} error=\"{}\"", vm_id,
                    released.error().to_string());
  }
  return true;
}

}  // namespace feos::hostdev
