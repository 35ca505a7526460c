#pragma once
// feosctl's JSON output (-o json): always the protobuf JSON mapping of the response message (proto
// field names such as "vm_id", fields at their default value included, enums by name such as
// "VM_STATE_RUNNING", int64 fields such as "pid" and "created_unix_ms" as JSON strings, Any
// expanded with its "@type"), printed with two-space indentation; streamed events are one compact
// object per line (JSON Lines).
#include <google/protobuf/message.h>

#include <string>
#include <string_view>

#include "common/error.h"
#include "feos/vm/vmm/api/v1/vm.pb.h"

namespace feos::cli {

namespace v1 = ::feos::vm::vmm::api::v1;

// The message as JSON (see the file comment): indented when `pretty`, one line otherwise.
// INTERNAL if protobuf cannot render it (an Any whose type this build does not know).
// Messages proto_json_supported() accepts are printed by cli/proto_json.h (the same text as
// protobuf's, a hundred times faster); others (events, with their Any) by protobuf. The
// indentation is added by one linear pass over the compact text (indent_json), so large
// responses (`gpu list --all` on a big host) cost no parse and re-dump.
Result<std::string> to_json(const google::protobuf::Message& message, bool pretty);

// Compact JSON (no whitespace between tokens, as protobuf prints it) re-laid out with two-space
// indentation: one member or element per line, "key": value, empty objects and arrays as {} and
// []. Strings are copied unchanged. Whitespace between tokens in the input is dropped.
// INTERNAL if brackets do not balance or a string is not closed.
Result<std::string> indent_json(std::string_view compact);

// One event as a compact JSON line. An event whose Any this build cannot decode (a newer daemon's
// event type) still prints, with "data" reduced to {"@type": <type url>}.
std::string event_to_json(const v1::VmEvent& event);

}  // namespace feos::cli
