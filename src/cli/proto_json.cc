#include "cli/proto_json.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <set>
#include <string_view>
#include <vector>

namespace feos::cli {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr char kHex[] = "0123456789abcdef";

void append_u_escape(uint32_t unit, std::string& out) {
  const char escape[6] = {'\\',
                          'u',
                          kHex[(unit >> 12) & 0xf],
                          kHex[(unit >> 8) & 0xf],
                          kHex[(unit >> 4) & 0xf],
                          kHex[unit & 0xf]};
  out.append(escape, sizeof escape);
}

// Code points above ASCII that protobuf writes as \u escapes: C1 controls and characters that
// render invisibly or reorder text (soft hyphen, zero-width and bidi marks, BOM, ...).
bool escaped_code_point(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0xad || (cp >= 0x600 && cp <= 0x603) || cp == 0x6dd ||
         cp == 0x70f || cp == 0x17b4 || cp == 0x17b5 || (cp >= 0x200b && cp <= 0x200f) ||
         (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2064) ||
         (cp >= 0x206a && cp <= 0x206f) || cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb) ||
         (cp >= 0x1d173 && cp <= 0x1d17a) || cp == 0xe0001 || (cp >= 0xe0020 && cp <= 0xe007f);
}

// Length of the valid UTF-8 sequence at the start of `text` and its code point; 0 if invalid
// (bad lead byte, missing continuation, overlong form, surrogate, beyond U+10FFFF).
size_t decode_utf8(std::string_view text, uint32_t& cp) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  size_t length = 0;
  uint32_t min = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
    cp = lead & 0x1f;
    min = 0x80;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    cp = lead & 0x0f;
    min = 0x800;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    cp = lead & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return length;
}

void append_string(std::string_view text, std::string& out) {
  out += '"';
  size_t i = 0;
  while (i < text.size()) {
    // Runs of plain ASCII are copied at once.
    size_t run = i;
    while (run < text.size()) {
      const unsigned char c = static_cast<unsigned char>(text[run]);
      if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>') break;
      ++run;
    }
    out.append(text.substr(i, run - i));
    i = run;
    if (i == text.size()) break;

    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: append_u_escape(c, out);  // other controls, '<', '>', DEL
      }
      ++i;
      continue;
    }
    uint32_t cp = 0;
    const size_t length = decode_utf8(text.substr(i), cp);
    if (length == 0) {
      ++i;  // not UTF-8: dropped, as protobuf does
      continue;
    }
    if (!escaped_code_point(cp)) {
      out.append(text.substr(i, length));
    } else if (cp < 0x10000) {
      append_u_escape(cp, out);
    } else {
      const uint32_t v = cp - 0x10000;
      append_u_escape(0xd800 + (v >> 10), out);
      append_u_escape(0xdc00 + (v & 0x3ff), out);
    }
    i += length;
  }
  out += '"';
}

