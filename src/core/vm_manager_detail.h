#pragma once
// What VmManager's files share (core-internal): the state reasons recover() reads back after a
// daemon restart to tell what an interrupted operation was, the state facts both need, and the
// job guard.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>

#include "core/vm_manager.h"
#include "model/vm.h"

namespace feos::core::detail {

// Prefix of state_reason that marks a shutdown the client asked for: a guest that powered off
// while feosd was down was stopped, not crashed.
inline constexpr std::string_view kShutdownRequested = "shutdown requested";
// The reason to store for a change to `state`: while the VM stays up after a shutdown request
// (paused, resumed, adopted), the request's marker stays in front (vm_shutdown.cc).
std::string keep_shutdown_marker(const model::VmRecord& record, model::VmState state, std::string reason);
// state_reason while StartVm runs, stored before the hypervisor launches: a start cut short by a
// daemon crash is told from a VM that was simply created or stopped.
inline constexpr std::string_view kStarting = "starting";

// The event of a create that pulled a registry image: "image R (sha256:...): disk N bytes, N
// bytes pulled from https://..." (vm_images.cc).
std::string describe_pull(const image::PulledImage& image);

inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A duration for messages: "20 s", "0.5 s"; with `tenths` always one decimal ("20.0 s").
inline std::string seconds_text(std::chrono::milliseconds ms, bool tenths = false) {
  char text[32];
  if (!tenths && ms.count() % 1000 == 0)
    std::snprintf(text, sizeof text, "%lld s", static_cast<long long>(ms.count() / 1000));
  else
    std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
  return text;
}

}  // namespace feos::core::detail

namespace feos::core {

// Ends the VM's job when an operation leaves its scope, whatever path it takes.
class VmManager::JobGuard {
 public:
  JobGuard(VmManager& manager, std::string id) : manager_(manager), id_(std::move(id)) {}
  ~JobGuard() {
    if (!dismissed_) manager_.end_job(id_);
  }
  JobGuard(const JobGuard&) = delete;
  JobGuard& operator=(const JobGuard&) = delete;
  // The job is ended another way (finish_exit()): the guard must not end a job begun after it.
  void dismiss() { dismissed_ = true; }

 private:
  VmManager& manager_;
  std::string id_;
  bool dismissed_ = false;
};

}  // namespace feos::core
