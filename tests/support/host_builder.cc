#include "support/host_builder.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <set>
#include <stdexcept>

#include "pci/address.h"
#include "support/tree_util.h"

namespace feos::test {
namespace {

using detail::make_dirs;
using detail::make_relative_link;
using detail::write_text;

// Kernel resource flags (include/linux/ioport.h) as sysfs `resource` prints them for each BAR
// type: IORESOURCE_SIZEALIGN | MEM/IO | PREFETCH | MEM_64, plus the BAR's low type bits.
uint64_t bar_flags(BarType t) {
  switch (t) {
    case BarType::kMem32: return 0x40200;
    case BarType::kMem32Prefetch: return 0x42208;
    case BarType::kMem64: return 0x140204;
    case BarType::kMem64Prefetch: return 0x14220c;
    case BarType::kIo: return 0x40101;
  }
  return 0;
}
// Low bits of the BAR register: I/O space bit, memory type (10b = 64-bit), prefetchable.
uint32_t bar_type_bits(BarType t) {
  switch (t) {
    case BarType::kMem32: return 0x0;
    case BarType::kMem32Prefetch: return 0x8;
    case BarType::kMem64: return 0x4;
    case BarType::kMem64Prefetch: return 0xc;
    case BarType::kIo: return 0x1;
  }
  return 0;
}
bool is_64(BarType t) { return t == BarType::kMem64 || t == BarType::kMem64Prefetch; }

constexpr uint64_t kRomFlags = 0x46200;  // MEM | PREFETCH | READONLY | SIZEALIGN
constexpr uint64_t kIoWindowFlags = 0x101;
constexpr uint64_t kMemWindowFlags = 0x200;
constexpr uint64_t kPrefWindowFlags = 0x102201;  // MEM | PREFETCH | MEM_64 | 64-bit range type

// Address spaces the fake firmware assigns from, like a real BIOS: 32-bit MMIO below the 4 GiB
// hole's top, 64-bit prefetchable MMIO high up, I/O above the legacy range.
constexpr uint64_t kMem32Base = 0x80000000ull, kMem32Limit = 0xfbffffffull;
constexpr uint64_t kMem64Base = 0x200000000000ull, kMem64Limit = 0x3fffffffffffull;
constexpr uint64_t kIoBase = 0x2000, kIoLimit = 0xffff;

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }
bool is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

struct Range {
  uint64_t start = 0, end = 0, flags = 0;
  bool used() const { return end != 0 || start != 0; }
};
struct Span {
  uint64_t lo = ~0ull, hi = 0;
  void add(uint64_t s, uint64_t e) {
    lo = std::min(lo, s);
    hi = std::max(hi, e);
  }
  void add(const Span& o) {
    if (o.lo <= o.hi) add(o.lo, o.hi);
  }
  bool empty() const { return lo > hi; }
};

// PCIe device/port types (PCI_EXP_TYPE_*).
enum PortType { kEndpoint = 0, kLegacyEndpoint = 1, kRootPort = 4, kUpstream = 5, kDownstream = 6,
                kPcieToPci = 7, kRcEndpoint = 9 };

int speed_code(double gts) {
  if (gts >= 64) return 6;
  if (gts >= 32) return 5;
  if (gts >= 16) return 4;
  if (gts >= 8) return 3;
  if (gts >= 5) return 2;
  if (gts > 0) return 1;
  return 0;
}

std::string hex(uint64_t v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llx", digits, static_cast<unsigned long long>(v));
  return buf;
}

std::string speed_text(double gts) {
  if (gts <= 0) return "Unknown";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GT/s PCIe", gts);
  return buf;
}

// Per-function facts build() derives before writing.
struct Node {
  const FunctionSpec* spec = nullptr;
  pci::Address addr;
  int parent = -1;  // index of the upstream bridge
  std::vector<int> children;
  std::string dir;  // absolute device directory
  int port_type = kEndpoint;
  uint8_t subordinate = 0;
  bool multifunction = false;
  std::array<Range, 6> bars{};
  Range rom;
  Range io_win, mem_win, pref_win;
  int irq = 0;
};

class Writer {
 public:
  Writer(const HostBuilder& host, std::string root) : host_(host), root_(std::move(root)) {
    paths_.sysfs_root = root_ + "/sys";
    paths_.dev_root = root_ + "/dev";
    paths_.proc_root = root_ + "/proc";
  }

  Result<HostTree> run() {
    FEOS_TRY(index());
    FEOS_TRY(topology());
    FEOS_TRY(allocate());
    FEOS_TRY(modules());
    FEOS_TRY(skeleton());
    for (size_t i = 0; i < nodes_.size(); ++i) FEOS_TRY(write_function(nodes_[i]));
    FEOS_TRY(dev_nodes());
    FEOS_TRY(processes());
    FEOS_TRY(numa_nodes());
    return HostTree{root_, paths_, host_.model()};
  }

