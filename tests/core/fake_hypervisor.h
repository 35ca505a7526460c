#pragma once
// A scriptable Hypervisor for VmManager tests: records calls, hands out pids, fails on demand,
// and lets a test end a "process" (clean or crashed) or block start() to race other calls.
// Process tests (tests/process) exercise the real QEMU adapter.
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

#include "vmm/hypervisor.h"

namespace feos::core {

class FakeHypervisor final : public vmm::Hypervisor {
 public:
  Status validate(const model::VmSpec& spec) const override {
    if (spec.boot.kernel == "/missing") return fail(Code::kNotFound, "kernel /missing not found");
    return ok();
  }

  Result<int> start(const std::string& vm_id, const model::VmSpec& spec,
                    const std::vector<model::AssignedGpu>& gpus, const std::string&) override {
    for (const auto& text : start_progress)
      if (progress_) progress_(vm_id, "memory", text);
    std::unique_lock lock(mutex_);
    ++starts;
    started_gpus[vm_id] = gpus;
    started_specs[vm_id] = spec;
    cv_.wait(lock, [&] { return !hold_start_; });
    if (fail_start) return fail(Code::kInternal, "qemu: could not open kernel file");
    if (start_error) return fail(*start_error);
    int pid = next_pid_++;
    running_[vm_id] = pid;
    return pid;
  }

  // A plan that tells the arguments apart: the VM, its runtime dir and one "vfio=<address>" per
  // passed function; plan_error fails it as start_error fails start().
  Result<model::LaunchPlan> plan_start(const std::string& vm_id, const model::VmSpec& spec,
                                       const std::vector<model::AssignedGpu>& gpus,
                                       const std::string& runtime_dir) const override {
    ++plans;
    if (plan_error) return fail(*plan_error);
    model::LaunchPlan plan;
    plan.argv = {"fake-hypervisor", vm_id, runtime_dir};
    for (const auto& gpu : gpus)
      for (const auto& f : gpu.functions) plan.argv.push_back("vfio=" + f.address.to_string());
    plan.address_space.ram_bytes = spec.memory.size_mib << 20;
    plan.decisions.push_back("fake hypervisor");
    return plan;
  }

  // A kvm host of 46 bits where every card fits (the real arithmetic is tested in tests/vmm).
  model::GuestLimits guest_limits() const override {
    model::GuestLimits limits;
    limits.host_phys_bits = 46;
    limits.accelerator = "kvm";
    limits.guest_phys_bits_max = 46;
    limits.guest_ram_bytes = uint64_t{64} << 30;
    limits.uefi_firmware = "/fake/OVMF_CODE.fd";
    return limits;
  }
  model::GpuFit fit_gpus(const std::vector<model::AssignedGpu>& cards) const override {
    model::GpuFit fit;
    fit.bios.fit = fit.uefi.fit = static_cast<int>(cards.size());
    fit.bios.phys_bits_needed = cards.empty() ? 0 : 42;
    fit.uefi.phys_bits_needed = cards.empty() ? 0 : 43;
    return fit;
  }

  Result<vmm::RunState> adopt(const std::string& vm_id, int pid, const std::string&) override {
    std::lock_guard lock(mutex_);
    if (unreachable.count(pid)) return fail(Code::kDeadlineExceeded, "process " + std::to_string(pid) + ": QMP timed out");
    if (!alive_after_restart.count(pid)) return fail(Code::kNotFound, "process " + std::to_string(pid) + " is gone");
    running_[vm_id] = pid;
    ++adoptions;
    return adopted_state;
  }
  // What a test put in `found`, as the real adapter reports live processes of earlier daemons.
  std::vector<vmm::FoundProcess> find_processes(const std::string&) override {
    std::lock_guard lock(mutex_);
    return found;
  }
  Status kill_found(const std::string& vm_id, int pid) override {
    std::lock_guard lock(mutex_);
    killed.push_back({vm_id, pid});
    alive_after_restart.erase(pid);
    return ok();
  }

  Status pause(const std::string& vm_id) override {
    {
      std::unique_lock lock(mutex_);
      ++pauses;
      cv_.wait(lock, [&] { return !hold_start_; });
    }
    return need(vm_id);
  }
  Status resume(const std::string& vm_id) override { return need(vm_id); }
  Status request_shutdown(const std::string& vm_id) override {
    FEOS_TRY(need(vm_id));
    std::lock_guard lock(mutex_);
    ++shutdown_requests;
    return ok();
  }
  Status stop(const std::string& vm_id) override {
    std::lock_guard lock(mutex_);
    running_.erase(vm_id);
    plugged_.erase(vm_id);
    ++stops;
    return ok();
  }
  Result<vmm::PingInfo> ping(const std::string& vm_id) override {
    FEOS_TRY(need(vm_id));
    std::lock_guard lock(mutex_);
    return vmm::PingInfo{"7.2.0", running_[vm_id], {"accel=tcg"}};
  }
  Result<std::shared_ptr<vmm::Console>> console(const std::string& vm_id) override {
    FEOS_TRY(need(vm_id));
    return fail(Code::kUnavailable, "no console in the fake");
  }
  void set_exit_callback(ExitCallback callback) override { on_exit_ = std::move(callback); }
  void set_progress_callback(ProgressCallback callback) override { progress_ = std::move(callback); }
  // What start() reports as progress (component "memory") before it starts the VM.
  std::vector<std::string> start_progress;

