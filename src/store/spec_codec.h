#pragma once
// model::VmSpec <-> JSON: the stored form of a VM's spec (column vms.spec_json).
//
// Every field is written, defaults included, under its C++ member name; nested structs are
// objects, lists are arrays, an absent ignition is null. Decoding is strict: a missing key, an
// unknown key, a wrong type or an out-of-range integer is an error naming the field, so a
// damaged record is reported instead of silently turning into defaults.
// Adding a field to a spec struct breaks the build of spec_codec.cc on purpose (structured
// bindings list every member); add it to both directions, and add a schema migration that puts
// the new key into the specs already stored (see migrations.cc).
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "common/error.h"
#include "model/vm.h"

namespace feos::store {

// Returns `spec` as a JSON object holding every field. Never fails (strings are not checked
// here; encode_spec checks them).
nlohmann::json spec_to_json(const model::VmSpec& spec);

// Decodes an object written by spec_to_json.
// Errors: INVALID_ARGUMENT naming the field path and the problem, e.g.
// "spec.disks[1].readonly: expected a boolean, got string", "spec.cpus: missing field max_vcpus",
// "spec.nets[0]: unknown field \"bridge\"".
Result<model::VmSpec> spec_from_json(const nlohmann::json& json);

// Returns spec_to_json(spec) as compact JSON text.
// Errors: INVALID_ARGUMENT naming the field whose string is not valid UTF-8 (JSON text must be).
Result<std::string> encode_spec(const model::VmSpec& spec);

// Parses JSON text and decodes it with spec_from_json.
// Errors: INVALID_ARGUMENT for text that is not JSON (with the parser's position and reason),
// otherwise as spec_from_json.
Result<model::VmSpec> decode_spec(std::string_view text);

}  // namespace feos::store