 private:
  Status index() {
    const auto& fns = host_.functions();
    nodes_.resize(fns.size());
    std::map<pci::Address, int> seen;
    for (size_t i = 0; i < fns.size(); ++i) {
      const FunctionSpec& f = fns[i];
      auto a = pci::Address::parse(f.bdf);
      if (!a || a->to_string() != f.bdf)
        return fail(Code::kInvalidArgument, "function address " + f.bdf + " is not canonical DDDD:BB:DD.F");
      if (seen.count(*a)) return fail(Code::kInvalidArgument, "duplicate function " + f.bdf);
      seen[*a] = static_cast<int>(i);
      nodes_[i].spec = &f;
      nodes_[i].addr = *a;
      std::set<int> taken;
      for (const auto& b : f.bars) {
        const int max_index = f.is_bridge() ? 1 : 5;
        if (b.index < 0 || b.index > max_index || (is_64(b.type) && b.index == max_index))
          return fail(Code::kInvalidArgument, f.bdf + ": BAR index " + std::to_string(b.index) + " out of range");
        if (!is_pow2(b.size) || b.size < (b.type == BarType::kIo ? 4u : 16u))
          return fail(Code::kInvalidArgument, f.bdf + ": BAR" + std::to_string(b.index) + " size is not a power of two");
        if (b.type != BarType::kIo && b.type != BarType::kMem64Prefetch && b.type != BarType::kMem64 &&
            b.size > (1ull << 31))
          return fail(Code::kInvalidArgument, f.bdf + ": 32-bit BAR" + std::to_string(b.index) + " over 2 GiB");
        for (int r = b.index; r <= b.index + (is_64(b.type) ? 1 : 0); ++r)
          if (!taken.insert(r).second)
            return fail(Code::kInvalidArgument, f.bdf + ": BAR register " + std::to_string(r) + " used twice");
      }
      if (f.rom_size && (!is_pow2(f.rom_size) || f.rom_size < 2048))
        return fail(Code::kInvalidArgument, f.bdf + ": ROM size is not a power of two >= 2 KiB");
      if (f.is_bridge() && f.secondary_bus == 0)
        return fail(Code::kInvalidArgument, "bridge " + f.bdf + " has no secondary bus");
    }
    by_addr_ = std::move(seen);
    return ok();
  }

