#pragma once
// A minimal streaming JSON writer (the guest build has no JSON library). Handles commas, string
// escaping (RFC 8259: quotes, backslash, control characters; invalid UTF-8 bytes become U+FFFD)
// and non-finite numbers (written as null). Misuse (a value where a key is due) is a programming
// error and is not checked beyond what keeps the output well-formed in correct use.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace feos::gpucheck {

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  JsonWriter& value(bool b);
  JsonWriter& value(int64_t n);
  JsonWriter& value(uint64_t n);
  JsonWriter& value(int n) { return value(static_cast<int64_t>(n)); }
  JsonWriter& value(double d);
  JsonWriter& null();
  // Writes the string, or null when empty.
  JsonWriter& string_or_null(std::string_view s);

  // The document so far, with a trailing newline once complete.
  std::string str() const { return out_ + (depth_.empty() && !out_.empty() ? "\n" : ""); }

 private:
  void before_value();
  std::string out_;
  std::vector<bool> depth_;  // per open container: whether it already has an element
  bool after_key_ = false;
};

// `s` as a JSON string literal, quotes included.
std::string json_quote(std::string_view s);

}  // namespace feos::gpucheck
