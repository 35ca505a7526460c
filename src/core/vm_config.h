#pragma once
// Request-level checks of a VM definition that need no host access: ids and image references.
// The rest of a spec is checked by model::validate() (model/validate.h), which vmm runs.
#include <string>
#include <string_view>

#include "common/error.h"
#include "model/vm.h"

namespace feos::core {

// A VM id is a UUID in canonical form (8-4-4-4-12 hex digits), as in FeOS. It becomes a directory
// name, so nothing else is accepted. INVALID_ARGUMENT otherwise.
Status validate_vm_id(std::string_view id);

// The id as feosd stores and compares it: validate_vm_id(), then lower-cased, so the upper-case
// spelling of a VM's UUID names the same VM (RFC 9562 compares UUIDs case-insensitively).
Result<std::string> canonical_vm_id(std::string_view id);

// A new random (version 4) UUID, lowercase.
std::string new_vm_id();

// Turns FeOS's `image_ref` into a local disk image path: "/abs/path" or "file:///abs/path" ->
// the path; "" -> "" (kernel boot). More than model::kMaxImageRef bytes, a NUL byte, relative
// paths, ".." components or other URL schemes -> INVALID_ARGUMENT; OCI references
// ("registry/name:tag") -> UNIMPLEMENTED. Messages name "config.image_ref".
Result<std::string> resolve_image_ref(std::string_view image_ref);

// Returns the spec with `image_path` filled by resolve_image_ref(). Errors: resolve_image_ref()'s.
// Whether the spec has something to boot is model::validate()'s to say.
Result<model::VmSpec> normalize_spec(model::VmSpec spec);

}  // namespace feos::core