  Status topology() {
    // A function on bus B of domain D hangs below the bridge whose secondary bus is B.
    std::map<std::pair<uint16_t, uint8_t>, int> bridge_of_bus;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const auto& f = *nodes_[i].spec;
      if (!f.is_bridge()) continue;
      auto key = std::make_pair(nodes_[i].addr.domain(), f.secondary_bus);
      if (f.secondary_bus <= nodes_[i].addr.bus())
        return fail(Code::kInvalidArgument, "bridge " + f.bdf + ": secondary bus must be above its own bus");
      if (!bridge_of_bus.emplace(key, static_cast<int>(i)).second)
        return fail(Code::kInvalidArgument, "two bridges lead to bus " + hex(f.secondary_bus, 2) + " (" + f.bdf + ")");
    }
    for (size_t i = 0; i < nodes_.size(); ++i) {
      auto it = bridge_of_bus.find({nodes_[i].addr.domain(), nodes_[i].addr.bus()});
      if (it != bridge_of_bus.end()) {
        nodes_[i].parent = it->second;
        nodes_[it->second].children.push_back(static_cast<int>(i));
      } else {
        roots_.push_back(static_cast<int>(i));
      }
    }
    auto by_address = [&](int a, int b) { return nodes_[a].addr < nodes_[b].addr; };
    std::sort(roots_.begin(), roots_.end(), by_address);
    for (auto& n : nodes_) std::sort(n.children.begin(), n.children.end(), by_address);
    // Multi-function header bit: more than one function in the slot (VFs, reached via ARI, do not count).
    std::map<std::string, int> per_slot;
    for (const auto& n : nodes_)
      if (n.spec->physfn.empty()) per_slot[n.addr.slot()]++;
    for (auto& n : nodes_) n.multifunction = n.spec->physfn.empty() && per_slot[n.addr.slot()] > 1;
    // Directories, port types, subordinate buses, depth-first from the root buses.
    std::function<Status(int, const std::string&, int)> walk = [&](int i, const std::string& parent_dir,
                                                                     int depth) -> Status {
      if (depth > 32) return fail(Code::kInvalidArgument, "bridge loop at " + nodes_[i].spec->bdf);
      Node& n = nodes_[i];
      const FunctionSpec& f = *n.spec;
      n.dir = parent_dir + "/" + f.bdf;
      if (f.is_bridge()) {
        if (n.parent < 0) n.port_type = kRootPort;
        else if (nodes_[n.parent].port_type == kUpstream) n.port_type = kDownstream;
        else n.port_type = kUpstream;
        bool conventional_below = !n.children.empty();
        for (int c : n.children) conventional_below &= !nodes_[c].spec->pcie;
        if (conventional_below) n.port_type = kPcieToPci;
      } else if (n.parent < 0 && f.link_gts == 0) {
        n.port_type = kRcEndpoint;
      } else {
        n.port_type = kEndpoint;
      }
      uint8_t sub = f.is_bridge() ? f.secondary_bus : 0;
      for (int c : n.children) {
        FEOS_TRY(walk(c, n.dir, depth + 1));
        sub = std::max({sub, nodes_[c].addr.bus(), nodes_[c].subordinate});
      }
      n.subordinate = f.is_bridge() ? (f.subordinate_bus ? f.subordinate_bus : sub) : 0;
      return ok();
    };
    for (int r : roots_) {
      char host_bridge[32];
      std::snprintf(host_bridge, sizeof host_bridge, "pci%04x:%02x", nodes_[r].addr.domain(), nodes_[r].addr.bus());
      FEOS_TRY(walk(r, paths_.sysfs_root + "/devices/" + host_bridge, 0));
    }
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].dir.empty()) return fail(Code::kInvalidArgument, "bridge loop at " + nodes_[i].spec->bdf);
    return ok();
  }

  Status take(uint64_t& cursor, uint64_t limit, uint64_t size, const std::string& what, Range& out) {
    uint64_t start = align_up(cursor, size);
    if (start + size - 1 > limit || start + size < start)
      return fail(Code::kInvalidArgument, what + ": address space exhausted");
    out.start = start;
    out.end = start + size - 1;
    cursor = start + size;
    return ok();
  }

  // Depth-first like a BIOS, so every bridge's devices lie inside one window per space.
  Status allocate() {
    std::function<Status(int, Span&, Span&, Span&)> place = [&](int i, Span& mem, Span& pref, Span& io) -> Status {
      Node& n = nodes_[i];
      const FunctionSpec& f = *n.spec;
      n.irq = f.is_bridge() ? 0 : 16 + static_cast<int>(i % 200);
      for (const auto& b : f.bars) {
        Range& r = n.bars[static_cast<size_t>(b.index)];
        r.flags = bar_flags(b.type);
        const std::string what = f.bdf + " BAR" + std::to_string(b.index);
        if (b.type == BarType::kIo) {
          FEOS_TRY(take(io_, kIoLimit, b.size, what, r));
          io.add(r.start, r.end);
        } else if (b.type == BarType::kMem64Prefetch) {
          FEOS_TRY(take(mem64_, kMem64Limit, b.size, what, r));
          pref.add(r.start, r.end);
        } else {
          // Non-prefetchable windows are 32-bit: a 64-bit non-prefetchable BAR lands below 4 GiB.
          FEOS_TRY(take(mem32_, kMem32Limit, b.size, what, r));
          mem.add(r.start, r.end);
        }
      }
      if (f.rom_size) {
        n.rom.flags = kRomFlags;
        FEOS_TRY(take(mem32_, kMem32Limit, f.rom_size, f.bdf + " ROM", n.rom));
        mem.add(n.rom.start, n.rom.end);
      }
      if (!f.is_bridge()) return ok();
      mem32_ = align_up(mem32_, kMiB);
      mem64_ = align_up(mem64_, kMiB);
      io_ = align_up(io_, 4 * kKiB);
      Span cmem, cpref, cio;
      for (int c : n.children) FEOS_TRY(place(c, cmem, cpref, cio));
      mem32_ = align_up(mem32_, kMiB);
      mem64_ = align_up(mem64_, kMiB);
      io_ = align_up(io_, 4 * kKiB);
      if (!cmem.empty()) n.mem_win = {cmem.lo & ~(kMiB - 1), align_up(cmem.hi + 1, kMiB) - 1, kMemWindowFlags};
      if (!cpref.empty()) n.pref_win = {cpref.lo & ~(kMiB - 1), align_up(cpref.hi + 1, kMiB) - 1, kPrefWindowFlags};
      if (!cio.empty()) n.io_win = {cio.lo & ~(4 * kKiB - 1), align_up(cio.hi + 1, 4 * kKiB) - 1, kIoWindowFlags};
      mem.add(cmem);
      pref.add(cpref);
      io.add(cio);
      return ok();
    };
    for (int r : roots_) {
      Span mem, pref, io;
      FEOS_TRY(place(r, mem, pref, io));
    }
    return ok();
  }

  Status modules() {
    // A driver's module is loaded unless the description says otherwise.
    loaded_ = {};
    for (const auto& [name, on] : host_.modules()) loaded_[name] = on;
    auto need = [&](const std::string& driver, const std::string& bdf, bool bound) -> Status {
      if (driver.empty()) return ok();
      const std::string m = module_of_driver(driver);
      if (m.empty()) {
        drivers_.insert(driver);
        return ok();
      }
      auto it = loaded_.find(m);
      if (it == loaded_.end()) it = loaded_.emplace(m, true).first;
      if (!it->second && bound)
        return fail(Code::kInvalidArgument, bdf + " is bound to " + driver + " but module " + m + " is not loaded");
      if (it->second) drivers_.insert(driver);
      return ok();
    };
    for (const auto& f : host_.functions()) {
      FEOS_TRY(need(f.driver, f.bdf, true));
      FEOS_TRY(need(f.native_driver.empty() ? f.driver : f.native_driver, f.bdf, false));
    }
    if (auto it = loaded_.find("vfio_pci"); it != loaded_.end() && it->second) drivers_.insert("vfio-pci");
    return ok();
  }

  Status skeleton() {
    const std::string& sys = paths_.sysfs_root;
    FEOS_TRY(make_dirs(sys + "/bus/pci/devices"));
    FEOS_TRY(make_dirs(sys + "/bus/pci/drivers"));
    FEOS_TRY(make_dirs(sys + "/kernel/iommu_groups"));
    FEOS_TRY(make_dirs(sys + "/module"));
    FEOS_TRY(make_dirs(paths_.dev_root));
    FEOS_TRY(make_dirs(paths_.proc_root));
    FEOS_TRY(write_text(sys + "/bus/pci/drivers_probe", "", 0200));
    FEOS_TRY(write_text(sys + "/bus/pci/drivers_autoprobe", "1\n"));
    FEOS_TRY(write_text(sys + "/bus/pci/rescan", "", 0200));
    for (const auto& [m, on] : loaded_)
      if (on) FEOS_TRY(detail::create_module_dir(sys, m));
    for (const auto& d : drivers_) FEOS_TRY(detail::create_driver_dir(sys, d, module_of_driver(d)));
    return ok();
  }

  std::string cpulist(int node) const {
    const int per = host_.cpus_per_node();
    if (node < 0) return "0-" + std::to_string(2 * per - 1);
    return std::to_string(node * per) + "-" + std::to_string(node * per + per - 1);
  }

  std::string config_space(const Node& n) const {
    const FunctionSpec& f = *n.spec;
    std::string c(f.pcie ? 4096 : 256, '\0');
    auto put8 = [&](size_t off, uint32_t v) { c[off] = static_cast<char>(v & 0xff); };
    auto put16 = [&](size_t off, uint32_t v) { put8(off, v); put8(off + 1, v >> 8); };
    auto put32 = [&](size_t off, uint64_t v) {
      put16(off, static_cast<uint32_t>(v & 0xffff));
      put16(off + 2, static_cast<uint32_t>((v >> 16) & 0xffff));
    };
    const uint16_t sv = f.subsystem_vendor ? f.subsystem_vendor : f.vendor;
    put16(0x00, f.vendor);
    put16(0x02, f.device);
    const bool has_io = std::any_of(f.bars.begin(), f.bars.end(), [](const BarSpec& b) { return b.type == BarType::kIo; });
    // Command: memory (and I/O when it has I/O BARs or windows) decoding and bus master, once enabled.
    put16(0x04, f.driver.empty() ? 0x0000 : ((has_io || n.io_win.used()) ? 0x0407 : 0x0406));
    put16(0x06, f.pcie ? 0x0010 : 0x0000);  // capability list
    put8(0x08, f.revision);
    put8(0x09, f.class_code);
    put8(0x0a, f.class_code >> 8);
    put8(0x0b, f.class_code >> 16);
    put8(0x0c, 0x10);
    put8(0x0e, (f.is_bridge() ? 0x01 : 0x00) | (n.multifunction ? 0x80 : 0x00));
    for (size_t i = 0; i < 6; ++i) {
      const Range& r = n.bars[i];
      if (!r.used()) continue;
      auto type = std::find_if(f.bars.begin(), f.bars.end(), [&](const BarSpec& b) { return b.index == int(i); })->type;
      put32(0x10 + 4 * i, (r.start & 0xffffffffull) | bar_type_bits(type));
      if (is_64(type)) put32(0x10 + 4 * (i + 1), r.start >> 32);
    }
    if (f.is_bridge()) {
      put8(0x18, n.addr.bus());
      put8(0x19, f.secondary_bus);
      put8(0x1a, n.subordinate);
      if (n.io_win.used()) {
        put8(0x1c, (n.io_win.start >> 8) & 0xf0);
        put8(0x1d, (n.io_win.end >> 8) & 0xf0);
      } else {
        put8(0x1c, 0xf0);
      }
      if (n.mem_win.used()) {
        put16(0x20, (n.mem_win.start >> 16) & 0xfff0);
        put16(0x22, (n.mem_win.end >> 16) & 0xfff0);
      } else {
        put16(0x20, 0xfff0);
      }
      if (n.pref_win.used()) {
        put16(0x24, ((n.pref_win.start >> 16) & 0xfff0) | 1);
        put16(0x26, ((n.pref_win.end >> 16) & 0xfff0) | 1);
        put32(0x28, n.pref_win.start >> 32);
        put32(0x2c, n.pref_win.end >> 32);
      } else {
        put16(0x24, 0xfff1);
        put16(0x26, 0x0001);
      }
      if (n.rom.used()) put32(0x38, n.rom.start);
    } else {
      put16(0x2c, sv);
      put16(0x2e, f.subsystem_device);
      if (n.rom.used()) put32(0x30, n.rom.start);
      put8(0x3c, n.irq);
      put8(0x3d, 1);  // INTA
    }
    if (f.pcie) {
      put8(0x34, 0x40);
      const size_t cap = 0x40;
      put8(cap, 0x10);  // PCI Express capability, last in the list
      const bool slot = n.port_type == kRootPort || n.port_type == kDownstream;
      put16(cap + 2, 0x2 | (n.port_type << 4) | (slot ? 0x100 : 0));
      const bool flr = std::find(f.reset_methods.begin(), f.reset_methods.end(), "flr") != f.reset_methods.end();
      put32(cap + 4, 0x1 | (flr ? (1u << 28) : 0));  // 256-byte max payload, FLR
      const double max_gts = f.max_link_gts ? f.max_link_gts : f.link_gts;
      const int max_width = f.max_link_width ? f.max_link_width : f.link_width;
      if (n.port_type != kRcEndpoint) {
        put32(cap + 0x0c, static_cast<uint32_t>(speed_code(max_gts) | (max_width << 4)) | (uint32_t{n.addr.device()} << 24));
        put16(cap + 0x12, static_cast<uint32_t>(speed_code(f.link_gts) | (f.link_width << 4)));
        const int max_code = speed_code(max_gts);
        if (max_code) put32(cap + 0x2c, ((1u << (max_code + 1)) - 2));  // supported speeds
      }
    }
    return c;
  }

  std::string resource_text(const Node& n) const {
    std::string out;
    auto line = [&](const Range& r) {
      char buf[80];
      std::snprintf(buf, sizeof buf, "0x%016llx 0x%016llx 0x%016llx\n", static_cast<unsigned long long>(r.start),
                    static_cast<unsigned long long>(r.end), static_cast<unsigned long long>(r.used() ? r.flags : 0));
      out += buf;
    };
    for (const auto& r : n.bars) line(r);
    line(n.rom);
    if (n.spec->is_bridge()) {  // bridge windows, then the unused fourth bridge resource
      line(n.io_win);
      line(n.mem_win);
      line(n.pref_win);
      line(Range{});
    }
    return out;
  }

  Status write_function(const Node& n) {
    const FunctionSpec& f = *n.spec;
    const std::string& dir = n.dir;
    const std::string& sys = paths_.sysfs_root;
    FEOS_TRY(make_dirs(dir));
    FEOS_TRY(make_relative_link(sys + "/bus/pci/devices/" + f.bdf, dir));
    const uint16_t sv = f.subsystem_vendor ? f.subsystem_vendor : f.vendor;
    char modalias[96];
    std::snprintf(modalias, sizeof modalias, "pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X", f.vendor, f.device, sv,
                  f.subsystem_device, (f.class_code >> 16) & 0xff, (f.class_code >> 8) & 0xff, f.class_code & 0xff);
    char ids[64];
    std::snprintf(ids, sizeof ids, "PCI_ID=%04X:%04X\nPCI_SUBSYS_ID=%04X:%04X\n", f.vendor, f.device, sv,
                  f.subsystem_device);
    char cls[32];
    std::snprintf(cls, sizeof cls, "PCI_CLASS=%X\n", f.class_code);
    std::string uevent = (f.driver.empty() ? "" : "DRIVER=" + f.driver + "\n") + cls + ids + "PCI_SLOT_NAME=" +
                         f.bdf + "\nMODALIAS=" + modalias + "\n";
    std::vector<std::pair<const char*, std::string>> attrs = {
        {"vendor", hex(f.vendor, 4) + "\n"},
        {"device", hex(f.device, 4) + "\n"},
        {"subsystem_vendor", hex(sv, 4) + "\n"},
        {"subsystem_device", hex(f.subsystem_device, 4) + "\n"},
        {"class", hex(f.class_code, 6) + "\n"},
        {"revision", hex(f.revision, 2) + "\n"},
        {"irq", std::to_string(n.irq) + "\n"},
        {"numa_node", std::to_string(f.numa_node) + "\n"},
        {"local_cpulist", cpulist(f.numa_node) + "\n"},
        {"enable", f.driver.empty() || f.driver == "vfio-pci" ? "0\n" : "1\n"},
        {"driver_override", (f.driver_override.empty() ? std::string("(null)") : f.driver_override) + "\n"},
        {"msi_bus", "1\n"},
        {"d3cold_allowed", "1\n"},
        {"power_state", "D0\n"},
        {"broken_parity_status", "0\n"},
        {"dma_mask_bits", "64\n"},
        {"consistent_dma_mask_bits", "64\n"},
        {"ari_enabled", "0\n"},
        {"modalias", std::string(modalias) + "\n"},
        {"uevent", uevent},
        {"resource", resource_text(n)},
        {"config", config_space(n)},
    };
    if (f.is_vga()) attrs.emplace_back("boot_vga", f.boot_vga.value_or(false) ? "1\n" : "0\n");
    if (!f.reset_methods.empty()) {
      std::string methods;
      for (const auto& m : f.reset_methods) methods += (methods.empty() ? "" : " ") + m;
      attrs.emplace_back("reset_method", methods + "\n");
    }
    if (f.pcie) {
      const double max_gts = f.max_link_gts ? f.max_link_gts : f.link_gts;
      const int max_width = f.max_link_width ? f.max_link_width : f.link_width;
      attrs.emplace_back("current_link_speed", speed_text(f.link_gts) + "\n");
      attrs.emplace_back("current_link_width", std::to_string(f.link_width) + "\n");
      attrs.emplace_back("max_link_speed", speed_text(max_gts) + "\n");
      attrs.emplace_back("max_link_width", std::to_string(max_width) + "\n");
    }
    if (f.is_bridge()) {
      attrs.emplace_back("secondary_bus_number", std::to_string(f.secondary_bus) + "\n");
      attrs.emplace_back("subordinate_bus_number", std::to_string(n.subordinate) + "\n");
    }
    for (const auto& [name, text] : attrs) FEOS_TRY(write_text(dir + "/" + name, text, 0644));
    for (const char* name : {"remove", "rescan"}) FEOS_TRY(write_text(dir + "/" + name, "", 0200));
    if (!f.reset_methods.empty()) FEOS_TRY(write_text(dir + "/reset", "", 0200));
    FEOS_TRY(make_relative_link(dir + "/subsystem", sys + "/bus/pci"));

    if (!f.driver.empty()) {
      const std::string drv = sys + "/bus/pci/drivers/" + f.driver;
      FEOS_TRY(make_relative_link(dir + "/driver", drv));
      FEOS_TRY(make_relative_link(drv + "/" + f.bdf, dir));
    }
    if (f.iommu_group) {
      const std::string g = sys + "/kernel/iommu_groups/" + std::to_string(*f.iommu_group);
      if (made_groups_.insert(*f.iommu_group).second) {
        FEOS_TRY(make_dirs(g + "/devices"));
        FEOS_TRY(write_text(g + "/type", "DMA-FQ\n"));
        FEOS_TRY(write_text(g + "/reserved_regions", "0x00000000fee00000 0x00000000feefffff msi\n"));
      }
      FEOS_TRY(make_relative_link(g + "/devices/" + f.bdf, dir));
      FEOS_TRY(make_relative_link(dir + "/iommu_group", g));
      if (f.driver == "vfio-pci") {
        FEOS_TRY(make_dirs(paths_.dev_root + "/vfio"));
        FEOS_TRY(write_text(paths_.dev_root + "/vfio/" + std::to_string(*f.iommu_group), ""));
      }
    }
    if (!f.physfn.empty()) {
      auto pf_addr = pci::Address::parse(f.physfn);
      auto pf = pf_addr ? by_addr_.find(*pf_addr) : by_addr_.end();
      if (pf == by_addr_.end()) return fail(Code::kInvalidArgument, f.bdf + ": physfn " + f.physfn + " not described");
      const Node& p = nodes_[static_cast<size_t>(pf->second)];
      FEOS_TRY(make_relative_link(dir + "/physfn", p.dir));
      int vf = vf_count_[pf->second]++;
      FEOS_TRY(make_relative_link(p.dir + "/virtfn" + std::to_string(vf), dir));
      FEOS_TRY(write_text(p.dir + "/sriov_numvfs", std::to_string(vf + 1) + "\n"));
    }
    const std::string native = f.native_driver.empty() ? f.driver : f.native_driver;
    if (f.drm && !f.driver.empty() && f.driver == native)
      FEOS_TRY(detail::create_drm_nodes(dir, paths_.dev_root, *f.drm));
    return ok();
  }

  Status dev_nodes() {
    const std::string& dev = paths_.dev_root;
    std::vector<const Node*> sorted;
    for (const auto& n : nodes_) sorted.push_back(&n);
    std::sort(sorted.begin(), sorted.end(), [](const Node* a, const Node* b) { return a->addr < b->addr; });
    int gpus = 0, switches = 0;
    for (const Node* n : sorted) {
      const FunctionSpec& f = *n->spec;
      const std::string native = f.native_driver.empty() ? f.driver : f.native_driver;
      if (native == "nvidia" && (f.class_code >> 16) == 0x03) FEOS_TRY(write_text(dev + "/nvidia" + std::to_string(gpus++), ""));
      if (native == "nvidia-nvswitch")
        FEOS_TRY(write_text(dev + "/nvidia-nvswitch" + std::to_string(switches++), ""));
    }
    if (gpus) FEOS_TRY(write_text(dev + "/nvidiactl", ""));
    if (switches) FEOS_TRY(write_text(dev + "/nvidia-nvswitchctl", ""));
    if (auto it = loaded_.find("vfio_pci"); it != loaded_.end() && it->second) {
      FEOS_TRY(make_dirs(dev + "/vfio"));
      FEOS_TRY(write_text(dev + "/vfio/vfio", ""));
    }
    for (const auto& rel : host_.extra_dev_nodes()) {
      if (rel.empty() || rel[0] == '/' || rel.find("..") != std::string::npos)
        return fail(Code::kInvalidArgument, "dev node must be a relative path without '..': " + rel);
      const std::string path = dev + "/" + rel;
      FEOS_TRY(make_dirs(path.substr(0, path.rfind('/'))));
      FEOS_TRY(write_text(path, ""));
    }
    return ok();
  }

  // <sysfs>/devices/system/node/online: nodes 0 up to the highest a device names ("0" without).
  Status numa_nodes() {
    int highest = 0;
    for (const auto& node : nodes_) highest = std::max(highest, node.spec->numa_node);
    const std::string dir = paths_.sysfs_root + "/devices/system/node";
    FEOS_TRY(make_dirs(dir));
    return write_text(dir + "/online", (highest > 0 ? "0-" + std::to_string(highest) : std::string("0")) + "\n", 0444);
  }

  Status processes() {
    // Entries that are not processes, as every /proc has: scanners must skip them.
    FEOS_TRY(make_dirs(paths_.proc_root + "/sys/kernel"));
    FEOS_TRY(write_text(paths_.proc_root + "/meminfo", "MemTotal:       263842304 kB\n", 0444));
    std::string cpuinfo = "processor\t: 0\nmodel name\t: feos-fake-sysfs CPU\n";
    if (host_.cpu_address_bits() > 0)
      cpuinfo += "address sizes\t: " + std::to_string(host_.cpu_address_bits()) + " bits physical, 57 bits virtual\n";
    FEOS_TRY(write_text(paths_.proc_root + "/cpuinfo", cpuinfo + "\n", 0444));
    std::set<int> pids;
    for (const auto& p : host_.processes()) {
      if (p.pid <= 0 || !pids.insert(p.pid).second)
        return fail(Code::kInvalidArgument, "process id " + std::to_string(p.pid) + " invalid or duplicate");
      const std::string dir = paths_.proc_root + "/" + std::to_string(p.pid);
      FEOS_TRY(make_dirs(dir + "/fd"));
      FEOS_TRY(write_text(dir + "/comm", p.comm + "\n", 0644));
      FEOS_TRY(write_text(dir + "/cmdline", p.comm + std::string(1, '\0'), 0444));
      for (const auto& [fd, target] : p.fds) {
        std::string t = target.rfind("dev:", 0) == 0 ? paths_.dev_root + "/" + target.substr(4) : target;
        std::error_code ec;
        std::filesystem::create_symlink(t, dir + "/fd/" + std::to_string(fd), ec);
        if (ec) return fail(Code::kInternal, "symlink " + dir + "/fd/" + std::to_string(fd) + ": " + ec.message());
      }
    }
    return ok();
  }

  const HostBuilder& host_;
  std::string root_;
  sys::HostPaths paths_;
  std::vector<Node> nodes_;
  std::vector<int> roots_;
  std::map<pci::Address, int> by_addr_;
  std::map<int, int> vf_count_;
  std::set<int> made_groups_;
  std::map<std::string, bool> loaded_;
  std::set<std::string> drivers_;
  uint64_t mem32_ = kMem32Base, mem64_ = kMem64Base, io_ = kIoBase;
};

}  // namespace

