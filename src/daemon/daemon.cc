#include "daemon/daemon.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include "api/host_service.h"
#include "common/log.h"
#include "core/event_bus.h"
#include "hostdev/host_devices.h"
#include "hostdev/inventory.h"
#include "hostdev/policy.h"
#include "pci/pci_ids.h"
#include "store/database.h"
#include "sys/filesystem.h"
#include "sys/permissions.h"
#include "sys/process.h"
#include "sys/run_as.h"
#include "vmm/qemu/qemu_version.h"

namespace feos::daemon {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("feosd"); }

// `error` under the name of the step that failed, as feosd logs it: "<what>: CODE: message".
tl::unexpected<Error> step_failed(std::string_view what, const Error& error) {
  return fail(error.code, std::string(what) + ": " + error.to_string());
}

// An --image-root inside the state directory would offer requests nothing but refusals: every
// file there is feosd's own (vmm::qemu::feosd_reserved_dirs()).
Status check_image_roots(const std::vector<std::string>& roots, const std::string& state_dir) {
  std::error_code ec;
  const std::filesystem::path state = std::filesystem::weakly_canonical(state_dir, ec);
  if (ec) return fail(Code::kInternal, "cannot resolve state dir " + state_dir + ": " + ec.message());
  for (const auto& root : roots) {
    const std::filesystem::path resolved = std::filesystem::weakly_canonical(root, ec);
    if (ec) continue;  // the hypervisor names a root it cannot resolve
    if (std::mismatch(state.begin(), state.end(), resolved.begin(), resolved.end()).first == state.end())
      return fail(Code::kInvalidArgument,
                  "--image-root " + root + " lies inside the state directory " + state_dir +
                      ", whose files no request may name (the database, the VMs' runtime files, the image "
                      "cache): keep VM images outside it");
  }
  return ok();
}

// Holds an exclusive lock on <state>/feosd.lock for the daemon's lifetime, so two daemons never
// share one state directory (gRPC would silently take over a live socket).
Result<int> lock_state_dir(const std::string& state_dir) {
  std::string path = state_dir + "/feosd.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fail_errno("open " + path, errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    (void)!::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    return fail(Code::kFailedPrecondition, "another feosd (pid " + std::string(sys::trim(buf)) + ") holds " +
                                               path + "; refusing to share state dir " + state_dir);
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  (void)!::ftruncate(fd, 0);
  (void)!::pwrite(fd, pid.data(), pid.size(), 0);
  return fd;
}

// SQLite takes a 0-byte file for a new, empty database: a truncated one would silently forget
// every VM while their qemus run on. Refuses it unless the daemon is told to start over; then a
// write-ahead log of the lost database is set aside so that it is not replayed into the new one.
Status check_not_truncated(const std::string& db_path, const std::string& state_dir, bool discard_unknown_vms) {
  struct stat st {};
  if (::stat(db_path.c_str(), &st) != 0 || st.st_size != 0) return ok();
  if (!discard_unknown_vms)
    return fail(Code::kFailedPrecondition,
                "database " + db_path +
                    " is empty (0 bytes): it was truncated or replaced, and feosd would forget every VM. "
                    "Restore it (with its -wal file) from a backup; or start feosd once with "
                    "--discard-unknown-vms to start over (the processes of VMs it finds in " +
                    state_dir + "/vms are killed and their runtime directories set aside)");
  for (const char* suffix : {"-wal", "-shm"}) {
    std::string from = db_path + suffix;
    std::string to = state_dir + "/vms.discarded/feosd.db" + suffix + "-" + std::to_string(::time(nullptr));
    std::error_code moved;
    if (!std::filesystem::exists(from, moved)) continue;
    std::filesystem::create_directories(state_dir + "/vms.discarded", moved);
    std::filesystem::rename(from, to, moved);
    if (moved) return fail(Code::kInternal, "cannot set aside " + from + ": " + moved.message());
    logger()->warn("empty database: set aside its write-ahead log {} as {}", from, to);
  }
  return ok();
}

}  // namespace

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {}

