// OCI image references come from API callers (CreateVmRequest config.image_ref) and become the
// registry's host and the path of its URLs (registry_client.cc). Checks: nothing crashes; every
// refusal is INVALID_ARGUMENT with a message; an accepted reference has a registry, a repository
// and a tag or a digest of the documented shapes, uses only the characters of the grammar (none
// that could change a URL: no '?', '#', '%', whitespace, '\', NUL, "..") and parses back from
// text() to the same reference; is_sha256_digest() agrees with the digest's shape.
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "image/reference.h"

using feos::Code;
using feos::fuzz::as_text;
using feos::fuzz::check_error;
using feos::image::is_sha256_digest;
using feos::image::parse_reference;
using feos::image::Reference;

namespace {

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool alnum(char c) { return lower_alnum(c) || (c >= 'A' && c <= 'Z'); }

void check_charset(const std::string& s, const char* extra, const char* what) {
  for (char c : s) {
    bool fine = alnum(c);
    for (const char* e = extra; *e && !fine; ++e) fine = c == *e;
    FUZZ_CHECK(fine, "%s '%s' holds byte 0x%02x", what, s.c_str(), static_cast<unsigned char>(c));
  }
}

void check_reference(std::string_view text) {
  auto parsed = parse_reference(text);
  if (!parsed) {
    check_error(parsed.error(), Code::kInvalidArgument, "parse_reference");
    return;
  }
  const Reference& ref = *parsed;
  FUZZ_CHECK(!ref.registry.empty() && ref.registry.size() <= 253 + 6, "registry '%s'", ref.registry.c_str());
  check_charset(ref.registry, ".-:", "registry");
  FUZZ_CHECK(ref.registry.find("..") == std::string::npos, "registry '%s' has ..", ref.registry.c_str());
  FUZZ_CHECK(!ref.repository.empty() && ref.repository.size() <= 255, "repository length %zu",
             ref.repository.size());
  for (char c : ref.repository)
    FUZZ_CHECK(lower_alnum(c) || c == '.' || c == '_' || c == '-' || c == '/', "repository '%s' holds 0x%02x",
               ref.repository.c_str(), static_cast<unsigned char>(c));
  FUZZ_CHECK(lower_alnum(ref.repository.front()) && lower_alnum(ref.repository.back()), "repository '%s' ends",
             ref.repository.c_str());
  FUZZ_CHECK(ref.repository.find("..") == std::string::npos && ref.repository.find("//") == std::string::npos,
             "repository '%s' has an empty or dot-dot component", ref.repository.c_str());
  FUZZ_CHECK(!ref.tag.empty() || !ref.digest.empty(), "neither tag nor digest");
  if (!ref.tag.empty()) {
    FUZZ_CHECK(ref.tag.size() <= 128, "tag of %zu characters", ref.tag.size());
    check_charset(ref.tag, "_.-", "tag");
    FUZZ_CHECK(ref.tag.front() != '.' && ref.tag.front() != '-', "tag '%s' starts badly", ref.tag.c_str());
  }
  FUZZ_CHECK(ref.digest.empty() || is_sha256_digest(ref.digest), "digest '%s'", ref.digest.c_str());
  FUZZ_CHECK(ref.manifest_key() == (ref.digest.empty() ? ref.tag : ref.digest), "manifest_key");
  // The input itself was one of the grammar's spellings: the parts are its pieces, in order.
  const std::string again_text = ref.text();
  FUZZ_CHECK(again_text == text || again_text == std::string(text) + ":latest",
             "accepted '%.*s' but its text is '%s'", static_cast<int>(text.size()), text.data(), again_text.c_str());
  auto again = parse_reference(again_text);
  FUZZ_CHECK(again, "text '%s' does not parse: %s", again_text.c_str(), again.error().message.c_str());
  FUZZ_CHECK(again->registry == ref.registry && again->repository == ref.repository && again->tag == ref.tag &&
                 again->digest == ref.digest,
             "'%s' parses back differently", again_text.c_str());
}

void check_digest(std::string_view text) {
  bool shaped = text.size() == 71 && text.substr(0, 7) == "sha256:";
  for (size_t i = 7; shaped && i < text.size(); ++i)
    shaped = (text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f');
  FUZZ_CHECK(is_sha256_digest(text) == shaped, "is_sha256_digest disagrees on '%.*s'",
             static_cast<int>(text.size()), text.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = as_text(data, size);
  check_reference(text);
  check_digest(text);
  return 0;
}