// ---- FunctionRef ----

FunctionSpec& FunctionRef::spec() { return host_->functions_.at(index_); }
FunctionRef& FunctionRef::driver(std::string name) {
  spec().driver = name;
  spec().native_driver = std::move(name);
  return *this;
}
FunctionRef& FunctionRef::bound_to(std::string name) {
  if (spec().native_driver.empty()) spec().native_driver = spec().driver;
  spec().driver = std::move(name);
  return *this;
}
FunctionRef& FunctionRef::unbound() {
  if (spec().native_driver.empty()) spec().native_driver = spec().driver;
  spec().driver.clear();
  return *this;
}
FunctionRef& FunctionRef::native_driver(std::string name) {
  spec().native_driver = std::move(name);
  return *this;
}
FunctionRef& FunctionRef::override_driver(std::string name) {
  spec().driver_override = std::move(name);
  return *this;
}
FunctionRef& FunctionRef::group(int group) {
  spec().iommu_group = group;
  return *this;
}
FunctionRef& FunctionRef::no_group() {
  spec().iommu_group.reset();
  return *this;
}
FunctionRef& FunctionRef::numa(int node) {
  spec().numa_node = node;
  return *this;
}
FunctionRef& FunctionRef::subsystem(uint16_t vendor, uint16_t device) {
  spec().subsystem_vendor = vendor;
  spec().subsystem_device = device;
  return *this;
}
FunctionRef& FunctionRef::revision(uint8_t revision) {
  spec().revision = revision;
  return *this;
}
FunctionRef& FunctionRef::bar(int index, uint64_t size, BarType type) {
  spec().bars.push_back({index, size, type});
  return *this;
}
FunctionRef& FunctionRef::rom(uint64_t size) {
  spec().rom_size = size;
  return *this;
}
FunctionRef& FunctionRef::boot_vga(bool on) {
  spec().boot_vga = on;
  return *this;
}
FunctionRef& FunctionRef::reset_methods(std::vector<std::string> methods) {
  spec().reset_methods = std::move(methods);
  return *this;
}
FunctionRef& FunctionRef::link(double gts, int width) { return link(gts, width, gts, width); }
FunctionRef& FunctionRef::link(double gts, int width, double max_gts, int max_width) {
  auto& s = spec();
  s.pcie = true;
  s.link_gts = gts;
  s.link_width = width;
  s.max_link_gts = max_gts;
  s.max_link_width = max_width;
  return *this;
}
FunctionRef& FunctionRef::conventional() {
  auto& s = spec();
  s.pcie = false;
  s.link_gts = s.max_link_gts = 0;
  s.link_width = s.max_link_width = 0;
  return *this;
}
FunctionRef& FunctionRef::secondary(uint8_t bus, uint8_t subordinate) {
  spec().secondary_bus = bus;
  spec().subordinate_bus = subordinate;
  return *this;
}
FunctionRef& FunctionRef::drm(int card, int render) {
  spec().drm = DrmNodes{card, render};
  return *this;
}
FunctionRef& FunctionRef::physfn(std::string pf_bdf) {
  spec().physfn = std::move(pf_bdf);
  return *this;
}

