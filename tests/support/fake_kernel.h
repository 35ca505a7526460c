#pragma once
// A sys::Filesystem over a sysfs-shaped tree (HostBuilder, or a materialized capture) that reacts
// to writes the way the Linux PCI core does, so hostdev code runs unchanged against it:
//
//   <dev>/driver_override  <- "vfio-pci" sets it, "" or "\n" clears it ("(null)")
//   drivers/<drv>/unbind   <- bdf: detach; NOT_FOUND (ENODEV) unless bound to <drv>
//   drivers/<drv>/bind     <- bdf: attach if <drv> matches (override == drv, or no override and
//                             drv is the native driver or has a new_id match); NOT_FOUND (ENODEV)
//                             if it does not match, FAILED_PRECONDITION (EBUSY) if already bound
//   bus/pci/drivers_probe  <- bdf: if unbound, attach the override driver (when loaded) or else the
//                             native driver; no-op when bound or when nothing matches
//   drivers/<drv>/new_id   <- "vvvv dddd": a dynamic id; unbound matching devices attach at once
//   drivers/<drv>/remove_id<- "vvvv dddd"
//   <dev>/reset            <- "1": OK when the device has a reset method
//
// Attaching to vfio-pci creates <dev_root>/vfio/<group> (removed when the group's last vfio-pci
// member detaches); attaching to the native driver of a DRM device creates its drm/ nodes. A
// device whose driver_override is X is never attached to another driver. drivers/vfio-pci exists
// only while module vfio_pci is loaded (load_module/unload_module).
//
// Paths may go through any link (bus/pci/devices/<bdf>/driver/unbind works). Writes to other
// attributes under the sysfs root fail with PERMISSION_DENIED (read-only, EACCES), writes outside
// it go to the real file. Reads are the real files' (PosixFilesystem). Thread-safe.
//
// vfio-pci refuses bridges (header type 1) and devices without an IOMMU group like the real
// driver: bind fails INVALID_ARGUMENT (EINVAL), drivers_probe leaves them unbound.
//
// Faults: `kernel.inject({.op = Op::kUnbind, .bdf = "0000:18:00.0", .fault = Fault::delay(200ms)})`.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "support/host_builder.h"
#include "support/kernel_model.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"

namespace feos::test {

// The kind of write, as the fake kernel classifies it.
enum class Op {
  kAny,  // matches every write (in fault rules)
  kDriverOverride,
  kUnbind,
  kBind,
  kDriversProbe,
  kNewId,
  kRemoveId,
  kReset,
  kOther,  // any other path (read-only attributes, files outside sysfs)
};
std::string_view op_name(Op op);

struct Fault {
  enum class Kind { kDelay, kFail, kHang, kCrash };
  Kind kind = Kind::kDelay;
  std::chrono::milliseconds duration{0};  // kDelay
  int errnum = 0;  // kFail: EBUSY or ENODEV (or any errno)
  // How many matching writes it applies to; -1: all of them until cleared.
  int times = -1;

  // Every matching write waits `d` (outside the kernel's lock: parallel writes overlap), then
  // takes effect.
  static Fault delay(std::chrono::milliseconds d, int times = -1);
  // The next `times` matching writes fail with EBUSY (FAILED_PRECONDITION), without effect.
  static Fault busy(int times = 1);
  // The next `times` matching writes fail with ENODEV (NOT_FOUND), without effect.
  static Fault no_device(int times = 1);
  // The next `times` matching writes fail with `errnum` (mapped like PosixFilesystem).
  static Fault error(int errnum, int times = 1);
  // Matching writes block until release_hangs(), clear_faults() (then they take effect) or the
  // FakeKernel's destruction (then they fail UNAVAILABLE without effect).
  static Fault hang(int times = -1);
  // The daemon "dies" at the matching write: it and every later write fail UNAVAILABLE and never
  // reach the kernel (not logged) until revive().
  static Fault crash();
};

struct FaultRule {
  Op op = Op::kAny;
  std::string bdf{};  // the device written about; "" matches any (and writes without one)
  std::string driver{};  // bind/unbind/new_id/remove_id: the driver directory; "" matches any
  int skip = 0;  // let this many matching writes through first
  Fault fault{};
};

// One write that reached the kernel (including ones the kernel or an injected fault rejected, and
// writes outside the sysfs root, which go to the real file).
struct WriteRecord {
  std::string path{};  // as passed to write_file
  std::string value{};  // verbatim
  Op op = Op::kOther;
  std::string bdf{};  // device concerned, "" if none
  Code result = Code::kOk;
  friend bool operator==(const WriteRecord&, const WriteRecord&) = default;
};

// A device's binding: the driver link's name ("" unbound) and driver_override ("" for "(null)").
struct Binding {
  std::string driver{};
  std::string override_driver{};
  friend bool operator==(const Binding&, const Binding&) = default;
};
using BindingSnapshot = std::map<std::string, Binding>;  // bdf -> binding
void PrintTo(const Binding& b, std::ostream* os);  // gtest: readable diffs
void PrintTo(const WriteRecord& w, std::ostream* os);

class FakeKernel final : public sys::Filesystem {
 public:
  using FaultId = uint64_t;

  // Over the tree under `paths` (sysfs_root must hold bus/pci/devices). Devices are discovered
  // now; native drivers not given in `model` are the drivers bound now.
  FakeKernel(sys::HostPaths paths, KernelModel model = {});
  // Over a HostBuilder tree.
  explicit FakeKernel(const HostTree& tree);
  // Releases hung and delayed writes (they fail UNAVAILABLE, without effect) and waits for every
  // write in progress to leave. Precondition: no write starts during destruction.
  ~FakeKernel() override;
  FakeKernel(const FakeKernel&) = delete;
  FakeKernel& operator=(const FakeKernel&) = delete;

