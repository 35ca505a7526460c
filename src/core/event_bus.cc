#include "core/event_bus.h"

namespace feos::core {

int EventBus::subscribe(Listener listener) {
  std::lock_guard lock(mutex_);
  int token = next_token_++;
  listeners_.emplace(token, std::move(listener));
  return token;
}

void EventBus::unsubscribe(int token) {
  std::lock_guard lock(mutex_);
  listeners_.erase(token);
}

void EventBus::publish(const model::VmEvent& event) {
  std::lock_guard lock(mutex_);
  for (auto& [token, listener] : listeners_) listener(event);
}

}  // namespace feos::core
