#include "support/fake_kernel.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "support/tree_util.h"

namespace feos::test {
namespace fs = std::filesystem;

namespace {

using sys::code_for_errno;  // the same errno -> code mapping as PosixFilesystem

tl::unexpected<Error> write_error(const std::string& path, std::string_view value, int err, std::string_view why = {}) {
  std::string msg = "write '" + std::string(value) + "' to " + path + ": " + std::strerror(err);
  if (!why.empty()) msg += " (" + std::string(why) + ")";
  return fail(code_for_errno(err), std::move(msg));
}

// Replaces an attribute's content the way sysfs shows it: a concurrent reader sees the old or the
// new value, never an empty or half-written file (a plain O_TRUNC rewrite would show it empty for
// a moment, which no real sysfs attribute does). Write a sibling, then rename(2) over it; the
// file keeps its mode.
Status replace_text(const std::string& path, std::string_view data) {
  static std::atomic<uint64_t> counter{0};
  struct stat st {};
  const mode_t mode = ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644;
  const std::string tmp = path + ".feos-tmp-" + std::to_string(counter.fetch_add(1));
  FEOS_TRY(detail::write_text(tmp, data, mode));
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    return fail_errno("rename " + tmp + " to " + path, err);
  }
  return ok();
}

// sysfs_streq: the written name, without one trailing newline.
std::string strip_newline(std::string_view v) {
  if (!v.empty() && v.back() == '\n') v.remove_suffix(1);
  return std::string(v);
}

std::optional<uint16_t> parse_hex16(const std::string& s) {
  if (s.empty() || s.size() > 4) return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    v <<= 4;
    if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
    else return std::nullopt;
  }
  return static_cast<uint16_t>(v);
}

// new_id/remove_id take "vvvv dddd [...]" (hex, no 0x); only vendor and device are modelled.
std::optional<std::pair<uint16_t, uint16_t>> parse_id(std::string_view value) {
  std::istringstream in{std::string(value)};
  std::string v, d;
  if (!(in >> v >> d)) return std::nullopt;
  auto vendor = parse_hex16(v), device = parse_hex16(d);
  if (!vendor || !device) return std::nullopt;
  return std::make_pair(*vendor, *device);
}

std::optional<uint16_t> read_hex_attr(const sys::Filesystem& fs, const std::string& path) {
  auto text = fs.read_file(path);
  if (!text) return std::nullopt;
  std::string t = sys::trim(*text);
  if (t.rfind("0x", 0) == 0) t = t.substr(2);
  return parse_hex16(t);
}

std::string id_text(uint16_t v, uint16_t d) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04x:%04x", v, d);
  return buf;
}

}  // namespace

std::string_view op_name(Op op) {
  switch (op) {
    case Op::kAny: return "any";
    case Op::kDriverOverride: return "driver_override";
    case Op::kUnbind: return "unbind";
    case Op::kBind: return "bind";
    case Op::kDriversProbe: return "drivers_probe";
    case Op::kNewId: return "new_id";
    case Op::kRemoveId: return "remove_id";
    case Op::kReset: return "reset";
    case Op::kOther: return "other";
  }
  return "?";
}

Fault Fault::delay(std::chrono::milliseconds d, int times) { return Fault{Kind::kDelay, d, 0, times}; }
Fault Fault::busy(int times) { return Fault{Kind::kFail, {}, EBUSY, times}; }
Fault Fault::no_device(int times) { return Fault{Kind::kFail, {}, ENODEV, times}; }
Fault Fault::error(int errnum, int times) { return Fault{Kind::kFail, {}, errnum, times}; }
Fault Fault::hang(int times) { return Fault{Kind::kHang, {}, 0, times}; }
Fault Fault::crash() { return Fault{Kind::kCrash, {}, 0, 1}; }

void PrintTo(const Binding& b, std::ostream* os) {
  *os << "{driver=" << (b.driver.empty() ? "(none)" : b.driver)
      << " override=" << (b.override_driver.empty() ? "(null)" : b.override_driver) << "}";
}

void PrintTo(const WriteRecord& w, std::ostream* os) {
  *os << "{" << op_name(w.op) << " '" << w.value << "' -> " << w.path << " = " << code_name(w.result) << "}";
}

FakeKernel::FakeKernel(const HostTree& tree) : FakeKernel(tree.paths, tree.model) {}

