#pragma once
// In-process fan-out of VM events to live subscribers (event streams). History lives in the store.
#include <functional>
#include <map>
#include <mutex>

#include "model/vm.h"

namespace feos::core {

class EventBus {
 public:
  using Listener = std::function<void(const model::VmEvent&)>;

  // `listener` runs on the publisher's thread: it must only queue the event and return.
  int subscribe(Listener listener);
  void unsubscribe(int token);
  void publish(const model::VmEvent& event);

 private:
  std::mutex mutex_;
  int next_token_ = 1;
  std::map<int, Listener> listeners_;
};

}  // namespace feos::core
