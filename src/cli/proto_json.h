#pragma once
// A fast printer of protobuf messages as proto3 JSON, for large responses (`gpu list --all` on a
// host with thousands of PCI functions). Protobuf's own MessageToJsonString (3.21) serialises the
// message, re-parses it through a type resolver and buffers defaults in a tree: ~30 ms for 1,000
// GPUs on the development machine, against ~1.2 ms for this printer (indented output included)
// and ~0.3 ms for the `gpu list` table. This walks the message once by reflection and writes
// the same text. Whole command, re-measured for the architecture step on the bench_inventory
// host (1,000 devices, 2 cores, median of 50 paired runs): `feosctl gpu list --all -o json`
// takes 43 ms CPU, 69 ms wall and 18.3 MiB with this printer; 86 ms, 111 ms and 28.5 MiB with
// protobuf's (on busy cores 71 / 237 ms against 136 / 354 ms).
//
// Same text means: the options feosctl uses (proto field names, fields at their default value
// printed), and protobuf 3.21's layout and escaping, which tests check byte for byte against
// MessageToJsonString:
//   - fields in declaration order, except that singular scalar fields with explicit presence
//     (proto3 `optional`, oneof members) come last, in field-number order, and only when set;
//     message fields are printed only when set; repeated fields always ("[]" when empty);
//   - 64-bit integers as quoted decimals, enums by name (by number when this build does not know
//     the value), bytes as padded base64;
//   - strings escaped like protobuf: ", \ and control characters, plus < > DEL, C1 controls and
//     the invisible format characters (U+00AD, U+200B..U+200F, U+2028..U+202E, ...) as \uXXXX.
// One deliberate difference: each byte that is not part of valid UTF-8 is dropped, so the output
// is always valid JSON (protobuf drops some such bytes and copies others). Strings that arrive
// over gRPC are valid UTF-8 anyway: proto3 parsing checks them.
// Messages that use what this printer leaves to protobuf (float and double fields, maps, the
// well-known google.protobuf.* types such as Any) are not supported; callers fall back.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <string>

namespace feos::cli {

// Whether messages of type `type` (and every message type reachable from it) can be printed by
// append_proto_json.
bool proto_json_supported(const google::protobuf::Descriptor& type);

// Appends `message` as JSON to `out`: compact (no whitespace), or when `pretty` one member or
// element per line, indented by two spaces per level, "key": value, empty objects and arrays as
// {} and [] (exactly indent_json() of the compact text, see cli/json_format.h).
// Precondition: proto_json_supported(*message.GetDescriptor()).
void append_proto_json(const google::protobuf::Message& message, bool pretty, std::string& out);

}  // namespace feos::cli