Daemon::~Daemon() {
  host_service_.reset();
  vm_service_.reset();
  manager_.reset();
  bus_.reset();
  own_image_store_.reset();
  devices_.reset();
  inventory_.reset();
  own_hypervisor_.reset();
  permissions_.reset();
  launcher_.reset();
  own_filesystem_.reset();
  db_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Result<std::unique_ptr<Daemon>> Daemon::open(DaemonOptions options) {
  std::unique_ptr<Daemon> d(new Daemon(std::move(options)));
  const DaemonOptions& opt = d->options_;
  FEOS_TRY(d->open_state());
  FEOS_TRY(d->open_hypervisor());
  FEOS_TRY(d->open_devices());
  FEOS_TRY(d->open_images());
  d->bus_ = std::make_unique<core::EventBus>();
  d->manager_ = std::make_unique<core::VmManager>(*d->db_, *d->hypervisor_, d->devices_.get(), *d->bus_,
                                                  opt.state_dir + "/vms", opt.vm_limits, opt.shutdown,
                                                  d->image_store_);
  if (auto recovered = d->manager_->recover({.discard_unknown_vms = opt.discard_unknown_vms}); !recovered)
    return step_failed("recover", recovered.error());
  d->vm_service_ = api::make_vm_service(*d->manager_, opt.build_version, opt.stream_limits);
  d->host_service_ = api::make_host_service(*d->inventory_, *d->hypervisor_);
  return d;
}

// The state directory with its vms/ folder, its lock, and the database in it.
Status Daemon::open_state() {
  const std::string& state_dir = options_.state_dir;
  std::error_code ec;
  std::filesystem::create_directories(state_dir + "/vms", ec);
  if (ec) return fail(Code::kInternal, "cannot create state dir " + state_dir + ": " + ec.message());
  FEOS_TRY(check_image_roots(options_.qemu.image_roots, state_dir));
  FEOS_ASSIGN_OR_RETURN(lock_fd_, lock_state_dir(state_dir));
  const std::string db_path = state_dir + "/feosd.db";
  FEOS_TRY(check_not_truncated(db_path, state_dir, options_.discard_unknown_vms));
  store::DatabaseOptions db_options;
  db_options.reserve_bytes = options_.state_reserve_bytes;
  auto db = store::Database::open(db_path, db_options);
  if (!db) return step_failed("open database", db.error());
  db_ = std::move(*db);
  return ok();
}

// The injected filesystem and hypervisor, or the host's own and a QemuHypervisor over them.
Status Daemon::open_hypervisor() {
  filesystem_ = options_.filesystem;
  if (filesystem_ == nullptr) {
    own_filesystem_ = sys::make_posix_filesystem();
    filesystem_ = own_filesystem_.get();
  }
  hypervisor_ = options_.hypervisor;
  if (hypervisor_ != nullptr) return ok();
  launcher_ = sys::make_posix_process_launcher();
  vmm::qemu::QemuConfig config = options_.qemu;
  if (config.image_roots.empty())
    logger()->warn("no --image-root: VM requests may name any regular file on this host as a disk or kernel");
  else  // the VMs' disks over registry images and the cached images under them
    config.image_roots.push_back(options_.state_dir + "/images");
  // ... which only feosd's image store names: a request naming a cached image as its disk would
  // write under every VM of that image, one naming another VM's disk would read or write it. The
  // rest of the state directory (the database, the VMs' runtime files) is feosd's own too.
  config.reserved_dirs = vmm::qemu::feosd_reserved_dirs(options_.state_dir);
  // QEMU 8.1 can put the GPUDirect clique capability at D4h, beside the MSI-X of Turing and newer.
  if (auto version = vmm::qemu::probe_qemu_version(config.binary); version) {
    config.gpudirect_d4 = version->at_least(8, 1);
    logger()->info("qemu {}.{}.{}: GPUDirect cliques {}", version->major, version->minor, version->micro,
                   config.gpudirect_d4 ? "at C8h or D4h" : "only on GPUs whose MSI-X is not at C8h");
  } else {
    logger()->warn("qemu version unknown ({}): GPUDirect cliques only on GPUs whose MSI-X is not at C8h",
                   version.error().message);
  }
  if (!options_.qemu_user.empty()) {
    auto user = sys::resolve_user(options_.qemu_user);
    if (!user) return step_failed("--qemu-user", user.error());
    config.run_as = std::move(*user);
  }
  permissions_ = sys::make_posix_permissions();
  auto hypervisor = vmm::qemu::QemuHypervisor::create(*launcher_, *filesystem_, *permissions_, options_.paths,
                                                      std::move(config));
  if (!hypervisor) return step_failed("hypervisor", hypervisor.error());
  own_hypervisor_ = std::move(*hypervisor);
  hypervisor_ = own_hypervisor_.get();
  return ok();
}

// The device policy and PCI names, then HostDevices and HostInventory over the ledger.
Status Daemon::open_devices() {
  hostdev::Policy policy;
  if (!options_.device_policy_file.empty()) {
    auto loaded = hostdev::Policy::load(*filesystem_, options_.device_policy_file);
    if (!loaded) return step_failed("device policy", loaded.error());
    policy = std::move(*loaded);
  }
  hostdev::Options device_options = options_.devices;
  if (!options_.pci_ids_file.empty()) {
    if (auto ids = pci::PciIds::load(*filesystem_, options_.pci_ids_file); ids)
      device_options.pci_ids = std::make_shared<const pci::PciIds>(std::move(*ids));
    else
      logger()->warn("no PCI names: {}", ids.error().message);
  }
  logger()->info("device policy: {}", policy.describe());
  inventory_ = std::make_unique<hostdev::HostInventory>(*filesystem_, options_.paths, db_->ledger(), policy,
                                                        device_options);
  devices_ = std::make_unique<hostdev::HostDevices>(*filesystem_, options_.paths, db_->ledger(), std::move(policy),
                                                    device_options);
  return ok();
}

// The registry image store: the injected one, or an OciImageStore over <state_dir>/images.
Status Daemon::open_images() {
  image_store_ = options_.image_store;
  if (image_store_ != nullptr) return ok();
  const ImageOptions& images = options_.images;
  image::ImageStoreOptions store;
  store.cache_dir = options_.state_dir + "/images";
  store.cache_limit_bytes = images.cache_limit_bytes;
  store.max_blob_bytes = images.max_blob_bytes;
  store.registry.ca_file = images.ca_file;
  store.registry.insecure_registries = images.insecure_registries;
  if (!images.credentials_file.empty()) {
    auto credentials = image::load_credentials(images.credentials_file);
    if (!credentials) return step_failed("--registry-credentials", credentials.error());
    store.registry.credentials = std::move(*credentials);
  }
  // Over plain HTTP anyone on the path can rewrite the registry's challenge and collect what is
  // sent: a registry with credentials must be reached over TLS.
  for (const auto& registry : images.insecure_registries)
    if (store.registry.credentials.count(registry))
      return step_failed("--registry-credentials",
                         Error{Code::kInvalidArgument,
                               "credentials for " + registry + ", which --insecure-registry reaches over plain "
                               "HTTP: feosd sends credentials only over TLS"});
  if (!options_.qemu_user.empty()) {
    // The VM's disk belongs to the user its qemu runs as (the cached image is readable by all).
    auto user = sys::resolve_user(options_.qemu_user);
    if (!user) return step_failed("--qemu-user", user.error());
    store.disk_owner = image::DiskOwner{user->uid, user->gid};
  }
  auto opened = image::OciImageStore::open(std::move(store));
  if (!opened) return step_failed("image cache", opened.error());
  own_image_store_ = std::move(*opened);
  image_store_ = own_image_store_.get();
  for (const auto& registry : images.insecure_registries)
    logger()->warn("registry {} is reached over plain HTTP (--insecure-registry)", registry);
  return ok();
}

void Daemon::register_services(grpc::ServerBuilder& builder) {
  builder.RegisterService(vm_service_.get());
  builder.RegisterService(host_service_.get());
}

}  // namespace feos::daemon
