#pragma once
// A VM's id: a UUID (8-4-4-4-12 hex digits), as in FeOS. It becomes a directory name, so nothing
// else is accepted. Parsed once where text enters (api/, the runtime directories and processes
// recovery finds); below that, VmManager and its callers hold a VmId, never unchecked text.
//
// Spelling: feosd stores and compares the canonical, lower-case form (RFC 9562 compares UUIDs
// case-insensitively), so "123E..." names the VM "123e...". A VmId keeps the spelling it was
// parsed from as well, because a record stored before migration 4 may keep an upper-case id
// (when two records differed only in case, one had to); VmManager finds a record by the exact
// spelling first, then by canonical().
#include <compare>
#include <string>
#include <string_view>

#include "common/error.h"

namespace feos::model {

class VmId {
 public:
  // INVALID_ARGUMENT naming the text (quoted) when it is not a UUID.
  static Result<VmId> parse(std::string_view text);
  // A new random (version 4) UUID, lower case.
  static VmId random();

  // As parsed.
  const std::string& text() const { return text_; }
  // Lower case: the form feosd stores.
  VmId canonical() const;

  friend auto operator<=>(const VmId&, const VmId&) = default;

 private:
  explicit VmId(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

}  // namespace feos::model