FakeKernel::FakeKernel(sys::HostPaths paths, KernelModel model)
    : paths_(std::move(paths)), model_(std::move(model)), posix_(sys::make_posix_filesystem()) {
  std::error_code ec;
  auto sys_canonical = fs::canonical(paths_.sysfs_root, ec);
  if (!ec) sysfs_canonical_ = sys_canonical.string();
  auto names = posix_->list_dir(paths_.pci_devices());
  if (!names) return;  // no PCI devices: every write is classified, none finds a device
  for (const auto& bdf : *names) {
    DeviceInfo d;
    d.bdf = bdf;
    auto dir = fs::canonical(paths_.pci_device(bdf), ec);
    if (ec) continue;
    d.dir = dir.string();
    if (auto g = posix_->read_link(d.dir + "/iommu_group")) d.group = sys::basename_of(*g);
    d.vendor = read_hex_attr(*posix_, d.dir + "/vendor").value_or(0);
    d.device = read_hex_attr(*posix_, d.dir + "/device").value_or(0);
    if (auto cls = posix_->read_file(d.dir + "/class")) d.class_code = static_cast<uint32_t>(std::strtoul(cls->c_str(), nullptr, 16));
    if (auto it = model_.native_drivers.find(bdf); it != model_.native_drivers.end()) {
      d.native = it->second;
    } else if (auto link = posix_->read_link(d.dir + "/driver")) {
      d.native = sys::basename_of(*link);
    }
    if (auto it = model_.drm.find(bdf); it != model_.drm.end()) d.drm = it->second;
    if (auto methods = posix_->read_file(d.dir + "/reset_method")) d.has_reset = !sys::trim(*methods).empty();
    dir_to_bdf_[d.dir] = bdf;
    devices_.emplace(bdf, std::move(d));
  }
}

FakeKernel::~FakeKernel() {
  {
    std::unique_lock lk(mu_);
    shutting_down_ = true;
    cv_.notify_all();
    cv_.wait(lk, [&] { return in_flight_ == 0; });
  }
  if (udev_.joinable()) udev_.join();
}

void FakeKernel::set_vfio_node_delay(std::chrono::milliseconds delay) {
  std::lock_guard lk(mu_);
  vfio_node_delay_ = delay;
  if (delay.count() > 0 && !udev_.joinable()) udev_ = std::thread([this] { udev_loop(); });
}

