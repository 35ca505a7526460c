#include "pci/sysfs.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "common/parse.h"
#include "pci/config_space.h"
#include "pci/iommu.h"

namespace feos::pci {
namespace {

// "0x" (the kernel's lowercase prefix) and 1-8 hex digits, at most `max`.
std::optional<uint32_t> parse_sysfs_hex(std::string_view text, uint32_t max) {
  if (text.substr(0, 2) != "0x") return std::nullopt;
  auto value = parse_hex(text.substr(2), 8);
  if (!value || *value > max) return std::nullopt;
  return static_cast<uint32_t>(*value);
}

std::optional<int> parse_int(std::string_view text) {
  int value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 10);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

// "32.0 GT/s PCIe" -> 32.0; "Unknown" (or anything without a leading number) -> 0. from_chars
// also reads "inf" and "nan": those are not speeds either.
double parse_gts(std::string_view speed) {
  double value = 0;
  auto [ptr, ec] = std::from_chars(speed.data(), speed.data() + speed.size(), value);
  if (ec != std::errc() || !std::isfinite(value) || value < 0) return 0;
  std::string_view rest(ptr, static_cast<size_t>(speed.data() + speed.size() - ptr));
  return rest.substr(0, 5) == " GT/s" ? value : 0;
}

// "16" or (older kernels) "x16".
std::optional<int> parse_width(std::string_view text) {
  if (!text.empty() && text[0] == 'x') text.remove_prefix(1);
  return parse_int(text);
}

// A kernel CPU list ("0-55", "0-27,56-83"; "" for none): digits, commas and dashes only.
bool is_cpu_list(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || c == ',' || c == '-'; });
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    size_t start = i;
    while (i < text.size() && text[i] != ' ') ++i;
    if (i > start) words.emplace_back(text.substr(start, i - start));
  }
  return words;
}

// driver_override as sysfs shows it: "(null)" when none.
std::string override_value(const std::string& text) {
  std::string value = sys::trim(text);
  return value == "(null)" ? std::string() : value;
}

