#include "common/strict_json.h"

#include <algorithm>

namespace feos::strict_json {

std::string describe(const json& value, Naming naming) {
  if (naming == Naming::kType) return value.type_name();
  switch (value.type()) {
    case json::value_t::number_unsigned: return "integer " + value.dump();
    case json::value_t::number_integer:
      return (value.get<int64_t>() < 0 ? "negative integer " : "integer ") + value.dump();
    case json::value_t::number_float: return "non-integer number " + value.dump();
    default: return value.type_name();
  }
}

Result<json> parse(std::string_view text, std::string_view what) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    // e.what() carries "parse error at line L, column C: ...". A number too large for a double
    // ("1e999") is an out_of_range, not a parse_error: catch every json exception.
    return fail(Code::kInvalidArgument, std::string(what) + ": not valid JSON: " + e.what());
  }
}

bool is_valid_utf8(std::string_view text) {
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};  // no overlongs
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    size_t length = 0;
    uint32_t code_point = 0;
    if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code_point = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code_point = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code_point = lead & 0x07;
    } else {
      return false;
    }
    if (text.size() - i < length) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    if (code_point < kMinForLength[length] || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

std::optional<std::string> find_invalid_utf8(const json& value, const std::string& path) {
  if (value.is_string()) {
    if (!is_valid_utf8(value.get_ref<const std::string&>())) return path;
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      if (auto bad = find_invalid_utf8(value[i], item_path(path, i))) return bad;
    }
  } else if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      if (auto bad = find_invalid_utf8(item, key_path(path, key))) return bad;
    }
  }
  return std::nullopt;
}

std::string key_path(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return std::string(path) + "." + std::string(key);
}

std::string item_path(std::string_view path, size_t index) {
  return std::string(path) + "[" + std::to_string(index) + "]";
}

std::string at_path(std::string_view path, std::string_view text) {
  if (path.empty()) return std::string(text);
  return std::string(path) + ": " + std::string(text);
}

Result<ObjectReader> ObjectReader::open(const json& value, std::string path, Naming naming) {
  if (!value.is_object()) {
    return fail(Code::kInvalidArgument,
                at_path(path, "expected an object, got " + describe(value, naming)));
  }
  return ObjectReader(value, std::move(path), naming);
}

Result<const json*> ObjectReader::field(std::string_view key) {
  auto it = value_->find(key);
  if (it == value_->end()) {
    return fail(Code::kInvalidArgument, at_path(path_, "missing field " + std::string(key)));
  }
  read_.push_back(key);
  return &*it;
}

Result<std::string> ObjectReader::string(std::string_view key) {
  FEOS_ASSIGN_OR_RETURN(const json* value, field(key));
  if (!value->is_string()) return type_error(key, "a string", *value);
  return value->get<std::string>();
}

Result<std::optional<std::string>> ObjectReader::optional_string(std::string_view key) {
  FEOS_ASSIGN_OR_RETURN(const json* value, field(key));
  if (value->is_null()) return std::optional<std::string>();
  if (!value->is_string()) return type_error(key, "a string or null", *value);
  return std::optional<std::string>(value->get<std::string>());
}

Result<bool> ObjectReader::boolean(std::string_view key) {
  FEOS_ASSIGN_OR_RETURN(const json* value, field(key));
  if (!value->is_boolean()) return type_error(key, "a boolean", *value);
  return value->get<bool>();
}

Result<const json*> ObjectReader::array(std::string_view key) {
  FEOS_ASSIGN_OR_RETURN(const json* value, field(key));
  if (!value->is_array()) return type_error(key, "an array", *value);
  return value;
}

Result<ObjectReader> ObjectReader::object(std::string_view key) {
  FEOS_ASSIGN_OR_RETURN(const json* value, field(key));
  return open(*value, path_of(key), naming_);
}

Result<uint64_t> ObjectReader::unsigned_up_to(std::string_view key, uint64_t max,
                                              const char* expected) {
  FEOS_ASSIGN_OR_RETURN(const json* value, field(key));
  // Parsed text holds non-negative integers as unsigned; a json built in code may hold them as
  // signed.
  const bool non_negative_integer =
      value->is_number_unsigned() || (value->is_number_integer() && value->get<int64_t>() >= 0);
  if (!non_negative_integer || value->get<uint64_t>() > max) {
    return type_error(key, expected, *value);
  }
  return value->get<uint64_t>();
}

Result<int64_t> ObjectReader::signed_within(std::string_view key, int64_t min, int64_t max,
                                            const char* expected) {
  FEOS_ASSIGN_OR_RETURN(const json* value, field(key));
  if (value->is_number_unsigned()) {
    if (value->get<uint64_t>() > static_cast<uint64_t>(max)) {
      return type_error(key, expected, *value);
    }
    return static_cast<int64_t>(value->get<uint64_t>());
  }
  if (!value->is_number_integer()) return type_error(key, expected, *value);
  const int64_t number = value->get<int64_t>();
  if (number < min || number > max) return type_error(key, expected, *value);
  return number;
}

Status ObjectReader::finish() const {
  for (const auto& item : value_->items()) {
    if (std::find(read_.begin(), read_.end(), item.key()) == read_.end()) {
      return fail(Code::kInvalidArgument,
                  at_path(path_, "unknown field \"" + item.key() + "\""));
    }
  }
  return ok();
}

Status ObjectReader::only_keys(std::initializer_list<std::string_view> known) const {
  for (const auto& item : value_->items()) {
    if (std::find(known.begin(), known.end(), item.key()) != known.end()) continue;
    std::string list;
    for (std::string_view name : known) {
      if (!list.empty()) list += ", ";
      list += name;
    }
    return fail(Code::kInvalidArgument,
                at_path(path_, "unknown field " + quote_for_message(item.key()) +
                                   " (known: " + list + ")"));
  }
  return ok();
}

tl::unexpected<Error> ObjectReader::type_error(std::string_view key, std::string_view expected,
                                               const json& got) const {
  return fail(Code::kInvalidArgument,
              at_path(path_of(key),
                      "expected " + std::string(expected) + ", got " + describe(got, naming_)));
}

}  // namespace feos::strict_json
