#pragma once
// The kernel's driver protocol for one PCI function, as vfio-pci passthrough uses it (libvirt's
// virpci under virhostdev): read its driver and driver_override, write driver_override, unbind it
// from a driver, drivers_probe, bind it to a driver, wait for its driver link, and wait for an
// IOMMU group's VFIO node. It keeps no ledger: HostDevices records each step before calling here.
//
// Every write has Options::step_timeout (timed_write.h). A write that does not return fails
// DEADLINE_EXCEEDED and leaves the device in doubt (in_doubt.h) until it returns; the binder then
// reports the VM it was written for through the `release_vm` callback.
//
// Thread-safe: calls about different devices run in parallel.
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "hostdev/in_doubt.h"
#include "hostdev/options.h"
#include "pci/address.h"
#include "pci/iommu_group.h"
#include "pci/sysfs.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"

namespace feos::hostdev {

// The device a write is about, and for whom.
struct BinderTarget {
  pci::Address address;
  std::string bdf;     // address.to_string()
  std::string vm_id;   // reported through `release_vm` when a write about it returns late
  std::string prefix;  // starts every message about it: "vm X: 0000:18:00.0: " or "0000:18:00.0: "
};

class VfioBinder {
 public:
  // `fs` must outlive this object and every write it left blocked. Uses options' step_timeout,
  // vfio_node_timeout and vfio_driver.
  VfioBinder(sys::Filesystem& fs, sys::HostPaths paths, const Options& options,
             InDoubtWrites::ReleaseVm release_vm);

  const std::string& vfio_driver() const { return vfio_driver_; }

  // The bound driver's name, "" when unbound. NOT_FOUND "PCI device <bdf> is gone (no <dir>)"
  // when the device is gone; other errors as the filesystem reports them.
  Result<std::string> driver(const pci::Address& address) const;
  // driver_override, "" for none. Errors as the filesystem reports them.
  Result<std::string> driver_override(const pci::Address& address) const;
  // The devices bound to vfio-pci now, sorted. NOT_FOUND when vfio-pci is not registered.
  Result<std::vector<pci::Address>> bound_to_vfio() const { return sysfs_.bound_to(vfio_driver_); }
  // True while a write about `bdf` is still blocked in the kernel.
  bool in_doubt(const std::string& bdf) const { return in_doubt_.blocked(bdf); }

  // The writes. Each fails with the filesystem's error (FAILED_PRECONDITION for EBUSY, NOT_FOUND
  // for ENODEV, INTERNAL otherwise) under "<prefix><step>", the step as named below, or with
  // DEADLINE_EXCEEDED "<prefix><step>: write of '<value>' to <path> did not return within <N> ms
  // (...)" when it does not return in time (the device is then in doubt).
  //
  // driver_override := `driver`. Step "set driver_override to <driver>".
  Status set_override(const BinderTarget& t, const std::string& driver);
  // driver_override := `original` ("" clears it, written as "\n": an empty write(2) may not reach
  // the attribute). Step "restore driver_override <original>" or "clear driver_override".
  Status restore_override(const BinderTarget& t, const std::string& original);
  // <driver>/unbind := bdf. Step "unbind from <driver>".
  Status unbind(const BinderTarget& t, const std::string& driver);
  // drivers_probe := bdf: the kernel binds an unbound device to its override, else its own
  // driver. Step "drivers_probe".
  Status probe(const BinderTarget& t);
  // <driver>/bind := bdf. Step "bind to <driver>". NOT_FOUND "driver <driver> is not loaded"
  // (nothing written) when the driver is not registered.
  Status bind(const BinderTarget& t, const std::string& driver);

  // Polls the driver link until it names `driver` ("" = unbound), for up to step_timeout
  // (probing is synchronous for vfio-pci and most drivers; the poll covers asynchronous probing).
  // Errors: the read's error under "<prefix><step>"; INTERNAL "<prefix><step>: <bdf> is bound to
  // <driver or 'no driver'>, not <driver> (after waiting <N> ms)".
  Status wait_for_driver(const BinderTarget& t, const std::string& driver, const std::string& step);
  // Waits up to vfio_node_timeout for <dev>/vfio/<group>, which appears when the group's first
  // device binds to vfio-pci (udev may lag); `last` is the group's last device bound.
  // Errors: DEADLINE_EXCEEDED "vm <id>: IOMMU group <group>: <node> did not appear within <N> ms
  // after binding <last> to vfio-pci".
  Status wait_for_group_node(const pci::IommuGroup& group, const BinderTarget& last);

 private:
  Status write(const BinderTarget& t, const std::string& path, std::string_view value,
               const std::string& step);

  sys::Filesystem& fs_;
  const sys::HostPaths paths_;
  const pci::PciSysfs sysfs_;
  const std::chrono::milliseconds step_timeout_;
  const std::chrono::milliseconds vfio_node_timeout_;
  const std::string vfio_driver_;
  InDoubtWrites in_doubt_;  // last member: its thread may call back until it is destroyed
};

}  // namespace feos::hostdev