// Addresses among directory entry names, sorted (names that are not addresses are skipped).
std::vector<Address> addresses_of(const std::vector<std::string>& names) {
  std::vector<Address> out;
  for (const auto& name : names)
    if (auto a = Address::parse(name)) out.push_back(*a);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

PciSysfs::PciSysfs(const sys::Filesystem& fs, sys::HostPaths paths) : fs_(fs), paths_(std::move(paths)) {}

Result<std::vector<Address>> PciSysfs::list() const {
  auto names = fs_.list_dir(paths_.pci_devices());
  if (!names) return fail(names.error().context("list PCI devices"));
  return addresses_of(*names);
}

bool PciSysfs::exists(const Address& address) const {
  return fs_.exists(paths_.pci_device(address.to_string()));
}

Result<std::optional<std::string>> PciSysfs::optional_attr(const std::string& bdf, const char* name) const {
  auto text = fs_.read_file(paths_.pci_device_attr(bdf, name));
  if (!text) {
    // Absent for this kind of device, or the kernel declines to answer (EINVAL from a link
    // attribute of a device without a PCIe capability).
    if (text.error().code == Code::kNotFound || text.error().code == Code::kInvalidArgument)
      return std::optional<std::string>();
    return fail(text.error());
  }
  return std::optional<std::string>(sys::trim(*text));
}

Result<std::string> PciSysfs::required_attr(const std::string& bdf, const char* name) const {
  auto text = fs_.read_file(paths_.pci_device_attr(bdf, name));
  if (!text) return fail(Code::kInternal, text.error().message);
  return sys::trim(*text);
}

Result<std::optional<std::string>> PciSysfs::link_basename(const std::string& bdf, const char* name) const {
  auto target = fs_.read_link(paths_.pci_device_attr(bdf, name));
  if (!target) {
    if (target.error().code == Code::kNotFound) return std::optional<std::string>();
    return fail(target.error());
  }
  return std::optional<std::string>(sys::basename_of(*target));
}

Result<std::optional<Link>> PciSysfs::read_pcie_link(const std::string& bdf, const char* speed_name,
                                                     const char* width_name) const {
  auto speed = optional_attr(bdf, speed_name);
  if (!speed) return fail(speed.error());
  auto width = optional_attr(bdf, width_name);
  if (!width) return fail(width.error());
  if (!*speed && !*width) return std::optional<Link>();
  Link link;
  if (*speed) {
    link.speed = **speed;
    link.gts = parse_gts(**speed);
  }
  if (*width) {
    auto w = parse_width(**width);
    if (!w)
      return fail(Code::kInternal, "malformed " + paths_.pci_device_attr(bdf, width_name) + ": " +
                                       quote_for_message(**width));
    link.width = *w;
  }
  return std::optional<Link>(link);
}

Status PciSysfs::read_dynamic(const std::string& bdf, Device& d) const {
  auto driver = link_basename(bdf, "driver");
  if (!driver) return fail(driver.error());
  d.driver = driver->value_or("");
  auto override_text = optional_attr(bdf, "driver_override");
  if (!override_text) return fail(override_text.error());
  d.driver_override = *override_text ? override_value(**override_text) : "";
  auto current = read_pcie_link(bdf, "current_link_speed", "current_link_width");
  if (!current) return fail(current.error());
  d.current_link = *current;
  auto enable = optional_attr(bdf, "enable");
  if (!enable) return fail(enable.error());
  d.enable_count.reset();
  if (*enable) {
    auto value = parse_int(**enable);
    if (!value)
      return fail(Code::kInternal, "malformed " + paths_.pci_device_attr(bdf, "enable") + ": " +
                                       quote_for_message(**enable));
    d.enable_count = *value;
  }
  return ok();
}

Status PciSysfs::refresh(Device& device) const {
  const std::string bdf = device.address.to_string();
  const std::string dir = paths_.pci_device(bdf);
  if (!fs_.exists(dir)) return fail(Code::kNotFound, "PCI device " + bdf + " not found (no " + dir + ")");
  return read_dynamic(bdf, device);
}

Result<std::string> PciSysfs::driver(const Address& address) const {
  const std::string bdf = address.to_string();
  auto name = link_basename(bdf, "driver");
  if (!name) return fail(name.error());
  if (*name) return std::move(**name);
  // No link: unbound, or the device itself is gone.
  if (!fs_.exists(paths_.pci_device(bdf)))
    return fail(Code::kNotFound, "PCI device " + bdf + " is gone (no " + paths_.pci_device(bdf) + ")");
  return std::string();
}

Result<std::string> PciSysfs::driver_override(const Address& address) const {
  auto text = fs_.read_file(paths_.pci_device_attr(address.to_string(), "driver_override"));
  if (!text) return fail(text.error());
  return override_value(*text);
}

Result<Device> PciSysfs::read(const Address& address) const {
  const std::string bdf = address.to_string();
  const std::string dir = paths_.pci_device(bdf);
  if (!fs_.exists(dir)) return fail(Code::kNotFound, "PCI device " + bdf + " not found (no " + dir + ")");

  Device d;
  d.address = address;
  auto malformed = [&](const char* name, const std::string& text) {
    return fail(Code::kInternal,
                "malformed " + paths_.pci_device_attr(bdf, name) + ": " + quote_for_message(text));
  };
  auto hex_attr = [&](const char* name, uint32_t max) -> Result<uint32_t> {
    auto text = required_attr(bdf, name);
    if (!text) return fail(text.error());
    auto value = parse_sysfs_hex(*text, max);
    if (!value) return malformed(name, *text);
    return *value;
  };
  auto vendor = hex_attr("vendor", 0xffff);
  if (!vendor) return fail(vendor.error());
  auto device = hex_attr("device", 0xffff);
  if (!device) return fail(device.error());
  auto class_code = hex_attr("class", 0xffffff);
  if (!class_code) return fail(class_code.error());
  d.vendor_id = static_cast<uint16_t>(*vendor);
  d.device_id = static_cast<uint16_t>(*device);
  d.class_code = *class_code;

  // Subsystem ids and revision exist for every PCI function on current kernels; a capture of an
  // old kernel may lack them, so they are read as optional.
  auto opt_hex = [&](const char* name, uint32_t max) -> Result<std::optional<uint32_t>> {
    auto text = optional_attr(bdf, name);
    if (!text) return fail(text.error());
    if (!*text) return std::optional<uint32_t>();
    auto value = parse_sysfs_hex(**text, max);
    if (!value) return malformed(name, **text);
    return std::optional<uint32_t>(*value);
  };
  auto sub_vendor = opt_hex("subsystem_vendor", 0xffff);
  if (!sub_vendor) return fail(sub_vendor.error());
  auto sub_device = opt_hex("subsystem_device", 0xffff);
  if (!sub_device) return fail(sub_device.error());
  auto revision = opt_hex("revision", 0xff);
  if (!revision) return fail(revision.error());
  d.subsystem_vendor_id = static_cast<uint16_t>(sub_vendor->value_or(0));
  d.subsystem_device_id = static_cast<uint16_t>(sub_device->value_or(0));
  if (*revision) d.revision = static_cast<uint8_t>(**revision);

  FEOS_ASSIGN_OR_RETURN(d.iommu_group, group_link(bdf));
  FEOS_TRY(read_dynamic(bdf, d));

  auto numa = optional_attr(bdf, "numa_node");
  if (!numa) return fail(numa.error());
  if (*numa) {
    auto value = parse_int(**numa);
    if (!value) return malformed("numa_node", **numa);
    d.numa_node = *value;
  }
  auto cpus = optional_attr(bdf, "local_cpulist");
  if (!cpus) return fail(cpus.error());
  if (*cpus) {
    if (!is_cpu_list(**cpus)) return malformed("local_cpulist", **cpus);
    d.local_cpus = **cpus;
  }

  auto boot_vga = optional_attr(bdf, "boot_vga");
  if (!boot_vga) return fail(boot_vga.error());
  if (*boot_vga) d.boot_vga = **boot_vga == "1";

  auto reset = optional_attr(bdf, "reset_method");
  if (!reset) return fail(reset.error());
  if (*reset) {
    d.reset_methods = split_words(**reset);
  } else {
    // Kernels before 5.15 have no reset_method: Function Level Reset, the method that matters
    // for handing a GPU to the next VM, is read from the PCI Express capability instead. A
    // config space that cannot be read or walked just leaves the list empty (unknown).
    const std::string config_path = paths_.pci_device_attr(bdf, "config");
    auto config = fs_.read_file(config_path);
    if (config) {
      auto space = parse_config_space(*config, config_path);
      if (space && space->flr_supported()) d.reset_methods = {"flr"};
    }
  }

  auto max = read_pcie_link(bdf, "max_link_speed", "max_link_width");
  if (!max) return fail(max.error());
  d.max_link = *max;

  const std::string resource_path = paths_.pci_device_attr(bdf, "resource");
  auto resource_text = fs_.read_file(resource_path);
  if (!resource_text) return fail(Code::kInternal, resource_text.error().message);
  auto resources = parse_resource_file(*resource_text, resource_path);
  if (!resources) return fail(resources.error());
  for (const auto& r : *resources) {
    if (r.index < kRomIndex) d.bars.push_back(r);
    else if (r.index == kRomIndex) d.rom = r;
  }
  return d;
}

Result<std::vector<Address>> PciSysfs::bound_to(const std::string& driver) const {
  auto names = fs_.list_dir(paths_.pci_driver(driver));
  if (!names) return fail(names.error());
  return addresses_of(*names);
}

Result<std::vector<Device>> PciSysfs::read_all() const {
  auto addresses = list();
  if (!addresses) return fail(addresses.error());
  std::vector<Device> out;
  out.reserve(addresses->size());
  for (const auto& a : *addresses) {
    auto d = read(a);
    if (!d) return fail(d.error());
    out.push_back(std::move(*d));
  }
  return out;
}

Result<std::vector<Address>> PciSysfs::slot_functions(const Address& address) const {
  auto all = list();
  if (!all) return fail(all.error());
  std::vector<Address> out;
  for (const auto& a : *all)
    if (a.same_slot(address)) out.push_back(a);
  if (out.empty()) return fail(Code::kNotFound, "no PCI function in slot " + address.slot());
  return out;
}

Result<std::optional<IommuGroup>> PciSysfs::group_link(const std::string& bdf) const {
  FEOS_ASSIGN_OR_RETURN(const std::optional<std::string> name, link_basename(bdf, "iommu_group"));
  if (!name) return std::optional<IommuGroup>();
  // The kernel names groups by number; parsed here, a group is a value (and a safe path part).
  auto group = IommuGroup::parse(*name);
  if (!group) {
    return fail(Code::kInternal, "malformed " + paths_.pci_device_attr(bdf, "iommu_group") + ": " +
                                     group.error().message);
  }
  return std::optional<IommuGroup>(*group);
}

Result<std::optional<IommuGroup>> PciSysfs::iommu_group(const Address& address) const {
  const std::string bdf = address.to_string();
  const std::string dir = paths_.pci_device(bdf);
  if (!fs_.exists(dir)) return fail(Code::kNotFound, "PCI device " + bdf + " not found (no " + dir + ")");
  return group_link(bdf);
}

Result<std::vector<Address>> PciSysfs::iommu_group_members(const IommuGroup& group) const {
  const std::string dir = paths_.iommu_group_devices(group.to_string());
  auto names = fs_.list_dir(dir);
  if (!names) {
    if (names.error().code == Code::kNotFound)
      return fail(Code::kNotFound, "IOMMU group " + group.to_string() + " not found (no " + dir + ")");
    return fail(names.error());
  }
  // Non-PCI members (platform devices on some SoCs) are not listed: this layer knows only PCI.
  return addresses_of(*names);
}

Result<size_t> PciSysfs::iommu_group_count() const {
  auto names = fs_.list_dir(paths_.iommu_groups());
  if (!names) {
    if (names.error().code == Code::kNotFound) return size_t{0};
    return fail(names.error());
  }
  return names->size();
}

}  // namespace feos::pci
