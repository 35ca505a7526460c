// The hypervisor's callbacks into the manager: a process's exit (on_exit, vm_manager.cc) and a
// start's progress, stored and published as events of the VM.
#include "common/log.h"
#include "core/vm_manager.h"

namespace feos::core {

void VmManager::connect_hypervisor() {
  hypervisor_.set_exit_callback([this](const std::string& id, const vmm::ExitInfo& info) { on_exit(id, info); });
  hypervisor_.set_progress_callback([this](const std::string& id, const std::string& component,
                                           const std::string& text) { on_progress(id, component, text); });
}

void VmManager::disconnect_hypervisor() {
  hypervisor_.set_progress_callback(nullptr);
  hypervisor_.set_exit_callback(nullptr);
}

void VmManager::on_progress(const std::string& id, const std::string& component, const std::string& text) {
  std::lock_guard lock(mutex_);
  auto it = vms_.find(id);
  if (it == vms_.end()) return;  // a dry run's or a forgotten VM's: nothing to tell
  if (auto emitted = emit_locked(it->second, component, text); !emitted)
    log::get("vm")->error("vm={} event not stored: {}", id, emitted.error().to_string());
}

}  // namespace feos::core