// ---- ProcessRef ----

ProcessSpec& ProcessRef::spec() { return host_->processes_.at(index_); }
ProcessRef& ProcessRef::open_dev(int fd, std::string dev_relative) {
  spec().fds[fd] = "dev:" + dev_relative;
  return *this;
}
ProcessRef& ProcessRef::fd(int fd, std::string target) {
  spec().fds[fd] = std::move(target);
  return *this;
}

// ---- HostBuilder ----

FunctionRef HostBuilder::device(FunctionSpec spec) {
  functions_.push_back(std::move(spec));
  return FunctionRef(*this, functions_.size() - 1);
}

FunctionRef HostBuilder::device(std::string bdf, uint16_t vendor, uint16_t device, uint32_t class_code) {
  FunctionSpec s;
  s.bdf = std::move(bdf);
  s.vendor = vendor;
  s.device = device;
  s.class_code = class_code;
  return this->device(std::move(s));
}

FunctionRef HostBuilder::bridge(std::string bdf, uint16_t vendor, uint16_t device, uint8_t secondary) {
  auto ref = this->device(std::move(bdf), vendor, device, 0x060400);
  ref.driver("pcieport").secondary(secondary).reset_methods({}).link(16, 16);
  return ref;
}

FunctionRef HostBuilder::function(const std::string& bdf) {
  for (size_t i = 0; i < functions_.size(); ++i)
    if (functions_[i].bdf == bdf) return FunctionRef(*this, i);
  throw std::out_of_range("no function " + bdf + " in the host description");
}

