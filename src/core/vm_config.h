#pragma once
// Request-level checks of a VM definition that need no host access: image references. (VM ids
// are model::VmId, model/vm_id.h.)
// The rest of a spec is checked by model::validate() (model/validate.h), which vmm runs.
#include <string>
#include <string_view>

#include "common/error.h"
#include "model/vm.h"

namespace feos::core {

// Turns FeOS's `image_ref` into a local disk image path: "/abs/path" or "file:///abs/path" ->
// the path; "" -> "" (kernel boot). More than model::kMaxImageRef bytes, a NUL byte, relative
// paths, ".." components or other URL schemes -> INVALID_ARGUMENT; OCI references
// ("registry/name:tag") -> UNIMPLEMENTED (VmManager pulls them when it has an ImageStore).
// Messages name "config.image_ref".
Result<std::string> resolve_image_ref(std::string_view image_ref);

// Returns the spec with `image_path` filled by resolve_image_ref(). Errors: resolve_image_ref()'s.
// Whether the spec has something to boot is model::validate()'s to say.
Result<model::VmSpec> normalize_spec(model::VmSpec spec);

}  // namespace feos::core
