#pragma once
// Pure rendering of API responses for humans (tables, key: value blocks, event lines) and for
// scripts (JSON), plus the CLI's one error-line format. No gRPC: only the generated messages.
//
// JSON output (-o json) is always the protobuf JSON mapping of the response message (proto field
// names such as "vm_id", fields at their default value included, enums by name such as
// "VM_STATE_RUNNING", int64 fields such as "pid" and "created_unix_ms" as JSON strings, Any
// expanded with its "@type"), printed with two-space indentation; streamed events are one compact
// object per line (JSON Lines).
#include <google/protobuf/message.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "feos/vm/vmm/api/v1/vm.pb.h"

namespace feos::cli {

namespace v1 = ::feos::vm::vmm::api::v1;

// "running" for VM_STATE_RUNNING, "unspecified" for 0, "state-<n>" for values this build lacks.
std::string state_name(v1::VmState state);

// Age of a timestamp for tables: "45s", "12m", "5h", "3d" (whole units, rounded down); "-" when
// `created_unix_ms` is 0 (unknown); "0s" when it lies in the future.
std::string format_age(int64_t created_unix_ms, int64_t now_unix_ms);

// `text` cut to at most `width` characters, ending in "..." when cut. Precondition: width >= 3.
std::string truncate(std::string_view text, size_t width);

// The `vm list` table: header ID STATE VCPUS MEMORY PID REASON AGE, one row per VM in the
// response's order, columns left-aligned and separated by three spaces, no trailing spaces.
// MEMORY is "<n>MiB", PID and REASON are "-" when unset, REASON is cut to 40 characters.
std::string format_vm_table(const v1::ListVmsResponse& list, int64_t now_unix_ms);

// The `vm get` block: one "key: value" line per fact (id, state, reason, pid, created, vcpus,
// memory, image, then kernel/initramfs/cmdline, one line per disk and nic, ignition size when
// set), keys padded so values line up.
std::string format_vm_details(const v1::VmInfo& vm, int64_t now_unix_ms);

// The `vm ping` block: version, build_version, pid, features.
std::string format_ping(const v1::PingVmResponse& ping);

// The state change an event carries, if its `data` packs a VmStateChangedEvent.
std::optional<v1::VmStateChangedEvent> state_change_of(const v1::VmEvent& event);

// One `vm events` line: "<event id> <vm id> <state> <reason>" (reason omitted when empty), or
// "<event id> <vm id> <component> <type url>" for events that carry something else. Empty ids
// print as "-" so the columns stay countable.
std::string format_event_line(const v1::VmEvent& event);

// The message as JSON (see the file comment): indented when `pretty`, one line otherwise.
// INTERNAL if protobuf cannot render it (an Any whose type this build does not know).
Result<std::string> to_json(const google::protobuf::Message& message, bool pretty);

// One event as a compact JSON line. An event whose Any this build cannot decode (a newer daemon's
// event type) still prints, with "data" reduced to {"@type": <type url>}.
std::string event_to_json(const v1::VmEvent& event);

// gRPC status code name ("NOT_FOUND") for codes 0..16, "CODE_<n>" otherwise.
std::string grpc_code_name(int code);

// The CLI's error line: "feosctl: error: <CODE>: <message>" (no newline). Newlines inside the
// message become spaces so that every error is exactly one line.
std::string error_line(std::string_view code_name, std::string_view message);

}  // namespace feos::cli
