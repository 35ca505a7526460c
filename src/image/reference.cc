#include "image/reference.h"

#include <cctype>
#include <charconv>

namespace feos::image {
namespace {

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// A path component: [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
bool valid_component(std::string_view part) {
  if (part.empty() || !is_lower_alnum(part.front()) || !is_lower_alnum(part.back())) return false;
  for (size_t i = 0; i < part.size(); ++i) {
    char c = part[i];
    if (is_lower_alnum(c) || c == '-') continue;
    if (c == '.' || c == '_') {
      bool double_underscore = c == '_' && i + 1 < part.size() && part[i + 1] == '_';
      size_t next = i + (double_underscore ? 2 : 1);
      if (next >= part.size() || !is_lower_alnum(part[next])) return false;
      i = next - 1;
      continue;
    }
    return false;
  }
  return true;
}

// host: DNS labels of letters, digits and '-' joined by '.', then an optional :port (1..65535).
bool valid_registry(std::string_view registry) {
  std::string_view host = registry;
  if (size_t colon = registry.rfind(':'); colon != std::string_view::npos) {
    host = registry.substr(0, colon);
    std::string_view port = registry.substr(colon + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535)
      return false;
  }
  if (host.empty() || host.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      if (label == 0 || host[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    char c = host[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    if (label == 0 && c == '-') return false;
    ++label;
  }
  return true;
}

// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
bool valid_tag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128 || tag.front() == '.' || tag.front() == '-') return false;
  for (char c : tag)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

}  // namespace

std::string Reference::text() const {
  std::string out = registry + "/" + repository;
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

bool is_sha256_digest(std::string_view digest) {
  if (digest.size() != 71 || !digest.starts_with("sha256:")) return false;
  for (char c : digest.substr(7))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

Result<Reference> parse_reference(std::string_view ref) {
  auto bad = [&](const std::string& why) {
    return fail(Code::kInvalidArgument, quote_for_message(ref) + ": " + why);
  };
  Reference out;
  std::string_view rest = ref;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    out.digest = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
    if (!is_sha256_digest(out.digest)) return bad("the digest must be sha256: and 64 lower-case hex digits");
  }
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos)
    return bad("not an OCI reference: name the registry, as in registry.example.com/repo:tag");
  out.registry = std::string(rest.substr(0, slash));
  if (!valid_registry(out.registry)) return bad("invalid registry host " + quote_for_message(out.registry));
  std::string_view path = rest.substr(slash + 1);
  // A ':' after the last '/' starts the tag (a ':' before it belongs to the host's port).
  if (size_t colon = path.rfind(':'); colon != std::string_view::npos && path.find('/', colon) == std::string_view::npos) {
    out.tag = std::string(path.substr(colon + 1));
    path = path.substr(0, colon);
    if (!valid_tag(out.tag)) return bad("invalid tag " + quote_for_message(out.tag));
  }
  if (path.empty() || path.size() > 255) return bad("the repository name must have 1 to 255 characters");
  for (size_t start = 0; start <= path.size();) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (!valid_component(path.substr(start, end - start)))
      return bad("invalid repository name " + quote_for_message(path) +
                 " (lower-case letters, digits and . _ __ - between them, components joined by /)");
    start = end + 1;
  }
  out.repository = std::string(path);
  if (out.tag.empty() && out.digest.empty()) out.tag = "latest";
  return out;
}

}  // namespace feos::image
