#pragma once
// Internal to src/store (spec_codec.cc): the JSON of the topology parts of a VM record, its
// GPUDirect and guest-NUMA choices (VmSpec) and where each GPU reaches its peers (AssignedGpu).
// Records stored before these existed lack the keys: their readers take the defaults.
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/strict_json.h"
#include "model/gpu.h"
#include "model/vm.h"

namespace feos::store::detail {

nlohmann::json gpu_p2p_to_json(const model::GpuP2pSpec& p2p);
Result<model::GpuP2pSpec> gpu_p2p_from_json(strict_json::ObjectReader reader);

// "default", "auto", "off" (model::guest_numa_name).
Result<model::GuestNumaMode> guest_numa_from_json(strict_json::ObjectReader& reader, std::string_view key);

nlohmann::json peer_path_to_json(const model::GpuPeerPath& path);
Result<model::GpuPeerPath> peer_path_from_json(strict_json::ObjectReader reader);

}  // namespace feos::store::detail