void FakeKernel::udev_loop() {
  std::unique_lock lk(mu_);
  while (!shutting_down_) {
    if (pending_vfio_nodes_.empty()) {
      cv_.wait(lk);
      continue;
    }
    auto next = std::min_element(pending_vfio_nodes_.begin(), pending_vfio_nodes_.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    if (std::chrono::steady_clock::now() < next->second) {
      cv_.wait_until(lk, next->second);
      continue;
    }
    const std::string group = next->first;
    pending_vfio_nodes_.erase(next);
    if (group_uses_vfio(group, "")) {
      (void)detail::make_dirs(paths_.dev_root + "/vfio");
      (void)detail::write_text(paths_.vfio_group(group), "");
    }
  }
}

bool FakeKernel::group_uses_vfio(const std::string& group, const std::string& except_bdf) const {
  for (const auto& [bdf, d] : devices_)
    if (bdf != except_bdf && d.group == group && current_driver(d) == "vfio-pci") return true;
  return false;
}

Result<std::string> FakeKernel::read_file(const std::string& path) const { return posix_->read_file(path); }
Result<std::vector<std::string>> FakeKernel::list_dir(const std::string& path) const { return posix_->list_dir(path); }
Result<std::string> FakeKernel::read_link(const std::string& path) const { return posix_->read_link(path); }
bool FakeKernel::exists(const std::string& path) const { return posix_->exists(path); }

FakeKernel::Classified FakeKernel::classify(const std::string& path, std::string_view value) const {
  Classified c;
  fs::path p(path);
  if (!p.is_absolute() || sysfs_canonical_.empty()) return c;
  std::error_code ec;
  auto parent = fs::canonical(p.parent_path(), ec);
  if (ec) {
    // Under the sysfs root but the directory does not exist (e.g. <dev>/driver/unbind of an
    // unbound device): the kernel's open() fails with ENOENT.
    auto rel = p.lexically_normal().lexically_relative(paths_.sysfs_root);
    if (!rel.empty() && *rel.begin() != "..") {
      c.in_sysfs = true;
      c.code = Code::kNotFound;
      c.error = "write '" + std::string(value) + "' to " + path + ": " + std::strerror(ENOENT);
    }
    return c;
  }
  auto rel = parent.lexically_relative(sysfs_canonical_);
  if (rel.empty() || *rel.begin() == "..") return c;
  c.in_sysfs = true;
  const std::string name = p.filename().string();
  std::vector<std::string> parts;
  for (const auto& part : rel)
    if (part != ".") parts.push_back(part.string());
  if (parts.size() == 2 && parts[0] == "bus" && parts[1] == "pci" && name == "drivers_probe") {
    c.op = Op::kDriversProbe;
    c.bdf = strip_newline(value);
  } else if (parts.size() == 4 && parts[0] == "bus" && parts[1] == "pci" && parts[2] == "drivers") {
    c.driver = parts[3];
    if (name == "bind") c.op = Op::kBind;
    else if (name == "unbind") c.op = Op::kUnbind;
    else if (name == "new_id") c.op = Op::kNewId;
    else if (name == "remove_id") c.op = Op::kRemoveId;
    if (c.op == Op::kBind || c.op == Op::kUnbind) c.bdf = strip_newline(value);
  } else if (auto it = dir_to_bdf_.find(parent.string()); it != dir_to_bdf_.end()) {
    c.bdf = it->second;
    if (name == "driver_override") c.op = Op::kDriverOverride;
    else if (name == "reset") c.op = Op::kReset;
  }
  return c;
}

Status FakeKernel::write_file(const std::string& path, std::string_view data) {
  const Classified c = classify(path, data);
  std::unique_lock lk(mu_);
  if (shutting_down_) return fail(Code::kUnavailable, "write to " + path + ": fake kernel is shutting down");
  if (crashed_) {
    ++lost_writes_;
    return fail(Code::kUnavailable, "write '" + std::string(data) + "' to " + path +
                                        " lost: the daemon crashed (injected fault)");
  }

  // Faults that match this write, in injection order.
  std::chrono::milliseconds delay{0};
  std::optional<FaultId> hang;
  int fail_errno_value = 0;
  for (auto& [id, r] : rules_) {
    const FaultRule& rule = r.rule;
    if (rule.op != Op::kAny && rule.op != c.op) continue;
    if (!rule.bdf.empty() && rule.bdf != c.bdf) continue;
    if (!rule.driver.empty() && rule.driver != c.driver) continue;
    if (r.remaining == 0) continue;
    if (r.remaining_skip > 0) {
      --r.remaining_skip;
      continue;
    }
    if (r.remaining > 0) --r.remaining;
    switch (rule.fault.kind) {
      case Fault::Kind::kCrash:
        crashed_ = true;
        ++lost_writes_;
        return fail(Code::kUnavailable, "write '" + std::string(data) + "' to " + path +
                                            " lost: the daemon crashed (injected fault)");
      case Fault::Kind::kDelay: delay += rule.fault.duration; break;
      case Fault::Kind::kHang:
        if (!hang) hang = id;
        break;
      case Fault::Kind::kFail:
        if (!fail_errno_value) fail_errno_value = rule.fault.errnum;
        break;
    }
  }

  ++in_flight_;
  auto leave = [&] {
    --in_flight_;
    cv_.notify_all();
  };
  if (delay.count() > 0) cv_.wait_for(lk, delay, [&] { return shutting_down_; });
  if (hang && !shutting_down_) {
    ++hung_;
    cv_.notify_all();
    const uint64_t generation = hang_generation_;
    const FaultId id = *hang;
    cv_.wait(lk, [&] { return shutting_down_ || hang_generation_ != generation || !rules_.count(id); });
    --hung_;
  }
  if (shutting_down_) {
    leave();
    return fail(Code::kUnavailable, "write '" + std::string(data) + "' to " + path +
                                        ": fake kernel destroyed while the write was blocked");
  }

  Status st;
  if (fail_errno_value) st = write_error(path, data, fail_errno_value, "injected fault");
  else if (!c.error.empty()) st = fail(c.code, c.error);
  else st = apply(c, path, data);
  log_.push_back(WriteRecord{path, std::string(data), c.op, c.bdf, st ? Code::kOk : st.error().code});
  leave();
  return st;
}

const FakeKernel::DeviceInfo* FakeKernel::find_device(const std::string& bdf) const {
  auto it = devices_.find(bdf);
  return it == devices_.end() ? nullptr : &it->second;
}

std::string FakeKernel::current_driver(const DeviceInfo& d) const {
  auto link = posix_->read_link(d.dir + "/driver");
  return link ? sys::basename_of(*link) : std::string();
}

std::string FakeKernel::current_override(const DeviceInfo& d) const {
  auto text = posix_->read_file(d.dir + "/driver_override");
  if (!text) return {};
  std::string v = sys::trim(*text);
  return v == "(null)" ? std::string() : v;
}

bool FakeKernel::driver_loaded(const std::string& driver) const {
  return !driver.empty() && posix_->exists(paths_.pci_driver(driver));
}

bool FakeKernel::matches(const DeviceInfo& d, const std::string& driver) const {
  const std::string ov = current_override(d);
  if (!ov.empty()) return ov == driver;  // driver_override wins over every id table
  if (driver == d.native) return true;
  auto it = dynamic_ids_.find(driver);
  return it != dynamic_ids_.end() && it->second.count({d.vendor, d.device});
}

Status FakeKernel::attach(const DeviceInfo& d, const std::string& driver) {
  // vfio_pci_probe(): only normal (type 0 header) devices, and only with an IOMMU group.
  if (driver == "vfio-pci" && ((d.class_code >> 8) == 0x0604 || d.group.empty()))
    return fail(Code::kInvalidArgument, "vfio-pci: probe of " + d.bdf + " failed: " + std::strerror(EINVAL) +
                                            (d.group.empty() ? " (no IOMMU group)" : " (not a normal PCI device)"));
  const std::string drv_dir = paths_.pci_driver(driver);
  FEOS_TRY(detail::make_relative_link(d.dir + "/driver", drv_dir));
  FEOS_TRY(detail::make_relative_link(drv_dir + "/" + d.bdf, d.dir));
  FEOS_TRY(detail::set_uevent_driver(d.dir, driver));
  if (posix_->exists(d.dir + "/enable")) FEOS_TRY(replace_text(d.dir + "/enable", driver == "vfio-pci" ? "0\n" : "1\n"));
  if (driver == "vfio-pci" && !d.group.empty() && !posix_->exists(paths_.vfio_group(d.group))) {
    if (vfio_node_delay_.count() > 0) {
      pending_vfio_nodes_.emplace(d.group, std::chrono::steady_clock::now() + vfio_node_delay_);
      cv_.notify_all();
    } else {
      FEOS_TRY(detail::make_dirs(paths_.dev_root + "/vfio"));
      FEOS_TRY(detail::write_text(paths_.vfio_group(d.group), ""));
    }
  }
  if (d.drm && driver == d.native) FEOS_TRY(detail::create_drm_nodes(d.dir, paths_.dev_root, *d.drm));
  return ok();
}

Status FakeKernel::detach(const DeviceInfo& d) {
  const std::string driver = current_driver(d);
  if (driver.empty()) return ok();
  FEOS_TRY(detail::remove_path(d.dir + "/driver"));
  FEOS_TRY(detail::remove_path(paths_.pci_driver(driver) + "/" + d.bdf));
  FEOS_TRY(detail::set_uevent_driver(d.dir, ""));
  if (posix_->exists(d.dir + "/enable")) FEOS_TRY(replace_text(d.dir + "/enable", "0\n"));
  if (d.drm && posix_->exists(d.dir + "/drm")) FEOS_TRY(detail::remove_drm_nodes(d.dir, paths_.dev_root, *d.drm));
  if (driver == "vfio-pci" && !d.group.empty() && !group_uses_vfio(d.group, d.bdf)) {
    pending_vfio_nodes_.erase(d.group);
    FEOS_TRY(detail::remove_path(paths_.vfio_group(d.group)));
  }
  return ok();
}

void FakeKernel::attach_matching_unbound(const std::string& driver) {
  for (const auto& [bdf, d] : devices_)
    if (current_driver(d).empty() && matches(d, driver)) (void)attach(d, driver);
}

Status FakeKernel::apply(const Classified& c, const std::string& path, std::string_view value) {
  if (!c.in_sysfs) return posix_->write_file(path, value);
  const DeviceInfo* d = c.bdf.empty() ? nullptr : find_device(c.bdf);
  switch (c.op) {
    case Op::kDriverOverride: {
      if (value.size() >= 4095) return write_error(path, value, EINVAL);
      std::string v = strip_newline(value);
      return replace_text(path, (v.empty() ? std::string("(null)") : v) + "\n");
    }
    case Op::kUnbind:
      if (!d || current_driver(*d) != c.driver) return write_error(path, value, ENODEV, "not bound to " + c.driver);
      return detach(*d);
    case Op::kBind:
      if (!d || !matches(*d, c.driver)) return write_error(path, value, ENODEV, "driver does not match");
      if (!current_driver(*d).empty()) return write_error(path, value, EBUSY, "already bound");
      if (auto st = attach(*d, c.driver); !st) {
        if (st.error().code == Code::kInvalidArgument) return write_error(path, value, EINVAL, st.error().message);
        return fail(st.error());
      }
      return ok();
    case Op::kDriversProbe: {
      if (!d) return write_error(path, value, ENODEV);
      if (!current_driver(*d).empty()) return ok();
      const std::string ov = current_override(*d);
      if (!ov.empty()) {
        // A failing probe leaves the device unbound; the write itself succeeds.
        if (driver_loaded(ov)) (void)attach(*d, ov);
        return ok();
      }
      if (driver_loaded(d->native)) return attach(*d, d->native);
      for (const auto& [driver, ids] : dynamic_ids_)
        if (ids.count({d->vendor, d->device}) && driver_loaded(driver)) return attach(*d, driver);
      return ok();  // no driver matches: the kernel leaves it unbound and reports success
    }
    case Op::kNewId: {
      auto id = parse_id(value);
      if (!id) return write_error(path, value, EINVAL);
      if (!dynamic_ids_[c.driver].insert(*id).second) return write_error(path, value, EEXIST);
      attach_matching_unbound(c.driver);
      return ok();
    }
    case Op::kRemoveId: {
      auto id = parse_id(value);
      if (!id) return write_error(path, value, EINVAL);
      if (!dynamic_ids_[c.driver].erase(*id)) return write_error(path, value, ENODEV);
      return ok();
    }
    case Op::kReset:
      if (!posix_->exists(path)) return write_error(path, value, ENOENT);
      if (!d || !d->has_reset) return write_error(path, value, ENOTTY);
      if (strip_newline(value) != "1") return write_error(path, value, EINVAL);
      return ok();
    case Op::kAny:
    case Op::kOther: break;
  }
  const std::string name = fs::path(path).filename().string();
  static const std::set<std::string> kWritable = {
      "remove", "rescan", "sriov_numvfs", "sriov_drivers_autoprobe", "drivers_autoprobe", "d3cold_allowed",
      "broken_parity_status", "enable", "msi_bus", "reset_method", "uevent", "bind", "unbind", "new_id", "remove_id"};
  if (!posix_->exists(path)) return write_error(path, value, ENOENT);
  if (kWritable.count(name))
    return fail(Code::kUnimplemented, "write '" + std::string(value) + "' to " + path + ": the fake kernel does not model it");
  return write_error(path, value, EACCES, "read-only attribute");
}

// ---- faults ----

FakeKernel::FaultId FakeKernel::inject(FaultRule rule) {
  std::lock_guard lk(mu_);
  const FaultId id = next_fault_id_++;
  Rule r;
  r.remaining_skip = rule.skip;
  r.remaining = rule.fault.times < 0 ? -1 : rule.fault.times;
  r.rule = std::move(rule);
  rules_.emplace(id, std::move(r));
  return id;
}

void FakeKernel::remove_fault(FaultId id) {
  std::lock_guard lk(mu_);
  rules_.erase(id);
  cv_.notify_all();
}

void FakeKernel::clear_faults() {
  std::lock_guard lk(mu_);
  rules_.clear();
  ++hang_generation_;
  cv_.notify_all();
}

void FakeKernel::release_hangs() {
  std::lock_guard lk(mu_);
  std::erase_if(rules_, [](const auto& kv) { return kv.second.rule.fault.kind == Fault::Kind::kHang; });
  ++hang_generation_;
  cv_.notify_all();
}

size_t FakeKernel::hung_writes() const {
  std::lock_guard lk(mu_);
  return hung_;
}

bool FakeKernel::wait_for_hung_writes(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return hung_ >= n; });
}

