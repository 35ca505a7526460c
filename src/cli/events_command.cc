#include "cli/events_command.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "cli/format.h"
#include "cli/json_format.h"
#include "cli/output.h"
#include "cli/watch.h"
#include "common/blocking_queue.h"

namespace feos::cli {

int run_events_command(v1::VMService::Stub& stub, const Invocation& inv) {
  using Clock = BlockingQueue<v1::VmEvent>::Clock;
  const EventsOptions& opts = inv.events;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::VmEvent>> reader =
      stub.StreamVmEvents(&context, inv.events_request);

  // A thread does the blocking reads; this one applies the idle and --wait deadlines.
  BlockingQueue<v1::VmEvent> queue;
  std::thread pump([&] {
    v1::VmEvent event;
    while (reader->Read(&event)) queue.push(event);
    queue.close();
  });

  std::optional<StateWatcher> watcher;
  if (opts.until_state) watcher.emplace(inv.vm_id, *opts.until_state);
  const Clock::time_point start = Clock::now();
  // time_point::max() when there is no --wait.
  const Clock::time_point wait_deadline =
      opts.wait_s ? start + to_duration(*opts.wait_s) : Clock::time_point::max();
  const auto idle = std::chrono::milliseconds(opts.idle_ms);
  // The history is over once the stream was quiet for `idle`; only --no-follow and
  // --until-state care.
  bool history_pending = !opts.follow || watcher.has_value();
  Clock::time_point last_event = start;
  std::optional<int> rc;  // set when this side ends the stream

  auto print_event = [&](const v1::VmEvent& event) {
    std::cout << (inv.global.output == OutputFormat::kJson ? event_to_json(event)
                                                           : format_event_line(event))
              << std::endl;
  };
  auto latest_state = [&] {
    return watcher->latest() ? state_name(*watcher->latest()) : std::string("unknown");
  };

  while (!rc) {
    Clock::time_point deadline = wait_deadline;
    if (history_pending) deadline = std::min(deadline, last_event + idle);
    auto [events, ended] = queue.take_until(deadline);
    for (const v1::VmEvent& event : events) {
      print_event(event);
      if (watcher && watcher->on_event(event)) {
        rc = kExitOk;
        break;
      }
    }
    if (rc || ended) break;
    if (!events.empty()) {
      last_event = Clock::now();
      continue;
    }

    // A deadline passed.
    const Clock::time_point now = Clock::now();
    if (history_pending && now >= last_event + idle) {
      history_pending = false;
      if (watcher && watcher->on_idle()) {
        rc = kExitOk;
      } else if (!opts.follow && watcher) {
        rc = print_error("FAILED_PRECONDITION",
                         "vm " + inv.vm_id + " is " + latest_state() + ", not " +
                             state_name(*opts.until_state),
                         kExitServerError);
      } else if (!opts.follow) {
        rc = kExitOk;
      }
    }
    if (!rc && now >= wait_deadline) {
      if (watcher) {
        rc = print_error("DEADLINE_EXCEEDED",
                         "timed out waiting for vm " + inv.vm_id + " to reach state " +
                             state_name(*opts.until_state) + " after " +
                             format_seconds(*opts.wait_s) + " (latest state: " + latest_state() +
                             ")",
                         kExitServerError);
      } else {
        rc = kExitOk;
      }
    }
  }

  if (rc) {
    context.TryCancel();
    pump.join();
    reader->Finish();  // CANCELLED by us: not an error
    return *rc;
  }
  // The server ended the stream.
  pump.join();
  grpc::Status status = reader->Finish();
  if (!status.ok()) return report(status);
  if (watcher) {
    return print_error("ABORTED",
                       "event stream ended before vm " + inv.vm_id + " reached state " +
                           state_name(*opts.until_state),
                       kExitServerError);
  }
  return kExitOk;
}

}  // namespace feos::cli
