#include "vmm/qemu/firmware.h"

#include <fnmatch.h>

#include <algorithm>
#include <map>

#include "common/strict_json.h"

namespace feos::vmm::qemu {
namespace {

using strict_json::json;

bool has_string(const json& list, std::string_view value) {
  if (!list.is_array()) return false;
  return std::any_of(list.begin(), list.end(),
                     [&](const json& item) { return item.is_string() && item.get<std::string>() == value; });
}

bool is_raw(const json& file) {
  return !file.contains("format") || (file["format"].is_string() && file["format"] == "raw");
}

bool targets_q35(const json& targets) {
  if (!targets.is_array()) return false;
  for (const auto& target : targets) {
    if (!target.is_object() || target.value("architecture", "") != "x86_64") continue;
    const json& machines = target.contains("machines") ? target["machines"] : json();
    if (!machines.is_array()) continue;
    const std::string machine(kQ35MachineType);
    for (const auto& glob : machines)
      if (glob.is_string() && ::fnmatch(glob.get<std::string>().c_str(), machine.c_str(), 0) == 0)
        return true;
  }
  return false;
}

// The files of a flash-mapped descriptor, or "" when it is not of that shape.
std::pair<std::string, std::string> flash_files(const json& d) {
  const json& mapping = d.contains("mapping") ? d["mapping"] : json();
  if (!mapping.is_object() || mapping.value("device", "") != "flash") return {};
  const json& code = mapping.contains("executable") ? mapping["executable"] : json();
  const json& vars = mapping.contains("nvram-template") ? mapping["nvram-template"] : json();
  if (!code.is_object() || !vars.is_object() || !is_raw(code) || !is_raw(vars)) return {};
  if (!code.contains("filename") || !code["filename"].is_string()) return {};
  if (!vars.contains("filename") || !vars["filename"].is_string()) return {};
  return {code["filename"].get<std::string>(), vars["filename"].get<std::string>()};
}

uint16_t le16(std::string_view b, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[at]) | static_cast<uint8_t>(b[at + 1]) << 8);
}
uint64_t le64(std::string_view b, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(b[at + i]);
  return v;
}

}  // namespace

Result<UefiFirmware> find_uefi_firmware(const sys::Filesystem& fs, const std::vector<std::string>& dirs,
                                        bool secure_boot) {
  // name -> path: the first directory that has a name wins.
  std::map<std::string, std::string> descriptors;
  for (const auto& dir : dirs) {
    auto names = fs.list_dir(dir);
    if (!names) continue;  // a directory that does not exist offers nothing
    for (const auto& name : *names)
      if (name.size() > 5 && name.ends_with(".json")) descriptors.emplace(name, dir + "/" + name);
  }
  std::vector<std::string> skipped;
  for (const auto& [name, path] : descriptors) {
    auto text = fs.read_file(path);
    if (!text) continue;  // an empty name in /etc hides the one in /usr/share (the spec's rule)
    auto parsed = strict_json::parse(*text, path);
    if (!parsed || !parsed->is_object()) {
      skipped.push_back(path);
      continue;
    }
    const json& d = *parsed;
    if (!has_string(d.value("interface-types", json()), "uefi") || !targets_q35(d.value("targets", json())))
      continue;
    auto [code, vars] = flash_files(d);
    if (code.empty()) continue;
    const json features = d.value("features", json::array());
    bool smm = has_string(features, "requires-smm");
    bool matches = secure_boot ? has_string(features, "secure-boot") && has_string(features, "enrolled-keys") && smm
                               : !smm;
    if (!matches) continue;
    for (const auto& file : {code, vars})
      if (!fs.exists(file))
        return fail(Code::kFailedPrecondition, "UEFI firmware: " + path + " names " + file +
                                                   ", which does not exist (reinstall Debian's ovmf package)");
    auto template_bytes = fs.read_file(vars);
    if (!template_bytes)
      return fail(Code::kFailedPrecondition, "UEFI firmware: " + path + " names " + vars +
                                                 ", which cannot be read: " + template_bytes.error().message);
    return UefiFirmware{path, code, vars, template_bytes->size(), smm};
  }
  std::string where;
  for (const auto& dir : dirs) where += (where.empty() ? "" : ", ") + dir;
  std::string message = "UEFI firmware: no QEMU firmware descriptor in " + where + " offers " +
                        (secure_boot ? "UEFI with Secure Boot and enrolled keys"
                                     : "UEFI without SMM") +
                        " for x86_64 q35 (Debian's ovmf package installs them)";
  if (!skipped.empty()) message += "; not valid JSON: " + skipped.front();
  return fail(Code::kFailedPrecondition, message);
}

Status check_uefi_vars(std::string_view bytes, const UefiFirmware& firmware, const std::string& path) {
  auto corrupt = [&](const std::string& what) {
    return fail(Code::kFailedPrecondition, "UEFI variable store " + path + ": " + what +
                                               "; delete the VM, or replace the file by a copy of " +
                                               firmware.vars_template + " (its variables are lost)");
  };
  if (bytes.size() != firmware.vars_size)
    return corrupt(std::to_string(bytes.size()) + " bytes, the firmware's template has " +
                   std::to_string(firmware.vars_size));
  // EFI_FIRMWARE_VOLUME_HEADER: ZeroVector[16], FileSystemGuid[16], FvLength (u64 at 32),
  // Signature "_FVH" (at 40), Attributes, HeaderLength (u16 at 48), Checksum (u16 at 50), ...
  constexpr size_t kFvHeaderMin = 56;
  if (bytes.size() < kFvHeaderMin || bytes.substr(40, 4) != "_FVH")
    return corrupt("no firmware volume header (signature _FVH)");
  if (le64(bytes, 32) != bytes.size()) return corrupt("the firmware volume length is not the file's size");
  const uint16_t header_length = le16(bytes, 48);
  // VARIABLE_STORE_HEADER after it: Signature GUID[16], Size (u32), Format (u8), State (u8).
  if (header_length < kFvHeaderMin || header_length % 2 != 0 || header_length + 22u > bytes.size())
    return corrupt("the firmware volume header length " + std::to_string(header_length) + " is invalid");
  uint16_t sum = 0;
  for (size_t at = 0; at < header_length; at += 2) sum = static_cast<uint16_t>(sum + le16(bytes, at));
  if (sum != 0) return corrupt("the firmware volume header checksum is wrong");
  const auto format = static_cast<uint8_t>(bytes[header_length + 20]);
  const auto state = static_cast<uint8_t>(bytes[header_length + 21]);
  if (format != 0x5a || state != 0xfe) return corrupt("the variable store is not formatted and healthy");
  return ok();
}

}  // namespace feos::vmm::qemu
