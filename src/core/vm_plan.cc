// VmManager::plan_create(): a dry run of CreateVm and the StartVm after it. Every check is the
// real path's own function, called in the real order: admit_new() and check_new_locked() as
// create(), HostDevices::plan() (the planner prepare() runs before it claims), and
// Hypervisor::plan_start() (what start() computes before it launches). Nothing here writes: no
// entry is reserved, no record or event stored, no device claimed or bound, no directory made.
#include "core/vm_manager.h"

#include <chrono>

#include "common/log.h"

namespace feos::core {

Result<model::VmPlan> VmManager::plan_create(model::VmSpec spec, std::optional<model::VmId> id) const {
  const auto started = std::chrono::steady_clock::now();
  FEOS_ASSIGN_OR_RETURN(NewVm admitted, admit_new(std::move(spec), std::move(id)));
  const std::string& vm_id = admitted.id.text();
  {
    std::lock_guard lock(mutex_);
    FEOS_TRY(check_new_locked(vm_id, admitted.spec));
  }
  model::VmPlan plan;
  plan.vm_id = vm_id;
  if (images_ && model::names_registry_image(admitted.spec.image_ref))
    plan.decisions.push_back("image_ref " + admitted.spec.image_ref +
                             " is a registry image: CreateVm pulls it after answering, a dry run does not; the "
                             "command line below has no root disk");
  if (!admitted.spec.gpus.empty() || admitted.spec.gpu_count) {
    // create() runs devices_->claim(), which plans with the same function before it claims.
    FEOS_ASSIGN_OR_RETURN(plan.gpus, devices_->plan(vm_id, admitted.spec.gpus, &plan.decisions,
                                                    admitted.spec.gpu_count));
    admitted.spec.gpus.clear();
    for (const auto& gpu : plan.gpus) admitted.spec.gpus.push_back(gpu.request);
  }
  // start() hands the hypervisor the stored spec, the VM's GPUs and its runtime directory.
  auto launch = hypervisor_.plan_start(vm_id, admitted.spec, plan.gpus, runtime_dir(vm_id));
  if (!launch) return fail(launch.error().context("start vm " + vm_id));
  plan.address_space = launch->address_space;
  plan.firmware = launch->firmware;
  plan.qemu_argv = std::move(launch->argv);
  for (auto& decision : launch->decisions) plan.decisions.push_back(std::move(decision));
  // The daemon's share of a dry run (bench/dry_run_bench.sh reports it beside the end-to-end time).
  log::get("vm")->info("planned vm={} gpus={} us={} (dry run)", vm_id, plan.gpus.size(),
                       std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count());
  return plan;
}

}  // namespace feos::core
