#pragma once
// model::VmSpec <-> JSON: the stored form of a VM's spec (column vms.spec_json), and
// std::vector<model::AssignedGpu> <-> JSON: what the host side resolved for its GPUs (column
// vms.gpus_json).
//
// Every field is written, defaults included, under its C++ member name; nested structs are
// objects, lists are arrays, an absent ignition is null. Decoding is strict: a missing key, an
// unknown key, a wrong type or an out-of-range integer is an error naming the field, so a
// damaged record is reported instead of silently turning into defaults.
// Adding a member to one of these structs breaks the build of spec_codec.cc on purpose (the
// encoders and decoders bind every member by name): add it to both directions. Records stored
// before the member existed lack its key, and a missing key is an error, so either
//  - the decoder reads the key as optional (ObjectReader::has) and its absence as the default that
//    means "not recorded": DiskSpec::format and VmSpec::image_format, which records written before
//    formats were recorded lack; no migration, the schema version stays; or
//  - a schema migration writes the key into every stored record (step 2 did for VmSpec::gpus; see
//    migrations.cc).
// Either way an older feosd cannot read a record that has the new key (unknown keys are errors):
// after a migration it refuses the whole database (newer schema version); without one it reports
// each such record as corrupt.
// Enums are stored by name (RomBar: "default", "on", "off"), so their numbering may change.
// PCI addresses are stored as their canonical text ("0000:17:00.0"), IOMMU groups as their number
// ("41", "" for none); both are parsed when decoded.
#include <string>
#include <string_view>
#include <vector>

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

// Returns `gpus` as a JSON array of objects holding every field of AssignedGpu (its request
// GpuSpec, functions, group_peers and fabric with their BARs, numa_node; "fabric" only when not
// empty, and absent reads as empty). Never fails.
nlohmann::json assigned_gpus_to_json(const std::vector<model::AssignedGpu>& gpus);

// Decodes an array written by assigned_gpus_to_json, as strictly as spec_from_json.
// Errors: INVALID_ARGUMENT naming the field path, e.g.
// "gpus[0].functions[1].bars[0].size: expected an unsigned 64-bit integer, got string".
Result<std::vector<model::AssignedGpu>> assigned_gpus_from_json(const nlohmann::json& json);

// Returns assigned_gpus_to_json(gpus) as compact JSON text.
// Errors: INVALID_ARGUMENT naming the field whose string is not valid UTF-8.
Result<std::string> encode_assigned_gpus(const std::vector<model::AssignedGpu>& gpus);

// Parses JSON text and decodes it with assigned_gpus_from_json.
// Errors: INVALID_ARGUMENT for text that is not JSON ("gpus: not valid JSON: ..."), otherwise as
// assigned_gpus_from_json.
Result<std::vector<model::AssignedGpu>> decode_assigned_gpus(std::string_view text);

}  // namespace feos::store
