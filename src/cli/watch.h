#pragma once
// Pure decision logic of the streaming commands, kept apart from gRPC and threads so it can be
// tested: when `vm console --until TEXT` is satisfied, and when `vm events --until-state STATE` is.
#include <optional>
#include <string>
#include <string_view>

#include "feos/vm/vmm/api/v1/vm.pb.h"

namespace feos::cli {

namespace v1 = ::feos::vm::vmm::api::v1;

// The byte that detaches an interactive console: Ctrl-] (as in telnet and virsh console).
inline constexpr char kDetachKey = 0x1d;

// Finds a fixed text in a byte stream that arrives in chunks; a match may straddle chunks.
class TextMatcher {
 public:
  // Precondition: `needle` is not empty.
  explicit TextMatcher(std::string needle);

  // Feeds the next chunk of output. Returns true once the needle has appeared anywhere in the
  // bytes fed so far (and keeps returning true).
  bool feed(std::string_view chunk);

 private:
  std::string needle_;
  std::string tail_;  // last needle_.size()-1 bytes seen, to catch a match across chunks
  bool found_ = false;
};

// Decides `vm events ID --until-state STATE`. The server first replays history, then streams live
// events, without marking where history ends; an old event in the history must not count. So the
// VM's latest state is judged only once the history is over (the stream went idle once), and on
// every event after that.
class StateWatcher {
 public:
  StateWatcher(std::string vm_id, v1::VmState target);

  // Records an event (of any VM; others are ignored). Returns true if the VM now is in the
  // target state and the history is over.
  bool on_event(const v1::VmEvent& event);

  // The stream was idle for the idle period: the history is over. Returns true if the VM's
  // latest known state is the target.
  bool on_idle();

  bool history_done() const { return history_done_; }
  // The VM's latest state seen so far, if any event of it arrived.
  std::optional<v1::VmState> latest() const { return latest_; }

 private:
  std::string vm_id_;
  v1::VmState target_;
  std::optional<v1::VmState> latest_;
  bool history_done_ = false;
};

}  // namespace feos::cli
