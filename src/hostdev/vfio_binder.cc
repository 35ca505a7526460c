#include "hostdev/vfio_binder.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "hostdev/timed_write.h"

namespace feos::hostdev {

VfioBinder::VfioBinder(sys::Filesystem& fs, sys::HostPaths paths, const Options& options,
                       InDoubtWrites::ReleaseVm release_vm)
    : fs_(fs),
      paths_(std::move(paths)),
      sysfs_(fs, paths_),
      step_timeout_(options.step_timeout),
      vfio_node_timeout_(options.vfio_node_timeout),
      vfio_driver_(options.vfio_driver),
      in_doubt_(std::move(release_vm)) {}

Result<std::string> VfioBinder::driver(const pci::Address& address) const {
  return sysfs_.driver(address);
}

Result<std::string> VfioBinder::driver_override(const pci::Address& address) const {
  return sysfs_.driver_override(address);
}

Status VfioBinder::write(const BinderTarget& t, const std::string& path, std::string_view value,
                         const std::string& step) {
  return timed_write(fs_, path, value, t.prefix + step, step_timeout_,
                     in_doubt_.hooks(t.vm_id, t.bdf));
}

Status VfioBinder::set_override(const BinderTarget& t, const std::string& driver) {
  return write(t, paths_.pci_device_attr(t.bdf, "driver_override"), driver,
               "set driver_override to " + driver);
}

Status VfioBinder::restore_override(const BinderTarget& t, const std::string& original) {
  return write(t, paths_.pci_device_attr(t.bdf, "driver_override"),
               original.empty() ? "\n" : original,
               original.empty() ? std::string("clear driver_override")
                                : "restore driver_override " + original);
}

Status VfioBinder::unbind(const BinderTarget& t, const std::string& driver) {
  return write(t, paths_.pci_driver_file(driver, "unbind"), t.bdf, "unbind from " + driver);
}

Status VfioBinder::probe(const BinderTarget& t) {
  return write(t, paths_.pci_drivers_probe(), t.bdf, "drivers_probe");
}

Status VfioBinder::bind(const BinderTarget& t, const std::string& driver) {
  if (!fs_.exists(paths_.pci_driver(driver))) {
    return fail(Code::kNotFound, "driver " + driver + " is not loaded");
  }
  return write(t, paths_.pci_driver_file(driver, "bind"), t.bdf, "bind to " + driver);
}

Status VfioBinder::wait_for_driver(const BinderTarget& t, const std::string& driver,
                                   const std::string& step) {
  const std::string what = t.prefix + step;
  const auto deadline = std::chrono::steady_clock::now() + step_timeout_;
  std::string now;
  for (auto pause = std::chrono::microseconds(200);; pause = std::min(pause * 2, decltype(pause)(20000))) {
    auto current = sysfs_.driver(t.address);
    if (!current) return fail(current.error().context(what));
    now = *current;
    if (now == driver) return ok();
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(pause);
  }
  return fail(Code::kInternal, what + ": " + t.bdf + " is bound to " +
                                   (now.empty() ? std::string("no driver") : now) + ", not " +
                                   (driver.empty() ? std::string("no driver") : driver) +
                                   " (after waiting " + std::to_string(step_timeout_.count()) +
                                   " ms)");
}

Status VfioBinder::wait_for_group_node(const pci::IommuGroup& group, const BinderTarget& last) {
  const std::string node = paths_.vfio_group(group.to_string());
  const auto deadline = std::chrono::steady_clock::now() + vfio_node_timeout_;
  for (auto pause = std::chrono::microseconds(200);; pause = std::min(pause * 2, decltype(pause)(20000))) {
    if (fs_.exists(node)) return ok();
    if (std::chrono::steady_clock::now() >= deadline) {
      return fail(Code::kDeadlineExceeded,
                  "vm " + last.vm_id + ": IOMMU group " + group.to_string() + ": " + node +
                      " did not appear within " + std::to_string(vfio_node_timeout_.count()) +
                      " ms after binding " + last.bdf + " to " + vfio_driver_);
    }
    std::this_thread::sleep_for(pause);
  }
}

}  // namespace feos::hostdev
