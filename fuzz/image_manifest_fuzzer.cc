// Manifests and image indexes come from OCI registries (or the image cache, which holds what a
// registry sent): image::read_manifest() decides from them which blob becomes a VM's disk. The
// input's first line is the response's Content-Type (empty: none, as for a cached manifest), the
// rest its body; each input is read for amd64 and arm64. Checks: nothing crashes or throws; every
// refusal is FAILED_PRECONDITION with a message; an accepted manifest names a sha256 digest, an
// index step an entry of this architecture, a manifest step a rootfs layer of a known type.
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "image/layout.h"
#include "image/reference.h"

using feos::Code;
using feos::fuzz::as_text;
using feos::fuzz::check_error;

namespace {

void check(const std::string& media_type, const std::string& body, const std::string& architecture) {
  auto step = feos::image::read_manifest(media_type, body, architecture);
  if (!step) {
    check_error(step.error(), Code::kFailedPrecondition, "read_manifest");
    FUZZ_CHECK(step.error().message.size() < 4096, "message of %zu bytes", step.error().message.size());
    return;
  }
  FUZZ_CHECK(feos::image::is_sha256_digest(step->next.digest), "next digest '%s'", step->next.digest.c_str());
  FUZZ_CHECK(body.find(step->next.digest) != std::string::npos || body.find('\\') != std::string::npos,
             "digest '%s' is not in the body", step->next.digest.c_str());
  if (!step->is_index)
    FUZZ_CHECK(step->next.media_type == "application/vnd.ironcore.image.rootfs" ||
                   step->next.media_type == "application/vnd.ironcore.image.rootfs.v1alpha1.rootfs",
               "disk layer of type '%s'", step->next.media_type.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = as_text(data, size);
  const size_t newline = text.find('\n');
  const std::string media_type(newline == std::string_view::npos ? std::string_view() : text.substr(0, newline));
  const std::string body(newline == std::string_view::npos ? text : text.substr(newline + 1));
  check(media_type, body, "amd64");
  check(media_type, body, "arm64");
  return 0;
}
