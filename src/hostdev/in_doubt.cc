#include "hostdev/in_doubt.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>

namespace feos::hostdev {

struct InDoubtWrites::State {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, int> blocked_writes;  // bdf -> writes still in the kernel
  std::deque<std::string> vms_to_release;      // VMs whose blocked write returned
  bool closed = false;                         // the tracker is gone: nobody reports
};

InDoubtWrites::InDoubtWrites(ReleaseVm release_vm)
    : release_vm_(std::move(release_vm)),
      state_(std::make_shared<State>()),
      thread_([this] { run(); }) {}

InDoubtWrites::~InDoubtWrites() {
  {
    std::lock_guard lock(state_->mu);
    state_->closed = true;
    state_->cv.notify_all();
  }
  thread_.join();
}

LateWriteHooks InDoubtWrites::hooks(const std::string& vm_id, const std::string& bdf) const {
  LateWriteHooks hooks;
  hooks.abandoned = [state = state_, bdf] {
    std::lock_guard lock(state->mu);
    ++state->blocked_writes[bdf];
  };
  hooks.returned = [state = state_, vm_id, bdf](const Status&) {
    std::lock_guard lock(state->mu);
    auto it = state->blocked_writes.find(bdf);
    if (it != state->blocked_writes.end() && --it->second <= 0) state->blocked_writes.erase(it);
    if (state->closed) return;
    state->vms_to_release.push_back(vm_id);
    state->cv.notify_all();
  };
  return hooks;
}

bool InDoubtWrites::blocked(const std::string& bdf) const {
  std::lock_guard lock(state_->mu);
  return state_->blocked_writes.count(bdf) > 0;
}

void InDoubtWrites::run() {
  for (;;) {
    std::string vm_id;
    {
      std::unique_lock lock(state_->mu);
      state_->cv.wait(lock, [&] { return state_->closed || !state_->vms_to_release.empty(); });
      if (state_->closed) return;
      vm_id = std::move(state_->vms_to_release.front());
      state_->vms_to_release.pop_front();
    }
    while (!release_vm_(vm_id)) {
      std::unique_lock lock(state_->mu);
      if (state_->cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return state_->closed; }))
        return;
    }
  }
}

}  // namespace feos::hostdev
