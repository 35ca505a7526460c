#pragma once
// Devices with a sysfs write that outlived its deadline and is still blocked in the kernel
// (timed_write.h). Such a write may still take effect (a late unbind detaches the device after a
// rollback looked at it), so the device is "in doubt" until the write returns: whoever returns
// devices to the host must leave it alone meanwhile. When the write returns, the tracker reports
// the VM it was made for, from its own thread, so that VM's devices can be returned again (which
// puts the device back where it was).
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "hostdev/timed_write.h"

namespace feos::hostdev {

class InDoubtWrites {
 public:
  // Called on the tracker's thread with the VM of a write that returned late ("VM X may be
  // released now"). Returns false when the VM cannot be released yet (an operation on it is still
  // running, e.g. the rollback whose write hung); it is then offered again 20 ms later, until it
  // returns true or the tracker is destroyed. VMs are offered one at a time, in the order their
  // writes returned.
  using ReleaseVm = std::function<bool(const std::string& vm_id)>;

  explicit InDoubtWrites(ReleaseVm release_vm);
  // Stops the thread, waiting for a `release_vm` call in progress. Writes that return later are
  // not reported.
  ~InDoubtWrites();
  InDoubtWrites(const InDoubtWrites&) = delete;
  InDoubtWrites& operator=(const InDoubtWrites&) = delete;

  // The hooks for timed_write() of a write about device `bdf` made for `vm_id`: the device is in
  // doubt from the moment the write is abandoned until it returns; then `vm_id` is reported.
  LateWriteHooks hooks(const std::string& vm_id, const std::string& bdf) const;
  // True while a write about `bdf` is still blocked in the kernel.
  bool blocked(const std::string& bdf) const;

 private:
  struct State;  // in_doubt.cc
  void run();

  const ReleaseVm release_vm_;
  // Shared with the writing threads, which may outlive this object: they hold it, never `this`.
  std::shared_ptr<State> state_;
  std::thread thread_;  // runs run(); last member: starts after the others exist
};

}  // namespace feos::hostdev
