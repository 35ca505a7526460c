#pragma once
// qemu's "head,key=value,..." option syntax (QemuOpts / keyval), as the argv builder writes it
// and qemu_cmdline reads it back.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace feos::vmm::qemu {

// qemu's option syntax doubles a comma inside a value.
inline std::string escape_option_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    out += c;
    if (c == ',') out += ',';
  }
  return out;
}

// One "-flag head,key=value,..." option. Values are escaped when rendered; `head` is the part
// before the first comma (a driver or backend type), or empty.
class QemuOpts {
 public:
  QemuOpts() = default;
  explicit QemuOpts(std::string head) : head_(std::move(head)) {}
  QemuOpts& set(std::string key, std::string value) {
    props_.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  bool empty() const { return head_.empty() && props_.empty(); }
  std::string render() const {
    std::string out = head_;
    for (const auto& [key, value] : props_) {
      if (!out.empty()) out += ',';
      out += key + "=" + escape_option_value(value);
    }
    return out;
  }

 private:
  std::string head_;
  std::vector<std::pair<std::string, std::string>> props_;
};

// The value of `key` in an option list "head,key=value,..." as render() wrote it, or nullopt.
// A doubled comma is not unescaped: the values read back (VM ids, PCI addresses) never hold one.
inline std::optional<std::string> option_value(std::string_view options, std::string_view key) {
  size_t begin = 0;
  while (begin <= options.size()) {
    size_t end = options.find(',', begin);
    if (end == std::string_view::npos) end = options.size();
    std::string_view item = options.substr(begin, end - begin);
    if (item.size() > key.size() && item.substr(0, key.size()) == key && item[key.size()] == '=')
      return std::string(item.substr(key.size() + 1));
    begin = end + 1;
  }
  return std::nullopt;
}

}  // namespace feos::vmm::qemu
