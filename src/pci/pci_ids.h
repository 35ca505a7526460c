#pragma once
// Names for vendor, device, subsystem and class codes from the PCI ID database (pci.ids, Debian
// package `pci.ids`). Not a kernel interface, so its path is plain configuration; parsed here in
// one pass (under 0.1 s for the full 1.3 MB file); lookups are then hash-map hits, so naming the
// functions of a 1,000-device host costs nothing noticeable.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "sys/filesystem.h"

namespace feos::pci {

// Where distributions install pci.ids (Debian/Ubuntu, then Fedora/RHEL/Arch hwdata).
inline const std::vector<std::string>& default_pci_ids_paths() {
  static const std::vector<std::string> paths = {"/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"};
  return paths;
}

class PciIds {
 public:
  // An empty database: every lookup answers nullopt.
  PciIds() = default;

  // Parses pci.ids text. Lines it does not understand are skipped (the format is data that
  // evolves, and a name is never essential).
  static PciIds parse(std::string_view text);

  // Reads and parses `path`. NOT_FOUND if absent, other filesystem errors as reported.
  static Result<PciIds> load(const sys::Filesystem& fs, const std::string& path);

  // Loads the first of `paths` that exists. NOT_FOUND naming all of them if none does.
  static Result<PciIds> load_first(const sys::Filesystem& fs, const std::vector<std::string>& paths);

  std::optional<std::string_view> vendor(uint16_t vendor) const;
  std::optional<std::string_view> device(uint16_t vendor, uint16_t device) const;
  std::optional<std::string_view> subsystem(uint16_t vendor, uint16_t device, uint16_t subsystem_vendor,
                                            uint16_t subsystem_device) const;
  // The most specific name known for a 24-bit class code: programming interface, else sub class,
  // else base class ("3D controller" for 0x030200).
  std::optional<std::string_view> class_name(uint32_t class_code) const;

  size_t vendor_count() const { return vendors_.size(); }
  size_t device_count() const { return devices_.size(); }

 private:
  std::unordered_map<uint32_t, std::string> vendors_;     // vendor
  std::unordered_map<uint32_t, std::string> devices_;     // vendor << 16 | device
  std::unordered_map<uint64_t, std::string> subsystems_;  // vendor, device, sub vendor, sub device
  std::unordered_map<uint32_t, std::string> classes_;     // 1 << 24 | class << 16 (| sub << 8 (| prog-if))
};

}  // namespace feos::pci