  // sys::Filesystem. Reads are the real files'.
  Result<std::string> read_file(const std::string& path) const override;
  Status write_file(const std::string& path, std::string_view data) override;
  Result<std::vector<std::string>> list_dir(const std::string& path) const override;
  Result<std::string> read_link(const std::string& path) const override;
  bool exists(const std::string& path) const override;

  const sys::HostPaths& paths() const { return paths_; }

  // --- faults ---
  FaultId inject(FaultRule rule);
  // Removes one rule (a hang rule's blocked writes are released and take effect).
  void remove_fault(FaultId id);
  // Removes every rule and releases every hung write (they take effect). Does not revive().
  void clear_faults();
  // Releases the writes blocked by hang faults (they take effect) and removes the hang rules.
  void release_hangs();
  // Writes blocked in a hang right now.
  size_t hung_writes() const;
  // Waits until at least `n` writes are blocked in a hang; false on timeout.
  bool wait_for_hung_writes(size_t n, std::chrono::milliseconds timeout) const;
  // Ends a crash: writes reach the kernel again.
  void revive();
  bool crashed() const;

  // --- kernel state ---
  // Loads a module: <sys>/module/<name> and the directories of the drivers it provides
  // (vfio_pci -> drivers/vfio-pci, <dev>/vfio/vfio); like driver registration, unbound devices
  // that match a new driver attach to it. OK if already loaded.
  Status load_module(const std::string& name);
  // /dev/vfio/<group> appears `delay` after a group's first vfio-pci attach instead of at once, as
  // udev creates it asynchronously on a real host (default 0: at once). Removal stays immediate.
  void set_vfio_node_delay(std::chrono::milliseconds delay);

  // Unloads it: devices bound to its drivers detach, the driver directories go. OK if not loaded.
  Status unload_module(const std::string& name);
  bool module_loaded(const std::string& name) const;

  // Every known device's binding, read from the tree.
  BindingSnapshot snapshot() const;
  // Group numbers that have a <dev_root>/vfio/<group> node, sorted.
  std::vector<std::string> vfio_groups() const;
  // Dynamic ids added through new_id, as "driver vvvv:dddd".
  std::vector<std::string> dynamic_ids() const;
  // The native driver the fake binds on probe ("" none). NOT_FOUND for an unknown device.
  Result<std::string> native_driver(const std::string& bdf) const;

  // --- write log ---
  std::vector<WriteRecord> writes() const;
  // Writes that reached the kernel (successful or not), since creation or clear_writes().
  size_t write_count() const;
  // Writes attempted while crashed (they did not reach the kernel).
  size_t lost_write_count() const;
  void clear_writes();

 private:
  struct DeviceInfo {
    std::string bdf;
    std::string dir;  // canonical device directory
    std::string group;  // "" without IOMMU
    std::string native;
    uint16_t vendor = 0;
    uint16_t device = 0;
    uint32_t class_code = 0;
    std::optional<DrmNodes> drm;
    bool has_reset = false;
  };
  struct Rule {
    FaultRule rule;
    int remaining_skip = 0;
    int remaining = -1;
  };
  struct Classified {
    Op op = Op::kOther;
    std::string bdf;  // device concerned
    std::string driver;  // drivers/<driver>/... writes
    bool in_sysfs = false;
    std::string error;  // non-empty: the path is invalid (message), with `code`
    Code code = Code::kOk;
  };

  Classified classify(const std::string& path, std::string_view value) const;
  Status apply(const Classified& c, const std::string& path, std::string_view value);
  // Caller holds mu_.
  std::string current_driver(const DeviceInfo& d) const;
  std::string current_override(const DeviceInfo& d) const;
  bool driver_loaded(const std::string& driver) const;
  bool matches(const DeviceInfo& d, const std::string& driver) const;
  Status attach(const DeviceInfo& d, const std::string& driver);
  Status detach(const DeviceInfo& d);
  void attach_matching_unbound(const std::string& driver);
  std::vector<std::string> drivers_of_module(const std::string& module) const;
  std::string module_of(const std::string& driver) const;
  Status create_driver_dir(const std::string& driver);
  const DeviceInfo* find_device(const std::string& bdf) const;
  bool group_uses_vfio(const std::string& group, const std::string& except_bdf) const;
  void udev_loop();

  sys::HostPaths paths_;
  std::string sysfs_canonical_;
  KernelModel model_;
  std::unique_ptr<sys::Filesystem> posix_;
  std::map<std::string, DeviceInfo> devices_;  // by bdf; fixed after construction
  std::map<std::string, std::string> dir_to_bdf_;  // canonical device directory -> bdf

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::map<FaultId, Rule> rules_;
  FaultId next_fault_id_ = 1;
  uint64_t hang_generation_ = 0;  // bumped by release_hangs(): blocked writes proceed
  size_t hung_ = 0;
  size_t in_flight_ = 0;
  bool crashed_ = false;
  bool shutting_down_ = false;
  std::vector<WriteRecord> log_;
  size_t lost_writes_ = 0;
  std::map<std::string, std::set<std::pair<uint16_t, uint16_t>>> dynamic_ids_;  // driver -> ids
  std::chrono::milliseconds vfio_node_delay_{0};
  std::map<std::string, std::chrono::steady_clock::time_point> pending_vfio_nodes_;  // group -> due
  std::thread udev_;  // creates delayed /dev/vfio nodes; started by set_vfio_node_delay()
};

}  // namespace feos::test
