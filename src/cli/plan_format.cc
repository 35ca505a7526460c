#include "cli/plan_format.h"

#include <cstdio>

#include "cli/format.h"

namespace feos::cli {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

std::string hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

std::string bar_text(const feosd::v1::PciBar& bar) {
  std::string text = "BAR" + std::to_string(bar.index()) + " " + format_bytes(bar.size());
  if (bar.is_io()) return text + " io";
  if (bar.is_64bit()) text += " 64-bit";
  if (bar.prefetchable()) text += " pref";
  return text;
}

std::string function_line(const feosd::v1::PassthroughFunction& f) {
  char class_code[16];
  std::snprintf(class_code, sizeof class_code, "0x%06x", f.class_code());
  std::string bars;
  for (const auto& bar : f.bars()) bars += (bars.empty() ? "" : ", ") + bar_text(bar);
  return f.address() + "  " + f.id() + "  class " + class_code + "  group " +
         (f.iommu_group().empty() ? "-" : f.iommu_group()) + "  " +
         (f.original_driver().empty() ? "(no driver)" : f.original_driver()) +
         (bars.empty() ? "" : "  " + bars);
}

bool is_plain_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("_@%+=:,./-").find(c) != std::string_view::npos;
}

}  // namespace

std::string shell_quote(std::string_view arg) {
  bool plain = !arg.empty();
  for (char c : arg) plain = plain && is_plain_word_char(c);
  if (plain) return std::string(arg);
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string format_gib(uint64_t bytes) {
  if (bytes % kGiB == 0) return std::to_string(bytes / kGiB) + " GiB";
  char text[32];
  std::snprintf(text, sizeof text, "%.3f GiB", static_cast<double>(bytes) / static_cast<double>(kGiB));
  std::string out = text;
  if (bytes < kGiB) out += " (" + format_bytes(bytes) + ")";
  return out;
}

std::string format_plan(const feosd::v1::VmPlan& plan) {
  std::string out = "vm:  " + plan.vm_id() + "\n";
  out += "gpus:";
  if (plan.gpus().empty()) out += "  none";
  out += "\n";
  for (const auto& gpu : plan.gpus()) {
    out += "  " + gpu.request().address() + "  numa node " +
           (gpu.numa_node() < 0 ? std::string("-") : std::to_string(gpu.numa_node())) + "\n";
    for (const auto& f : gpu.functions()) out += "    " + function_line(f) + "\n";
    for (const auto& p : gpu.group_peers()) out += "    group peer " + function_line(p) + "\n";
    for (const auto& s : gpu.fabric()) out += "    nvswitch " + function_line(s) + "\n";
  }
  out += "decisions:\n";
  for (const auto& decision : plan.decisions()) out += "  - " + decision + "\n";
  const auto& space = plan.address_space();
  out += "address space:\n";
  out += "  ram:          " + format_gib(space.ram_bytes()) + "\n";
  out += "  below 4 GiB:  " + format_gib(space.mmio32_bytes()) + "\n";
  out += "  64-bit hole:  " + format_gib(space.hole64_size()) + " at " +
         format_gib(space.hole64_start()) + " (" + hex(space.hole64_start()) + ")\n";
  out += "  phys-bits:    " + std::to_string(space.phys_bits()) + "\n";
  if (space.uefi_aperture_size() != 0)
    out += "  UEFI aperture: " + format_gib(space.uefi_aperture_size()) + " at " +
           format_gib(space.uefi_aperture_base()) + " (" + hex(space.uefi_aperture_base()) + ")\n";
  const auto& firmware = plan.firmware();
  out += "firmware:\n";
  if (firmware.kind() == feosd::v1::FIRMWARE_KIND_UEFI) {
    out += "  kind:         uefi" + std::string(firmware.secure_boot() ? ", secure boot" : "") + "\n";
    out += "  descriptor:   " + firmware.descriptor_file() + "\n";
    out += "  code:         " + firmware.code() + "\n";
    out += "  vars:         " + firmware.vars() + " (from " + firmware.vars_template() + ")\n";
  } else {
    out += "  kind:         bios\n";
  }
  out += "qemu command line:\n";
  for (int i = 0; i < plan.qemu_argv_size(); ++i) {
    out += (i == 0 ? "  " : "    ") + shell_quote(plan.qemu_argv(i)) +
           (i + 1 < plan.qemu_argv_size() ? " \\\n" : "\n");
  }
  return out;
}

}  // namespace feos::cli
