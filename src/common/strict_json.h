#pragma once
// Strict reading of JSON whose keys and types are fixed: the VM records feosd stores
// (store/spec_codec.h) and the operator's device policy file (hostdev/policy.h). A missing key, an
// unknown key, a wrong type or an out-of-range integer is an error that names the value by its
// path, e.g. "spec.disks[1].readonly: expected a boolean, got string", so a damaged record or a
// typo in a file is reported where it is instead of silently turning into defaults.
// Every error here is INVALID_ARGUMENT.
//
// Paths: "spec" names the root, "spec.cpus" a key below it, "spec.disks[1]" an array element. A
// reader opened with the empty path names its keys bare ("allow_ids") and writes its errors
// without a prefix; the caller adds one with Error::context (the policy file's name).
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace feos::strict_json {

using nlohmann::json;

// How "expected X, got Y" names the value it got.
enum class Naming {
  // Numbers with their value ("integer 5", "negative integer -1", "non-integer number 2.5"),
  // other values by type ("string", "null"): strings are not shown (long, or holding anything).
  kValue,
  // JSON's type name only ("number", "string", "array"), as the policy file's messages have it.
  kType,
};

// Names `value` for "got ..." in messages.
std::string describe(const json& value, Naming naming = Naming::kValue);

// Parses JSON text; `what` names it in the error.
// Errors: INVALID_ARGUMENT "<what>: not valid JSON: <the parser's reason and position>", also for
// a number too large for a double ("1e999") and for text that is not valid UTF-8.
Result<json> parse(std::string_view text, std::string_view what);

// True when `text` is valid UTF-8: no overlong forms, no UTF-16 surrogates, nothing above
// U+10FFFF.
bool is_valid_utf8(std::string_view text);

// The path of the first string in `value` (depth first; `path` names `value` itself) that is not
// valid UTF-8, or nullopt when every string is. JSON text must be UTF-8: check before dump().
std::optional<std::string> find_invalid_utf8(const json& value, const std::string& path);

// "<path>.<key>", or "<key>" under the empty path.
std::string key_path(std::string_view path, std::string_view key);
// "<path>[<index>]".
std::string item_path(std::string_view path, size_t index);
// "<path>: <text>", or "<text>" for the empty path: an error message about the value at `path`.
std::string at_path(std::string_view path, std::string_view text);

// Reads one JSON object strictly: each key through one typed getter (the getter marks it read),
// then finish() (or, up front, only_keys()) rejects the keys nobody asked for. It points into the
// JSON value, and the keys passed to its getters (string literals): both must outlive it.
class ObjectReader {
 public:
  // Errors: "<path>: expected an object, got <value>".
  static Result<ObjectReader> open(const json& value, std::string path,
                                   Naming naming = Naming::kValue);

  const std::string& path() const { return path_; }
  std::string path_of(std::string_view key) const { return key_path(path_, key); }
  // Whether `key` is present: for optional keys, and keys added after records were first stored.
  bool has(std::string_view key) const { return value_->contains(key); }

  // The getters below fail with "<path>: missing field <key>" for an absent key and with
  // "<path>.<key>: expected <type>, got <value>" for a value of the wrong type.

  // The raw value (any type).
  Result<const json*> field(std::string_view key);
  Result<std::string> string(std::string_view key);
  // A string, or nullopt for null.
  Result<std::optional<std::string>> optional_string(std::string_view key);
  Result<bool> boolean(std::string_view key);
  Result<const json*> array(std::string_view key);

  // An unsigned integer that fits T (uint32_t or uint64_t); negatives, "2.0" and out-of-range
  // values are wrong types ("expected an unsigned 32-bit integer, got integer 4294967296").
  template <typename T>
  Result<T> unsigned_integer(std::string_view key) {
    static_assert(std::is_unsigned_v<T> && (sizeof(T) == 4 || sizeof(T) == 8));
    FEOS_ASSIGN_OR_RETURN(const uint64_t value,
                          unsigned_up_to(key, std::numeric_limits<T>::max(),
                                         sizeof(T) == 4 ? "an unsigned 32-bit integer"
                                                        : "an unsigned 64-bit integer"));
    return static_cast<T>(value);
  }

  // A signed integer that fits T (int32_t or int64_t); "2.0" and out-of-range values are wrong
  // types ("expected a 32-bit integer, got negative integer -2147483649").
  template <typename T>
  Result<T> signed_integer(std::string_view key) {
    static_assert(std::is_signed_v<T> && std::is_integral_v<T> &&
                  (sizeof(T) == 4 || sizeof(T) == 8));
    FEOS_ASSIGN_OR_RETURN(const int64_t value,
                          signed_within(key, std::numeric_limits<T>::min(),
                                        std::numeric_limits<T>::max(),
                                        sizeof(T) == 4 ? "a 32-bit integer" : "a 64-bit integer"));
    return static_cast<T>(value);
  }

  // An array of strings, each converted by `convert` (std::string -> Result<T>), in order.
  // Errors: "<path.key>: expected an array of strings, got <value>", "<path.key>[i]: expected a
  // string, got <value>", or "<path.key>[i]: <the conversion's message>" (code INVALID_ARGUMENT
  // whatever the conversion's was), for the first bad element.
  template <typename T, typename Convert>
  Result<std::vector<T>> strings(std::string_view key, Convert convert);

  // A reader of the object at `key` (path "<path>.<key>").
  Result<ObjectReader> object(std::string_view key);
  // The object at `key`, decoded by `decode` (ObjectReader -> Result<T>).
  template <typename T, typename Decode>
  Result<T> object(std::string_view key, Decode decode) {
    FEOS_ASSIGN_OR_RETURN(ObjectReader reader, object(key));
    return decode(std::move(reader));
  }
  // The array of objects at `key`, each decoded by `decode` (see objects_of).
  template <typename T, typename Decode>
  Result<std::vector<T>> objects(std::string_view key, Decode decode);

  // Fails on the first key no getter read: "<path>: unknown field \"<key>\"". For JSON that code
  // wrote (stored records): run it after the getters.
  Status finish() const;

  // Fails on the first key that is not in `known`: "<path>: unknown field '<key>' (known: a, b)",
  // the key quoted with quote_for_message. For files people write: run it before the getters, so
  // a misspelt key is reported before any value, with the spellings that would have worked.
  Status only_keys(std::initializer_list<std::string_view> known) const;

 private:
  ObjectReader(const json& value, std::string path, Naming naming)
      : value_(&value), path_(std::move(path)), naming_(naming) {}

  Result<uint64_t> unsigned_up_to(std::string_view key, uint64_t max, const char* expected);
  Result<int64_t> signed_within(std::string_view key, int64_t min, int64_t max,
                                const char* expected);
  tl::unexpected<Error> type_error(std::string_view key, std::string_view expected,
                                   const json& got) const;

  const json* value_;
  std::string path_;
  Naming naming_;
  std::vector<std::string_view> read_;  // keys the getters read
};

// The JSON array `value` (named `path`) of objects, each decoded by `decode` (ObjectReader ->
// Result<T>) under the path "<path>[i]", in order.
// Errors: "<path>: expected an array, got <value>", "<path>[i]: expected an object, got <value>",
// or the first error of `decode`.
template <typename T, typename Decode>
Result<std::vector<T>> objects_of(const json& value, const std::string& path, Decode decode,
                                  Naming naming = Naming::kValue) {
  if (!value.is_array()) {
    return fail(Code::kInvalidArgument,
                at_path(path, "expected an array, got " + describe(value, naming)));
  }
  std::vector<T> items;
  items.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    FEOS_ASSIGN_OR_RETURN(ObjectReader element,
                          ObjectReader::open(value[i], item_path(path, i), naming));
    FEOS_ASSIGN_OR_RETURN(T item, decode(std::move(element)));
    items.push_back(std::move(item));
  }
  return items;
}

template <typename T, typename Decode>
Result<std::vector<T>> ObjectReader::objects(std::string_view key, Decode decode) {
  FEOS_ASSIGN_OR_RETURN(const json* value, field(key));
  return objects_of<T>(*value, path_of(key), std::move(decode), naming_);
}

template <typename T, typename Convert>
Result<std::vector<T>> ObjectReader::strings(std::string_view key, Convert convert) {
  FEOS_ASSIGN_OR_RETURN(const json* value, field(key));
  if (!value->is_array()) return type_error(key, "an array of strings", *value);
  std::vector<T> items;
  items.reserve(value->size());
  for (size_t i = 0; i < value->size(); ++i) {
    const json& item = (*value)[i];
    const std::string where = item_path(path_of(key), i);
    if (!item.is_string()) {
      return fail(Code::kInvalidArgument,
                  at_path(where, "expected a string, got " + describe(item, naming_)));
    }
    auto converted = convert(item.get_ref<const std::string&>());
    if (!converted) {
      return fail(Code::kInvalidArgument, at_path(where, converted.error().message));
    }
    items.push_back(std::move(*converted));
  }
  return items;
}

}  // namespace feos::strict_json