void append_base64(std::string_view data, std::string& out) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out += '"';
  size_t i = 0;
  const auto byte = [&](size_t k) {
    return static_cast<uint32_t>(static_cast<unsigned char>(data[k]));
  };
  for (; i + 3 <= data.size(); i += 3) {
    const uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (data.size() - i == 1) {
    const uint32_t v = byte(i) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (data.size() - i == 2) {
    const uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  out += '"';
}

template <typename Int>
void append_number(Int value, bool quoted, std::string& out) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;  // 24 characters hold any 64-bit integer
  if (quoted) out += '"';
  out.append(buffer, end);
  if (quoted) out += '"';
}

void append_enum(const FieldDescriptor& field, int value, std::string& out) {
  if (const auto* known = field.enum_type()->FindValueByNumber(value)) {
    out += '"';
    out += known->name();  // enum names are identifiers: nothing to escape
    out += '"';
  } else {
    append_number(value, /*quoted=*/false, out);
  }
}

// Where the text goes and how it is laid out: compact, or one member or element per line with
// two spaces of indentation per level (the layout of indent_json in cli/format.h).
struct Writer {
  std::string& out;
  bool pretty;
  size_t depth = 0;

  void newline() {
    if (!pretty) return;
    out += '\n';
    out.append(2 * depth, ' ');
  }
  // Before the first member or element of a non-empty object or array.
  void open(char bracket) {
    out += bracket;
    ++depth;
    newline();
  }
  void separator() {
    out += ',';
    newline();
  }
  void close(char bracket) {
    --depth;
    newline();
    out += bracket;
  }
};

void append_message(const Message& message, Writer& writer);

// One value of a singular field (index < 0) or one element of a repeated field.
void append_value(const Message& message, const Reflection& reflection,
                  const FieldDescriptor& field, int index, Writer& writer) {
  std::string& out = writer.out;
  const bool repeated = index >= 0;
  std::string scratch;
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      append_number(repeated ? reflection.GetRepeatedInt32(message, &field, index)
                             : reflection.GetInt32(message, &field),
                    false, out);
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      append_number(repeated ? reflection.GetRepeatedUInt32(message, &field, index)
                             : reflection.GetUInt32(message, &field),
                    false, out);
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      append_number(repeated ? reflection.GetRepeatedInt64(message, &field, index)
                             : reflection.GetInt64(message, &field),
                    true, out);
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      append_number(repeated ? reflection.GetRepeatedUInt64(message, &field, index)
                             : reflection.GetUInt64(message, &field),
                    true, out);
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out += (repeated ? reflection.GetRepeatedBool(message, &field, index)
                       : reflection.GetBool(message, &field))
                 ? "true"
                 : "false";
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      append_enum(field,
                  repeated ? reflection.GetRepeatedEnumValue(message, &field, index)
                           : reflection.GetEnumValue(message, &field),
                  out);
      break;
    case FieldDescriptor::CPPTYPE_STRING: {
      const std::string& text =
          repeated ? reflection.GetRepeatedStringReference(message, &field, index, &scratch)
                   : reflection.GetStringReference(message, &field, &scratch);
      if (field.type() == FieldDescriptor::TYPE_BYTES) {
        append_base64(text, out);
      } else {
        append_string(text, out);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      append_message(repeated ? reflection.GetRepeatedMessage(message, &field, index)
                              : reflection.GetMessage(message, &field),
                     writer);
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      // Excluded by proto_json_supported.
      out += "null";
      break;
  }
}

void append_message(const Message& message, Writer& writer) {
  const Descriptor& type = *message.GetDescriptor();
  const Reflection& reflection = *message.GetReflection();
  std::string& out = writer.out;
  bool first = true;
  auto key = [&](const FieldDescriptor& field) {
    if (first) {
      writer.open('{');
      first = false;
    } else {
      writer.separator();
    }
    out += '"';
    out += field.name();  // proto field names are identifiers: nothing to escape
    out += writer.pretty ? "\": " : "\":";
  };
  // Singular scalars with explicit presence that are set, printed last (protobuf 3.21's order).
  // Rare: the vector allocates only when there is one.
  std::vector<const FieldDescriptor*> late;

  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor& field = *type.field(i);
    if (field.is_repeated()) {
      key(field);
      const int size = reflection.FieldSize(message, &field);
      if (size == 0) {
        out += "[]";
        continue;
      }
      writer.open('[');
      for (int k = 0; k < size; ++k) {
        if (k > 0) writer.separator();
        append_value(message, reflection, field, k, writer);
      }
      writer.close(']');
    } else if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (!reflection.HasField(message, &field)) continue;
      key(field);
      append_value(message, reflection, field, -1, writer);
    } else if (field.has_presence()) {
      if (reflection.HasField(message, &field)) late.push_back(&field);
    } else {
      key(field);
      append_value(message, reflection, field, -1, writer);
    }
  }
  std::sort(late.begin(), late.end(), [](const FieldDescriptor* a, const FieldDescriptor* b) {
    return a->number() < b->number();
  });
  for (const FieldDescriptor* field : late) {
    key(*field);
    append_value(message, reflection, *field, -1, writer);
  }
  if (first) {
    out += "{}";
  } else {
    writer.close('}');
  }
}

bool supported(const Descriptor& type, std::set<const Descriptor*>& seen) {
  if (!seen.insert(&type).second) return true;  // already being checked (recursive types)
  const FileDescriptor& file = *type.file();
  if (file.syntax() != FileDescriptor::SYNTAX_PROTO3) return false;
  if (std::string_view(file.name()).substr(0, 16) == "google/protobuf/") return false;
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor& field = *type.field(i);
    if (field.is_map()) return false;
    switch (field.cpp_type()) {
      case FieldDescriptor::CPPTYPE_FLOAT:
      case FieldDescriptor::CPPTYPE_DOUBLE: return false;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (!supported(*field.message_type(), seen)) return false;
        break;
      default: break;
    }
  }
  return true;
}

}  // namespace

bool proto_json_supported(const google::protobuf::Descriptor& type) {
  std::set<const Descriptor*> seen;
  return supported(type, seen);
}

void append_proto_json(const google::protobuf::Message& message, bool pretty, std::string& out) {
  // JSON is several times the wire size; untouched reserved pages cost nothing.
  out.reserve(out.size() + 8 * message.ByteSizeLong() + 4096);
  Writer writer{out, pretty};
  append_message(message, writer);
}

}  // namespace feos::cli