  // Hot-plug: `hotplug_ports` ports per running VM; detach fails as a guest that does not
  // release the device unless `guest_releases`.
  Result<model::DiskSpec> attach_disk(const std::string& vm_id, const model::DiskSpec& disk) override {
    FEOS_TRY(plug(vm_id, disk.device_id));
    model::DiskSpec plugged = disk;
    if (plugged.format == model::DiskFormat::kUnknown) plugged.format = model::DiskFormat::kRaw;
    return plugged;
  }
  // A tap named in `missing_taps` is "created" by the attach and "removed" by remove_created_tap().
  Result<bool> attach_nic(const std::string& vm_id, const model::NetSpec& nic) override {
    FEOS_TRY(plug(vm_id, nic.device_id));
    std::lock_guard lock(mutex_);
    plugged_nics.push_back(nic);
    return missing_taps.erase(nic.tap_name) > 0;
  }
  Status remove_created_tap(const std::string& tap_name) override {
    std::lock_guard lock(mutex_);
    removed_taps.push_back(tap_name);
    missing_taps.insert(tap_name);
    return ok();
  }
  Status detach_disk(const std::string& vm_id, const std::string& device_id) override { return unplug(vm_id, device_id); }
  Status detach_nic(const std::string& vm_id, const std::string& device_id) override { return unplug(vm_id, device_id); }
  std::set<std::string> plugged_in(const std::string& vm_id) {
    std::lock_guard lock(mutex_);
    return plugged_[vm_id];
  }

  // Ends the VM's process as the adapter would report it.
  void exit(const std::string& vm_id, bool clean, const std::string& reason) {
    {
      std::lock_guard lock(mutex_);
      running_.erase(vm_id);
      plugged_.erase(vm_id);
    }
    if (on_exit_) on_exit_(vm_id, vmm::ExitInfo{clean, reason});
  }
  // While held, start() and pause() block.
  void hold(bool hold) {
    {
      std::lock_guard lock(mutex_);
      hold_start_ = hold;
    }
    cv_.notify_all();
  }
  bool running(const std::string& vm_id) {
    std::lock_guard lock(mutex_);
    return running_.count(vm_id) > 0;
  }

  bool fail_start = false;
  std::optional<Error> start_error;  // start() fails with it
  std::optional<Error> plan_error;   // plan_start() fails with it
  mutable std::atomic<int> plans = 0;
  std::map<std::string, std::vector<model::AssignedGpu>> started_gpus;  // what start() was given
  std::map<std::string, model::VmSpec> started_specs;
  std::set<int> alive_after_restart;
  std::set<int> unreachable;  // alive, but adopt() cannot attach (DEADLINE_EXCEEDED)
  vmm::RunState adopted_state = vmm::RunState::kRunning;
  std::vector<vmm::FoundProcess> found;   // find_processes() reports these
  std::vector<vmm::FoundProcess> killed;  // what kill_found() was asked to kill
  size_t hotplug_ports = 2;
  bool guest_releases = true;
  std::vector<model::NetSpec> plugged_nics;  // what attach_nic() was given
  std::set<std::string> missing_taps;        // taps attach_nic() creates
  std::vector<std::string> removed_taps;     // what remove_created_tap() was given
  std::atomic<int> starts = 0, pauses = 0, stops = 0, shutdown_requests = 0, adoptions = 0;

 private:
  Status need(const std::string& vm_id) {
    std::lock_guard lock(mutex_);
    if (!running_.count(vm_id)) return fail(Code::kNotFound, "vm " + vm_id + " has no process");
    return ok();
  }

  Status plug(const std::string& vm_id, const std::string& device_id) {
    FEOS_TRY(need(vm_id));
    std::lock_guard lock(mutex_);
    auto& plugged = plugged_[vm_id];
    if (plugged.count(device_id)) return fail(Code::kAlreadyExists, "device " + device_id + " is plugged already");
    if (plugged.size() >= hotplug_ports) return fail(Code::kResourceExhausted, "all hot-plug ports are in use");
    plugged.insert(device_id);
    return ok();
  }
  Status unplug(const std::string& vm_id, const std::string& device_id) {
    FEOS_TRY(need(vm_id));
    std::lock_guard lock(mutex_);
    if (!guest_releases) return fail(Code::kDeadlineExceeded, "the guest did not release device " + device_id);
    plugged_[vm_id].erase(device_id);
    return ok();
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool hold_start_ = false;
  int next_pid_ = 1000;
  std::map<std::string, int> running_;
  std::map<std::string, std::set<std::string>> plugged_;  // hot-plugged device ids, by VM
  ExitCallback on_exit_;
  ProgressCallback progress_;
};

}  // namespace feos::core