void FakeKernel::revive() {
  std::lock_guard lk(mu_);
  crashed_ = false;
}

bool FakeKernel::crashed() const {
  std::lock_guard lk(mu_);
  return crashed_;
}

// ---- modules ----

std::string FakeKernel::module_of(const std::string& driver) const {
  if (auto it = model_.driver_modules.find(driver); it != model_.driver_modules.end()) return it->second;
  return module_of_driver(driver);
}

std::vector<std::string> FakeKernel::drivers_of_module(const std::string& module) const {
  std::set<std::string> candidates = {"vfio-pci"};
  for (const auto& [bdf, d] : devices_)
    if (!d.native.empty()) candidates.insert(d.native);
  for (const auto& [driver, m] : model_.driver_modules) candidates.insert(driver);
  if (auto names = posix_->list_dir(paths_.pci_drivers()))
    for (const auto& n : *names) candidates.insert(n);
  std::vector<std::string> out;
  for (const auto& d : candidates)
    if (module_of(d) == module) out.push_back(d);
  return out;
}

Status FakeKernel::load_module(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name.find("..") != std::string::npos)
    return fail(Code::kInvalidArgument, "invalid module name '" + name + "'");
  std::lock_guard lk(mu_);
  if (posix_->exists(paths_.kernel_module(name))) return ok();
  FEOS_TRY(detail::create_module_dir(paths_.sysfs_root, name));
  if (name == "vfio_pci") {
    FEOS_TRY(detail::make_dirs(paths_.dev_root + "/vfio"));
    FEOS_TRY(detail::write_text(paths_.dev_root + "/vfio/vfio", ""));
  }
  for (const auto& driver : drivers_of_module(name)) {
    FEOS_TRY(detail::create_driver_dir(paths_.sysfs_root, driver, name));
    attach_matching_unbound(driver);  // driver registration probes unbound devices
  }
  return ok();
}

