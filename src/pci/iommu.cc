#include "pci/iommu.h"

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/parse.h"

namespace feos::pci {
namespace {

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t')) ++i;
    const size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\n' && text[i] != '\t') ++i;
    if (i > start) words.emplace_back(text.substr(start, i - start));
  }
  return words;
}

// The register as the kernel prints it ("%llx"); a "0x" prefix and leading zeros are accepted
// too, as long as the value fits in 64 bits.
std::optional<uint64_t> parse_ecap(std::string_view text) {
  std::string_view digits = strip_hex_prefix(text);
  while (digits.size() > 1 && digits[0] == '0') digits.remove_prefix(1);
  return parse_hex(digits, 16);
}

}  // namespace

InterruptRemapping read_interrupt_remapping(const sys::Filesystem& fs, const sys::HostPaths& paths,
                                            bool iommu_enabled) {
  using State = InterruptRemapping::State;
  if (!iommu_enabled) return {State::kOff, "the IOMMU is not enabled"};
  const std::string dir = paths.iommu_class();
  auto units = fs.list_dir(dir);
  if (!units || units->empty()) {
    return {State::kUnknown, "no IOMMU units under " + dir + " to read"};
  }
  auto cmdline = fs.read_file(paths.kernel_cmdline());
  if (cmdline) {
    for (const auto& word : split_words(*cmdline)) {
      if (word == "intremap=off" || word == "nointremap") {
        return {State::kOff, "disabled on the kernel command line (" + word + ")"};
      }
    }
  }
  size_t intel = 0;
  for (const auto& unit : *units) {
    const std::string ecap_path = paths.intel_iommu_ecap(unit);
    auto ecap_text = fs.read_file(ecap_path);
    if (!ecap_text) {
      if (fs.exists(paths.amd_iommu(unit))) {
        return {State::kUnknown,
                "AMD-Vi does not show interrupt remapping in sysfs (look for \"AMD-Vi: "
                "Interrupt remapping enabled\" in the kernel log)"};
      }
      return {State::kUnknown, "cannot read " + ecap_path};
    }
    const std::string text = sys::trim(*ecap_text);
    auto ecap = parse_ecap(text);
    if (!ecap) {
      return {State::kUnknown, "malformed " + ecap_path + ": " + quote_for_message(text)};
    }
    if ((*ecap & 0x8) == 0) {
      return {State::kOff,
              unit + " lacks interrupt remapping (" + ecap_path + " = " + text + ", bit 3 clear)"};
    }
    ++intel;
  }
  return {State::kOn, "supported by all " + std::to_string(intel) +
                          " DMAR units (ecap bit 3) and not disabled on the kernel command line"};
}

}  // namespace feos::pci
