// The pci layer's reading of one device's sysfs attributes (PciSysfs): hex ids and class,
// revision, numa_node, enable, link speed/width, reset_method, driver_override, the driver and
// iommu_group links, the `resource` file, and the directory listings of bus/pci/devices and an
// IOMMU group. The fuzz input is served by an in-memory sys::Filesystem as the directory of
// device 0000:00:06.0:
//   =vendor          a line "=<name>" starts an attribute; the lines after it are its text
//   0x10de
//   =driver          "driver" and "iommu_group" become links (their text is the target)
//   ../../../bus/pci/drivers/nvidia
//   =@devices        entries of bus/pci/devices, one a line (default: the device itself)
//   =@group          entries of the IOMMU group's devices directory
// Checks: nothing crashes; errors carry the documented codes; a device that reads is consistent
// (6 BARs and a ROM, 24-bit class, finite non-negative link speeds) and refresh() agrees with it.
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "pci/sysfs.h"

using feos::Code;
using feos::Error;
using feos::Result;
using feos::Status;

namespace {

constexpr const char* kAddress = "0000:00:06.0";

// Read-only, in memory. Paths are exact strings, as HostPaths builds them.
class MemoryFilesystem : public feos::sys::Filesystem {
 public:
  std::map<std::string, std::string> files;
  std::map<std::string, std::string> links;
  std::map<std::string, std::vector<std::string>> dirs;

  Result<std::string> read_file(const std::string& path) const override {
    if (auto it = files.find(path); it != files.end()) return it->second;
    if (dirs.count(path) || links.count(path))
      return feos::fail(Code::kInternal, "read " + path + ": Is a directory");
    return feos::fail(Code::kNotFound, "read " + path + ": No such file or directory");
  }
  Status write_file(const std::string& path, std::string_view) override {
    return feos::fail(Code::kInternal, "write " + path + ": read-only fuzz filesystem");
  }
  Result<std::vector<std::string>> list_dir(const std::string& path) const override {
    if (auto it = dirs.find(path); it != dirs.end()) return it->second;
    return feos::fail(Code::kNotFound, "list " + path + ": No such file or directory");
  }
  Result<std::string> read_link(const std::string& path) const override {
    if (auto it = links.find(path); it != links.end()) return it->second;
    if (files.count(path) || dirs.count(path))
      return feos::fail(Code::kInvalidArgument, "readlink " + path + ": Invalid argument");
    return feos::fail(Code::kNotFound, "readlink " + path + ": No such file or directory");
  }
  bool exists(const std::string& path) const override {
    return files.count(path) || links.count(path) || dirs.count(path);
  }
};

std::vector<std::string> lines_of(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    out.emplace_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

// Splits the input into named attributes (see the format above).
std::map<std::string, std::string> attributes_of(std::string_view input) {
  std::map<std::string, std::string> attrs;
  std::string* current = nullptr;
  size_t pos = 0;
  while (pos < input.size()) {
    size_t nl = input.find('\n', pos);
    size_t end = nl == std::string_view::npos ? input.size() : nl + 1;
    std::string_view line = input.substr(pos, end - pos);
    if (!line.empty() && line[0] == '=') {
      std::string_view name = line.substr(1);
      if (!name.empty() && name.back() == '\n') name.remove_suffix(1);
      current = &attrs[std::string(name)];
      current->clear();
    } else if (current != nullptr) {
      current->append(line);
    }
    pos = end;
  }
  return attrs;
}

void check_link(const std::optional<feos::pci::Link>& link, const char* what) {
  if (!link) return;
  FUZZ_CHECK(std::isfinite(link->gts) && link->gts >= 0, "%s: gts %f from '%s'", what, link->gts,
             link->speed.c_str());
  (void)link->to_string();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto attrs = attributes_of(feos::fuzz::as_text(data, size));
  feos::sys::HostPaths paths;
  paths.sysfs_root = "/fuzz";
  const std::string dir = paths.pci_device(kAddress);

  MemoryFilesystem fs;
  fs.dirs[paths.pci_devices()] = {kAddress};
  fs.dirs[dir] = {};
  std::string group;
  for (auto& [name, text] : attrs) {
    if (name == "@devices") {
      fs.dirs[paths.pci_devices()] = lines_of(text);
    } else if (name == "@group") {
      continue;  // after the iommu_group link is known
    } else if (name == "driver" || name == "iommu_group") {
      std::string target = text;
      if (!target.empty() && target.back() == '\n') target.pop_back();
      fs.links[dir + "/" + name] = target;
      if (name == "iommu_group") group = feos::sys::basename_of(target);
    } else {
      fs.files[dir + "/" + name] = text;
    }
    fs.dirs[dir].push_back(name);
  }
  if (auto it = attrs.find("@group"); it != attrs.end() && !group.empty())
    fs.dirs[paths.iommu_groups() + "/" + group + "/devices"] = lines_of(it->second);

  feos::pci::PciSysfs pci(fs, paths);
  const feos::pci::Address address = *feos::pci::Address::parse(kAddress);

  if (auto list = pci.list()) {
    for (const auto& a : *list) (void)pci.exists(a);
  }
  auto device = pci.read(address);
  if (!device) {
    // Malformed or missing required attributes are INTERNAL; errors of the filesystem itself
    // (a link where a file belongs) keep theirs.
    FUZZ_CHECK(device.error().code == Code::kInternal || device.error().code == Code::kInvalidArgument,
               "read: code %s: %s", std::string(feos::code_name(device.error().code)).c_str(),
               device.error().message.c_str());
  } else {
    const feos::pci::Device& d = *device;
    FUZZ_CHECK(d.address == address, "address changed");
    FUZZ_CHECK(d.class_code <= 0xffffff, "class 0x%x above 24 bits", d.class_code);
    FUZZ_CHECK(d.bars.size() == 6, "%zu BAR lines", d.bars.size());
    for (size_t i = 0; i < d.bars.size(); ++i)
      FUZZ_CHECK(d.bars[i].index == static_cast<int>(i), "BAR %zu has index %d", i, d.bars[i].index);
    FUZZ_CHECK(d.rom && d.rom->index == feos::pci::kRomIndex, "no ROM line");
    check_link(d.current_link, "current_link");
    check_link(d.max_link, "max_link");
    (void)d.id();
    (void)d.subsystem_id();
    (void)d.class_string();
    for (const auto& bar : d.present_bars()) (void)feos::pci::format_bytes(bar.size());
    (void)feos::pci::bar_totals(d.bars);

    // refresh() re-reads the dynamic facts from the same files: they must come out the same.
    feos::pci::Device again = d;
    auto refreshed = pci.refresh(again);
    FUZZ_CHECK(refreshed.has_value(), "refresh failed after read: %s", refreshed.error().message.c_str());
    FUZZ_CHECK(again.driver == d.driver && again.driver_override == d.driver_override &&
                   again.enable_count == d.enable_count,
               "refresh disagrees with read");
  }
  (void)pci.read_all();
  (void)pci.slot_functions(address);
  // The group is a parsed number, so listing its members can only find it or not.
  if (auto g = pci.iommu_group(address); g && *g) (void)pci.iommu_group_members(**g);
  return 0;
}
