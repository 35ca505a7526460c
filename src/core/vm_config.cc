#include "core/vm_config.h"

#include "model/field_path.h"
#include "model/limits.h"

namespace feos::core {

Result<std::string> resolve_image_ref(std::string_view ref) {
  const std::string field(model::field::kImageRef);
  if (ref.empty()) return std::string();
  if (ref.size() > model::kMaxImageRef)
    return fail(Code::kInvalidArgument, field + ": " + std::to_string(ref.size()) +
                                            " bytes is longer than the limit of " +
                                            std::to_string(model::kMaxImageRef));
  if (ref.find('\0') != std::string_view::npos)
    return fail(Code::kInvalidArgument, field + ": contains a NUL byte");
  std::string path;
  if (ref.rfind("file://", 0) == 0) {
    path = std::string(ref.substr(7));
  } else if (ref.front() == '/') {
    path = std::string(ref);
  } else if (ref.find("://") != std::string_view::npos) {
    return fail(Code::kInvalidArgument,
                field + ": " + quote_for_message(ref) + ": only file:// URLs and absolute paths are supported");
  } else {
    return fail(Code::kUnimplemented,
                field + ": " + quote_for_message(ref) +
                    ": pulling OCI images from a registry is not supported by feosd; give a local "
                    "disk image as an absolute path or file:// URL");
  }
  if (path.empty() || path.front() != '/')
    return fail(Code::kInvalidArgument, field + ": " + quote_for_message(ref) + ": path must be absolute");
  if (path.find("/../") != std::string::npos || path.ends_with("/.."))
    return fail(Code::kInvalidArgument, field + ": " + quote_for_message(ref) + ": '..' is not allowed");
  return path;
}


Result<model::VmSpec> normalize_spec(model::VmSpec spec) {
  FEOS_ASSIGN_OR_RETURN(spec.image_path, resolve_image_ref(spec.image_ref));
  return spec;
}

}  // namespace feos::core
