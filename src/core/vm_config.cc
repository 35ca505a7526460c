#include "core/vm_config.h"

#include <cctype>
#include <cstdio>
#include <random>

#include "model/field_path.h"
#include "model/limits.h"

namespace feos::core {

Status validate_vm_id(std::string_view id) {
  static constexpr int kGroups[] = {8, 4, 4, 4, 12};
  size_t pos = 0;
  bool valid = id.size() == 36;
  for (int g = 0; valid && g < 5; ++g) {
    for (int i = 0; i < kGroups[g]; ++i, ++pos)
      if (!std::isxdigit(static_cast<unsigned char>(id[pos]))) valid = false;
    if (g < 4 && valid && id[pos++] != '-') valid = false;
  }
  if (valid) return ok();
  return fail(Code::kInvalidArgument,
              "invalid vm id " + quote_for_message(id) + ": expected a UUID like 123e4567-e89b-12d3-a456-426614174000");
}

Result<std::string> canonical_vm_id(std::string_view id) {
  FEOS_TRY(validate_vm_id(id));
  std::string out(id);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string new_vm_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

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
