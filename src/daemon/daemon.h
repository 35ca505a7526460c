#pragma once
// feosd's composition root: the one place that builds the real implementations and wires them
// together, in the order they depend on each other: state directory and its lock, database,
// hypervisor, device policy, host devices and inventory, event bus, VM manager (recovered), and
// the API services over them. feosd's main() adds flags, logging, signals and the listening
// sockets; the API harness (tests/api) and the load test use this same class, giving it their
// fakes through the seams in DaemonOptions (filesystem, hypervisor) instead of re-wiring it.
#include <cstdint>
#include <memory>
#include <string>

#include "api/vm_service.h"
#include "common/error.h"
#include "core/vm_manager.h"
#include "hostdev/options.h"
#include "image/oci_image_store.h"
#include "sys/host_paths.h"
#include "vmm/qemu/qemu_hypervisor.h"

namespace grpc {
class ServerBuilder;
class Service;
}  // namespace grpc

namespace feos::sys {
class Filesystem;
class ProcessLauncher;
class Permissions;
}  // namespace feos::sys

namespace feos::core {
class EventBus;
}

namespace feos::hostdev {
class HostDevices;
class HostInventory;
}  // namespace feos::hostdev

namespace feos::store {
class Database;
}

namespace feos::daemon {

// Room kept beside the database so that DeleteVm works on a full disk (store/space_reserve.h).
inline constexpr uint64_t kStateReserveBytes = 16 * 1024 * 1024;

// VM images from OCI registries (docs/images.md). The cache is <state_dir>/images.
struct ImageOptions {
  uint64_t cache_limit_bytes = 100ull << 30;  // --image-cache-size
  uint64_t max_blob_bytes = 64ull << 30;      // --image-max-blob-size
  std::string ca_file;                        // --registry-ca: trusted besides the system's CAs
  std::vector<std::string> insecure_registries;  // --insecure-registry: plain HTTP to these
  std::string credentials_file;               // --registry-credentials (image::load_credentials)
};

struct DaemonOptions {
  // Holds feosd.db, feosd.lock, vms/<vm id>/ (each VM's runtime files) and images/ (the image
  // cache and the VMs' disks over its images).
  std::string state_dir = "/var/lib/feosd";
  // Where sysfs, /dev and procfs are.
  sys::HostPaths paths;
  // Seams. Not owned; each must outlive the Daemon. Null: the host's own filesystem
  // (sys::make_posix_filesystem()), and a QemuHypervisor made from `qemu` and `qemu_user`.
  sys::Filesystem* filesystem = nullptr;
  vmm::Hypervisor* hypervisor = nullptr;
  // Registry images: null makes an image::OciImageStore from `images`.
  image::ImageStore* image_store = nullptr;
  ImageOptions images;
  // The QemuHypervisor's configuration (binary, accel, image roots); unused with `hypervisor`.
  vmm::qemu::QemuConfig qemu;
  // Run qemu as this user (sys::resolve_user); empty: as feosd. Unused with `hypervisor`.
  std::string qemu_user;
  // JSON allow-list of passable GPUs (hostdev::Policy::load); empty: the default policy.
  std::string device_policy_file;
  // pci.ids for device names in inventory and messages; empty: ids only.
  std::string pci_ids_file;
  // Host device timeouts and driver names; pci_ids is filled from pci_ids_file.
  hostdev::Options devices;
  // Recover a state directory whose database lost VMs (core::RecoverOptions); also lets an empty
  // (0-byte) database file start over.
  bool discard_unknown_vms = false;
  core::VmLimits vm_limits;
  // ShutdownVm's grace and how often the power button is pressed again (feosd --shutdown-grace).
  core::ShutdownOptions shutdown;
  api::StreamLimits stream_limits;
  // The version the VM service reports.
  std::string build_version;
  uint64_t state_reserve_bytes = kStateReserveBytes;
};

class Daemon {
 public:
  // Builds everything and recovers the VMs, logging on logger "feosd" as it goes (warnings for no
  // image roots and no PCI names, the device policy at info). Fails on the first problem, with a
  // message fit to log as it is (feosd then exits 1), keeping the failed step's code:
  //   INTERNAL             the state directory cannot be created; an empty database's write-ahead
  //                        log cannot be set aside.
  //   FAILED_PRECONDITION  another feosd holds the state directory's lock; the database file is
  //                        empty (0 bytes) without discard_unknown_vms.
  //   and, prefixed "open database: ", "--qemu-user: ", "hypervisor: ", "device policy: ",
  //   "--registry-credentials: ", "image cache: " or "recover: ", the errors of Database::open,
  //   sys::resolve_user, QemuHypervisor::create, hostdev::Policy::load, image::load_credentials,
  //   OciImageStore::open and VmManager::recover.
  static Result<std::unique_ptr<Daemon>> open(DaemonOptions options);
  // Tears down in reverse order (services, manager, devices, hypervisor, database), then releases
  // the state directory's lock. Stop the gRPC server first: its calls use the services.
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Registers the VMService and the HostDeviceService with `builder`; they live as long as this.
  void register_services(grpc::ServerBuilder& builder);

  const DaemonOptions& options() const { return options_; }
  store::Database& db() { return *db_; }
  vmm::Hypervisor& hypervisor() { return *hypervisor_; }
  hostdev::HostDevices& devices() { return *devices_; }
  hostdev::HostInventory& inventory() { return *inventory_; }
  core::EventBus& bus() { return *bus_; }
  core::VmManager& manager() { return *manager_; }

 private:
  explicit Daemon(DaemonOptions options);
  Status open_state();
  Status open_hypervisor();
  Status open_devices();
  Status open_images();

  DaemonOptions options_;
  // Declaration order is construction order; destruction runs backwards (services first).
  int lock_fd_ = -1;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<sys::Filesystem> own_filesystem_;
  sys::Filesystem* filesystem_ = nullptr;
  std::unique_ptr<sys::ProcessLauncher> launcher_;
  std::unique_ptr<sys::Permissions> permissions_;
  std::unique_ptr<vmm::Hypervisor> own_hypervisor_;
  vmm::Hypervisor* hypervisor_ = nullptr;
  std::unique_ptr<hostdev::HostInventory> inventory_;
  std::unique_ptr<hostdev::HostDevices> devices_;
  std::unique_ptr<image::ImageStore> own_image_store_;
  image::ImageStore* image_store_ = nullptr;
  std::unique_ptr<core::EventBus> bus_;
  std::unique_ptr<core::VmManager> manager_;
  std::unique_ptr<grpc::Service> vm_service_;
  std::unique_ptr<grpc::Service> host_service_;
};

}  // namespace feos::daemon
