#include "cli/json_format.h"

#include <google/protobuf/util/json_util.h>

#include <nlohmann/json.hpp>

#include "cli/proto_json.h"

namespace feos::cli {

Result<std::string> to_json(const google::protobuf::Message& message, bool pretty) {
  std::string text;
  if (proto_json_supported(*message.GetDescriptor())) {
    append_proto_json(message, pretty, text);
    return text;
  }
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  auto status = google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok()) {
    return fail(Code::kInternal, "cannot render " + message.GetTypeName() +
                                     " as JSON: " + status.message().ToString());
  }
  // Protobuf's own whitespace mode indents by one space; ours is two (the layout every -o json
  // output shares), added in one pass instead of a parse and re-dump.
  auto laid_out = indent_json(text);
  if (!laid_out) {
    return fail(Code::kInternal, "protobuf produced invalid JSON for " + message.GetTypeName() +
                                     ": " + laid_out.error().message);
  }
  if (pretty) return laid_out;
  return text;
}

Result<std::string> indent_json(std::string_view compact) {
  std::string out;
  out.reserve(compact.size() + compact.size() / 2);
  std::string open;  // the brackets still open, innermost last
  auto newline = [&]() {
    out += '\n';
    out.append(2 * open.size(), ' ');
  };
  for (size_t i = 0; i < compact.size(); ++i) {
    const char c = compact[i];
    switch (c) {
      case '"': {
        // Copy the string as is, up to its unescaped closing quote.
        size_t end = i + 1;
        while (end < compact.size() && compact[end] != '"') end += compact[end] == '\\' ? 2 : 1;
        if (end >= compact.size()) {
          return fail(Code::kInternal, "string not closed at offset " + std::to_string(i));
        }
        out.append(compact.substr(i, end - i + 1));
        i = end;
        break;
      }
      case '{':
      case '[': {
        size_t next = compact.find_first_not_of(" \t\r\n", i + 1);
        const char close = c == '{' ? '}' : ']';
        if (next != std::string_view::npos && compact[next] == close) {
          out += c;
          out += close;
          i = next;
          break;
        }
        out += c;
        open += c;
        newline();
        break;
      }
      case '}':
      case ']':
        if (open.empty() || open.back() != (c == '}' ? '{' : '[')) {
          return fail(Code::kInternal,
                      std::string("unbalanced '") + c + "' at offset " + std::to_string(i));
        }
        open.pop_back();
        newline();
        out += c;
        break;
      case ',':
        out += ',';
        newline();
        break;
      case ':': out += ": "; break;
      case ' ':
      case '\t':
      case '\r':
      case '\n': break;
      default: out += c;
    }
  }
  if (!open.empty()) return fail(Code::kInternal, "unbalanced brackets at the end");
  return out;
}

std::string event_to_json(const v1::VmEvent& event) {
  if (auto json = to_json(event, /*pretty=*/false)) return *json;
  v1::VmEvent without_data = event;
  without_data.clear_data();
  // Rendering a VmEvent without an Any cannot fail: all its other fields are plain.
  auto json = nlohmann::ordered_json::parse(to_json(without_data, false).value());
  json["data"] = {{"@type", event.data().type_url()}};
  return json.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace feos::cli