bool HostBuilder::has_function(const std::string& bdf) const {
  return std::any_of(functions_.begin(), functions_.end(), [&](const FunctionSpec& f) { return f.bdf == bdf; });
}

bool HostBuilder::remove_function(const std::string& bdf) {
  auto it = std::find_if(functions_.begin(), functions_.end(), [&](const FunctionSpec& f) { return f.bdf == bdf; });
  if (it == functions_.end()) return false;
  functions_.erase(it);
  return true;
}

HostBuilder& HostBuilder::module(std::string name, bool loaded) {
  modules_[std::move(name)] = loaded;
  return *this;
}

HostBuilder& HostBuilder::dev_node(std::string relative) {
  dev_nodes_.push_back(std::move(relative));
  return *this;
}

ProcessRef HostBuilder::process(int pid, std::string comm) {
  processes_.push_back(ProcessSpec{pid, std::move(comm), {}});
  return ProcessRef(*this, processes_.size() - 1);
}

HostBuilder& HostBuilder::cpus_per_node(int cpus) {
  cpus_per_node_ = cpus;
  return *this;
}

HostBuilder& HostBuilder::cpu_address_bits(int bits) {
  cpu_address_bits_ = bits;
  return *this;
}

KernelModel HostBuilder::model() const {
  KernelModel m;
  for (const auto& f : functions_) {
    m.native_drivers[f.bdf] = f.native_driver.empty() ? f.driver : f.native_driver;
    if (f.drm) m.drm[f.bdf] = *f.drm;
  }
  return m;
}

Result<HostTree> HostBuilder::build(const std::string& root) const {
  if (root.empty() || root[0] != '/') return fail(Code::kInvalidArgument, "tree root must be absolute: " + root);
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  return Writer(*this, r).run();
}

}  // namespace feos::test
