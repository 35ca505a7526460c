#pragma once
// `vm events`: the event stream printed as it arrives, with the stop conditions --no-follow,
// --until-state and --wait.
#include "cli/command_line.h"
#include "feos/vm/vmm/api/v1/vm.grpc.pb.h"

namespace feos::cli {

// Streams inv.events_request's events to stdout, one line each (format_event_line, or a JSON line
// with -o json). Ends with kExitOk when the server ends the stream; after the history (the stream
// was quiet for --idle-ms) with --no-follow; when the VM reaches --until-state (after the
// history); at --wait without --until-state. Errors, one line on stderr and kExitServerError: the
// server's status when the stream fails, FAILED_PRECONDITION for --no-follow --until-state when
// the history ends in another state, DEADLINE_EXCEEDED when --wait passes before --until-state,
// ABORTED when the stream ends before it.
int run_events_command(v1::VMService::Stub& stub, const Invocation& inv);

}  // namespace feos::cli
