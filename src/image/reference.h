#pragma once
// An OCI image reference as FeOS takes it in `image_ref`: "host[:port]/repo[/more]:tag" or
// "host[:port]/repo@sha256:<64 hex>" (a tag and a digest together: the digest decides). The
// registry host is always named (no Docker Hub default: a VM image comes from a registry the
// operator chose). The grammar is the distribution project's reference grammar, lower-case
// repository components, tags of at most 128 characters.
#include <string>
#include <string_view>

#include "common/error.h"

namespace feos::image {

struct Reference {
  std::string registry;    // "host" or "host:port", as given
  std::string repository;  // "ironcore-dev/os-images/gardenlinux"
  std::string tag;         // "" when pinned by digest only
  std::string digest;      // "sha256:<hex>" or ""

  // What the registry's manifest endpoint takes: the digest when there is one, else the tag.
  const std::string& manifest_key() const { return digest.empty() ? tag : digest; }
  // "registry/repository:tag", "registry/repository@digest" or both.
  std::string text() const;
};

// INVALID_ARGUMENT "'<ref>': <what is wrong>" for anything outside the grammar above; a reference
// without tag or digest gets the tag "latest", as every OCI client does.
Result<Reference> parse_reference(std::string_view ref);

// "sha256:" and 64 lower-case hex digits: the only digest algorithm accepted (OCI's default; a
// registry's sha512 content would be refused by its digest check).
bool is_sha256_digest(std::string_view digest);

}  // namespace feos::image
