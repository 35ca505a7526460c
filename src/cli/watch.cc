#include "cli/watch.h"

#include <utility>

#include "cli/format.h"

namespace feos::cli {

TextMatcher::TextMatcher(std::string needle) : needle_(std::move(needle)) {}

bool TextMatcher::feed(std::string_view chunk) {
  if (found_) return true;
  std::string window = tail_;
  window.append(chunk);
  if (window.find(needle_) != std::string::npos) {
    found_ = true;
    tail_.clear();
    return true;
  }
  size_t keep = needle_.size() - 1;
  tail_ = window.size() > keep ? window.substr(window.size() - keep) : window;
  return false;
}

StateWatcher::StateWatcher(std::string vm_id, v1::VmState target)
    : vm_id_(std::move(vm_id)), target_(target) {}

bool StateWatcher::on_event(const v1::VmEvent& event) {
  if (event.vm_id() != vm_id_) return false;
  auto change = state_change_of(event);
  if (!change) return false;
  latest_ = change->new_state();
  return history_done_ && *latest_ == target_;
}

bool StateWatcher::on_idle() {
  history_done_ = true;
  return latest_ && *latest_ == target_;
}

}  // namespace feos::cli