Status FakeKernel::unload_module(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name.find("..") != std::string::npos)
    return fail(Code::kInvalidArgument, "invalid module name '" + name + "'");
  std::lock_guard lk(mu_);
  for (const auto& driver : drivers_of_module(name)) {
    for (const auto& [bdf, d] : devices_)
      if (current_driver(d) == driver) FEOS_TRY(detach(d));
    FEOS_TRY(detail::remove_path(paths_.pci_driver(driver)));
    dynamic_ids_.erase(driver);
  }
  return detail::remove_path(paths_.kernel_module(name));
}

bool FakeKernel::module_loaded(const std::string& name) const { return posix_->exists(paths_.kernel_module(name)); }

// ---- state ----

BindingSnapshot FakeKernel::snapshot() const {
  std::lock_guard lk(mu_);
  BindingSnapshot out;
  for (const auto& [bdf, d] : devices_) out[bdf] = Binding{current_driver(d), current_override(d)};
  return out;
}

std::vector<std::string> FakeKernel::vfio_groups() const {
  std::vector<std::string> out;
  auto names = posix_->list_dir(paths_.dev_root + "/vfio");
  if (!names) return out;
  for (const auto& n : *names)
    if (!n.empty() && std::all_of(n.begin(), n.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) out.push_back(n);
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  return out;
}

std::vector<std::string> FakeKernel::dynamic_ids() const {
  std::lock_guard lk(mu_);
  std::vector<std::string> out;
  for (const auto& [driver, ids] : dynamic_ids_)
    for (const auto& [v, d] : ids) out.push_back(driver + " " + id_text(v, d));
  return out;
}

Result<std::string> FakeKernel::native_driver(const std::string& bdf) const {
  const DeviceInfo* d = find_device(bdf);
  if (!d) return fail(Code::kNotFound, "fake kernel: no PCI device " + bdf);
  return d->native;
}

std::vector<WriteRecord> FakeKernel::writes() const {
  std::lock_guard lk(mu_);
  return log_;
}

size_t FakeKernel::write_count() const {
  std::lock_guard lk(mu_);
  return log_.size();
}

size_t FakeKernel::lost_write_count() const {
  std::lock_guard lk(mu_);
  return lost_writes_;
}

void FakeKernel::clear_writes() {
  std::lock_guard lk(mu_);
  log_.clear();
  lost_writes_ = 0;
}

}  // namespace feos::test
