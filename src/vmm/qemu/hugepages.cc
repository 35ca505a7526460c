#include "vmm/qemu/hugepages.h"

#include "common/parse.h"
#include "vmm/qemu/memory_backing.h"

namespace feos::vmm::qemu {
namespace {

// /proc/mounts escapes space, tab, newline and backslash as \ooo.
std::string unescape_mount_field(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    auto octal = [&](size_t k, char max) { return field[k] >= '0' && field[k] <= max; };
    if (field[i] == '\\' && i + 3 < field.size() && octal(i + 1, '3') && octal(i + 2, '7') && octal(i + 3, '7')) {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0'));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

// "2M" -> 2048, "1024M" / "1G" -> 1048576, "64K" -> 64; nullopt when malformed.
std::optional<uint64_t> page_size_kib(std::string_view text) {
  if (text.size() < 2) return std::nullopt;
  uint64_t unit = 0;
  switch (text.back()) {
    case 'K': case 'k': unit = 1; break;
    case 'M': case 'm': unit = 1024; break;
    case 'G': case 'g': unit = 1024 * 1024; break;
    default: return std::nullopt;
  }
  auto number = parse_decimal(text.substr(0, text.size() - 1), 9);
  if (!number || *number == 0) return std::nullopt;
  return *number * unit;
}

std::vector<std::string_view> split(std::string_view text, char by) {
  std::vector<std::string_view> out;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(by, begin);
    if (end == std::string_view::npos) end = text.size();
    if (end > begin) out.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return out;
}

}  // namespace

std::vector<HugetlbMount> parse_hugetlb_mounts(std::string_view mounts, uint64_t default_page_kib) {
  std::vector<HugetlbMount> out;
  for (std::string_view line : split(mounts, '\n')) {
    auto fields = split(line, ' ');
    if (fields.size() < 4 || fields[2] != "hugetlbfs") continue;
    uint64_t page_kib = default_page_kib;  // 0: unknown
    bool writable = true;
    for (std::string_view option : split(fields[3], ',')) {
      if (option == "ro") writable = false;
      if (option.rfind("pagesize=", 0) == 0) page_kib = page_size_kib(option.substr(9)).value_or(0);
    }
    if (writable && page_kib != 0) out.push_back({unescape_mount_field(fields[1]), page_kib});
  }
  return out;
}

Result<HugetlbMount> pick_hugetlb_mount(const std::vector<HugetlbMount>& mounts, uint64_t page_kib) {
  if (page_kib == 0)
    return fail(Code::kFailedPrecondition,
                "this host has no default hugepage size (no \"Hugepagesize:\" in /proc/meminfo): its kernel "
                "has no hugepages; ask for none");
  for (const HugetlbMount& mount : mounts)
    if (mount.page_kib == page_kib) return mount;
  std::string found;
  for (const HugetlbMount& mount : mounts)
    found += (found.empty() ? "" : ", ") + mount.path + " (" + size_text(mount.page_kib) + ")";
  const std::string size = size_text(page_kib);
  return fail(Code::kFailedPrecondition,
              "no hugetlbfs mount with " + size + " pages in /proc/mounts (" +
                  (found.empty() ? std::string("there is none") : "there are " + found) +
                  "); mount one: mount -t hugetlbfs -o pagesize=" + std::to_string(page_kib) + "K none <dir>");
}

Status check_free_hugepages(const std::vector<HugepageNeed>& needs, uint64_t page_kib) {
  const std::string page = size_text(page_kib);
  for (const HugepageNeed& need : needs) {
    if (!need.free_pages || need.pages <= *need.free_pages) continue;
    const std::string where = need.host_node ? "host node " + std::to_string(*need.host_node) : "the host";
    return fail(Code::kFailedPrecondition,
                where + " has " + std::to_string(*need.free_pages) + (need.host_node ? " free " : " free, unreserved ") +
                    page + " hugepages, the VM needs " +
                    std::to_string(need.pages) + (need.host_node ? " there (" : " (") + need.what +
                    "); reserve more (" + need.pool + ") or give the VM less memory");
  }
  return ok();
}

}  // namespace feos::vmm::qemu
