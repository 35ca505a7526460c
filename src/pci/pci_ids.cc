#include "pci/pci_ids.h"

#include "common/parse.h"

namespace feos::pci {
namespace {

// Exactly `digits` (at most 8) hex digits at the start of `s`.
std::optional<uint32_t> hex_prefix(std::string_view s, size_t digits) {
  if (s.size() < digits) return std::nullopt;
  auto value = parse_hex(s.substr(0, digits), digits);
  if (!value) return std::nullopt;
  return static_cast<uint32_t>(*value);
}

// The name after an id and its separating spaces; nullopt when there is no name.
std::optional<std::string> name_after(std::string_view line, size_t id_end) {
  if (id_end >= line.size() || line[id_end] != ' ') return std::nullopt;
  size_t start = line.find_first_not_of(' ', id_end);
  if (start == std::string_view::npos) return std::nullopt;
  size_t end = line.size();
  while (end > start && (line[end - 1] == ' ' || line[end - 1] == '\r')) --end;
  return std::string(line.substr(start, end - start));
}

// Class keys carry a level marker in bit 24 and above so that "03" and "03 00" differ.
constexpr uint32_t class_key(int level, uint32_t base, uint32_t sub, uint32_t prog) {
  return (static_cast<uint32_t>(level) << 24) | (base << 16) | (sub << 8) | prog;
}

constexpr uint64_t subsystem_key(uint16_t v, uint16_t d, uint16_t sv, uint16_t sd) {
  return (uint64_t{v} << 48) | (uint64_t{d} << 32) | (uint64_t{sv} << 16) | sd;
}

}  // namespace

PciIds PciIds::parse(std::string_view text) {
  PciIds ids;
  enum class Section { kVendors, kClasses, kOther } section = Section::kVendors;
  std::optional<uint32_t> vendor, device, base_class, sub_class;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (line.empty() || line[0] == '#') continue;

    if (line[0] != '\t') {
      vendor = device = base_class = sub_class = std::nullopt;
      if (line.size() > 2 && line[0] == 'C' && line[1] == ' ') {
        section = Section::kClasses;
        auto id = hex_prefix(line.substr(2), 2);
        auto name = name_after(line, 4);
        if (id && name) {
          base_class = *id;
          ids.classes_.emplace(class_key(1, *id, 0, 0), std::move(*name));
        }
        continue;
      }
      auto id = hex_prefix(line, 4);
      auto name = id ? name_after(line, 4) : std::nullopt;
      if (!id || !name) {
        section = Section::kOther;  // another top-level list (device types, languages, ...)
        continue;
      }
      section = Section::kVendors;
      vendor = *id;
      ids.vendors_.emplace(*id, std::move(*name));
      continue;
    }

    const bool second_level = line.size() > 1 && line[1] == '\t';
    std::string_view body = line.substr(second_level ? 2 : 1);
    if (section == Section::kVendors && vendor) {
      if (!second_level) {
        auto id = hex_prefix(body, 4);
        auto name = id ? name_after(body, 4) : std::nullopt;
        device = id;
        if (id && name) ids.devices_.emplace((*vendor << 16) | *id, std::move(*name));
      } else if (device) {
        auto sv = hex_prefix(body, 4);
        auto sd = body.size() > 5 && body[4] == ' ' ? hex_prefix(body.substr(5), 4) : std::nullopt;
        auto name = sv && sd ? name_after(body, 9) : std::nullopt;
        if (name)
          ids.subsystems_.emplace(subsystem_key(static_cast<uint16_t>(*vendor), static_cast<uint16_t>(*device),
                                                static_cast<uint16_t>(*sv), static_cast<uint16_t>(*sd)),
                                  std::move(*name));
      }
    } else if (section == Section::kClasses && base_class) {
      auto id = hex_prefix(body, 2);
      auto name = id ? name_after(body, 2) : std::nullopt;
      if (!second_level) {
        sub_class = id;
        if (name) ids.classes_.emplace(class_key(2, *base_class, *id, 0), std::move(*name));
      } else if (sub_class && name) {
        ids.classes_.emplace(class_key(3, *base_class, *sub_class, *id), std::move(*name));
      }
    }
  }
  return ids;
}

Result<PciIds> PciIds::load(const sys::Filesystem& fs, const std::string& path) {
  auto text = fs.read_file(path);
  if (!text) return fail(text.error().context("PCI ID database"));
  return parse(*text);
}

Result<PciIds> PciIds::load_first(const sys::Filesystem& fs, const std::vector<std::string>& paths) {
  std::string tried;
  for (const auto& path : paths) {
    if (fs.exists(path)) return load(fs, path);
    tried += (tried.empty() ? "" : ", ") + path;
  }
  return fail(Code::kNotFound, "PCI ID database not found (tried " + tried + ")");
}

std::optional<std::string_view> PciIds::vendor(uint16_t vendor) const {
  auto it = vendors_.find(vendor);
  if (it == vendors_.end()) return std::nullopt;
  return std::string_view(it->second);
}

std::optional<std::string_view> PciIds::device(uint16_t vendor, uint16_t device) const {
  auto it = devices_.find((uint32_t{vendor} << 16) | device);
  if (it == devices_.end()) return std::nullopt;
  return std::string_view(it->second);
}

std::optional<std::string_view> PciIds::subsystem(uint16_t vendor, uint16_t device, uint16_t subsystem_vendor,
                                                  uint16_t subsystem_device) const {
  auto it = subsystems_.find(subsystem_key(vendor, device, subsystem_vendor, subsystem_device));
  if (it == subsystems_.end()) return std::nullopt;
  return std::string_view(it->second);
}

std::optional<std::string_view> PciIds::class_name(uint32_t class_code) const {
  uint32_t base = (class_code >> 16) & 0xff, sub = (class_code >> 8) & 0xff, prog = class_code & 0xff;
  for (uint32_t key : {class_key(3, base, sub, prog), class_key(2, base, sub, 0), class_key(1, base, 0, 0)}) {
    auto it = classes_.find(key);
    if (it != classes_.end()) return std::string_view(it->second);
  }
  return std::nullopt;
}

}  // namespace feos::pci
