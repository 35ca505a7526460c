// feosd: the VM host daemon. Wires the real implementations together (the only place besides the
// CLI that does), recovers state, serves the gRPC API until SIGINT/SIGTERM. VMs keep running when
// feosd stops; the next feosd adopts them.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>
#include <grpcpp/security/server_credentials.h>

#include "api/host_service.h"
#include "api/vm_service.h"
#include "common/log.h"
#include "core/event_bus.h"
#include "core/vm_manager.h"
#include "daemon/access_control.h"
#include "hostdev/host_devices.h"
#include "hostdev/inventory.h"
#include "pci/pci_ids.h"
#include "store/database.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"
#include "sys/permissions.h"
#include "sys/process.h"
#include "sys/run_as.h"
#include "vmm/qemu/qemu_hypervisor.h"

namespace {

constexpr const char* kVersion = "feosd 0.1.0";

struct Options {
  std::string socket = "/run/feosd/feosd.sock";
  std::string socket_group;  // empty: the socket is 0600, root only
  std::string listen;        // host:port, optional; needs the three TLS files
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  std::string state_dir = "/var/lib/feosd";
  feos::sys::HostPaths paths;
  std::string qemu = "qemu-system-x86_64";
  std::string accel = "auto";
  std::string qemu_user;  // run qemu as this user; empty: as feosd itself
  std::vector<std::string> image_roots;  // empty: requests may name any regular file
  std::string log_level = "info";
  std::string device_policy;  // JSON allow-list; empty = default policy
  std::string pci_ids = "/usr/share/misc/pci.ids";
  bool discard_unknown_vms = false;  // recover by killing and setting aside VMs the database lost
  feos::core::VmLimits vm_limits;
  feos::api::StreamLimits stream_limits;
};

// Room kept beside the database so that DeleteVm works on a full disk (store/space_reserve.h).
constexpr uint64_t kStateReserveBytes = 16 * 1024 * 1024;

// Holds an exclusive lock on <state>/feosd.lock for the process's lifetime, so two daemons never
// share one state directory (gRPC would silently take over a live socket).
feos::Result<int> lock_state_dir(const std::string& state_dir) {
  std::string path = state_dir + "/feosd.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return feos::fail_errno("open " + path, errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    (void)!::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    return feos::fail(feos::Code::kFailedPrecondition,
                      "another feosd (pid " + std::string(feos::sys::trim(buf)) + ") holds " + path +
                          "; refusing to share state dir " + state_dir);
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  (void)!::ftruncate(fd, 0);
  (void)!::pwrite(fd, pid.data(), pid.size(), 0);
  return fd;
}

int run(const Options& opt) {
  auto logger = feos::log::get("feosd");
  // Access control first: a daemon that cannot enforce it must not start at all.
  bool any_tls = !opt.tls_cert.empty() || !opt.tls_key.empty() || !opt.tls_client_ca.empty();
  if (!opt.listen.empty() &&
      (opt.tls_cert.empty() || opt.tls_key.empty() || opt.tls_client_ca.empty())) {
    logger->error(
        "--listen requires TLS: --tls-cert, --tls-key and --tls-client-ca (clients must present "
        "certificates)");
    return 1;
  }
  if (opt.listen.empty() && any_tls) {
    logger->error("--tls-cert, --tls-key and --tls-client-ca only apply to --listen");
    return 1;
  }
  std::optional<gid_t> socket_gid;
  if (!opt.socket_group.empty()) {
    auto gid = feos::daemon::resolve_group(opt.socket_group);
    if (!gid) {
      logger->error("{}", gid.error().message);
      return 1;
    }
    socket_gid = *gid;
  }
  std::shared_ptr<grpc::ServerCredentials> tcp_credentials;
  if (!opt.listen.empty()) {
    auto credentials = feos::daemon::tls_credentials(opt.tls_cert, opt.tls_key, opt.tls_client_ca);
    if (!credentials) {
      logger->error("{}", credentials.error().message);
      return 1;
    }
    tcp_credentials = std::move(*credentials);
  }

  std::error_code ec;
  std::filesystem::create_directories(opt.state_dir + "/vms", ec);
  if (ec) {
    logger->error("cannot create state dir {}: {}", opt.state_dir, ec.message());
    return 1;
  }
  auto lock = lock_state_dir(opt.state_dir);
  if (!lock) {
    logger->error("{}", lock.error().message);
    return 1;
  }
  const std::string db_path = opt.state_dir + "/feosd.db";
  // SQLite takes a 0-byte file for a new, empty database: a truncated one would silently forget
  // every VM while their qemus run on.
  if (struct stat st {}; ::stat(db_path.c_str(), &st) == 0 && st.st_size == 0) {
    if (!opt.discard_unknown_vms) {
      logger->error(
          "database {} is empty (0 bytes): it was truncated or replaced, and feosd would forget every "
          "VM. Restore it (with its -wal file) from a backup; or start feosd once with "
          "--discard-unknown-vms to start over (the processes of VMs it finds in {}/vms are killed "
          "and their runtime directories set aside)",
          db_path, opt.state_dir);
      return 1;
    }
    // Starting over: a write-ahead log of the lost database must not be replayed into the new one.
    for (const char* suffix : {"-wal", "-shm"}) {
      std::string from = db_path + suffix;
      std::string to = opt.state_dir + "/vms.discarded/feosd.db" + suffix + "-" + std::to_string(::time(nullptr));
      std::error_code moved;
      if (!std::filesystem::exists(from, moved)) continue;
      std::filesystem::create_directories(opt.state_dir + "/vms.discarded", moved);
      std::filesystem::rename(from, to, moved);
      if (moved) {
        logger->error("cannot set aside {}: {}", from, moved.message());
        return 1;
      }
      logger->warn("empty database: set aside its write-ahead log {} as {}", from, to);
    }
  }
  feos::store::DatabaseOptions db_options;
  db_options.reserve_bytes = kStateReserveBytes;
  auto db = feos::store::Database::open(db_path, db_options);
  if (!db) {
    logger->error("open database: {}", db.error().to_string());
    return 1;
  }

  auto fs = feos::sys::make_posix_filesystem();
  auto launcher = feos::sys::make_posix_process_launcher();
  feos::vmm::qemu::QemuConfig qemu_config;
  qemu_config.binary = opt.qemu;
  qemu_config.accel = opt.accel;
  qemu_config.image_roots = opt.image_roots;
  if (opt.image_roots.empty())
    logger->warn("no --image-root: VM requests may name any regular file on this host as a disk or kernel");
  if (!opt.qemu_user.empty()) {
    auto user = feos::sys::resolve_user(opt.qemu_user);
    if (!user) {
      logger->error("--qemu-user: {}", user.error().to_string());
      return 1;
    }
    qemu_config.run_as = std::move(*user);
  }
  auto permissions = feos::sys::make_posix_permissions();
  auto hypervisor = feos::vmm::qemu::QemuHypervisor::create(*launcher, *fs, *permissions, opt.paths,
                                                            qemu_config);
  if (!hypervisor) {
    logger->error("hypervisor: {}", hypervisor.error().to_string());
    return 1;
  }
  feos::hostdev::Policy policy;
  if (!opt.device_policy.empty()) {
    auto loaded = feos::hostdev::Policy::load(*fs, opt.device_policy);
    if (!loaded) {
      logger->error("device policy: {}", loaded.error().to_string());
      return 1;
    }
    policy = std::move(*loaded);
  }
  feos::hostdev::Options device_options;
  if (auto ids = feos::pci::PciIds::load(*fs, opt.pci_ids); ids)
    device_options.pci_ids = std::make_shared<const feos::pci::PciIds>(std::move(*ids));
  else
    logger->warn("no PCI names: {}", ids.error().message);
  logger->info("device policy: {}", policy.describe());
  feos::hostdev::HostInventory inventory(*fs, opt.paths, (*db)->ledger(), policy, device_options);
  feos::hostdev::HostDevices devices(*fs, opt.paths, (*db)->ledger(), std::move(policy), device_options);
  feos::core::EventBus bus;
  feos::core::VmManager manager(**db, **hypervisor, &devices, bus, opt.state_dir + "/vms", opt.vm_limits);
  if (auto recovered = manager.recover({.discard_unknown_vms = opt.discard_unknown_vms}); !recovered) {
    logger->error("recover: {}", recovered.error().to_string());
    return 1;
  }

  auto service = feos::api::make_vm_service(manager, kVersion, opt.stream_limits);
  auto host_service = feos::api::make_host_service(inventory);
  if (auto prepared = feos::daemon::prepare_socket_path(opt.socket); !prepared) {
    logger->error("{}", prepared.error().message);
    return 1;
  }
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Unix peers are the local users the socket's mode lets in; they need no TLS.
  builder.AddListeningPort("unix:" + opt.socket, grpc::InsecureServerCredentials());
  int tcp_port = 0;
  if (!opt.listen.empty()) builder.AddListeningPort(opt.listen, tcp_credentials, &tcp_port);
  builder.RegisterService(service.get());
  builder.RegisterService(host_service.get());
  // bind() creates the socket as 0600: never reachable by anyone else, even for a moment.
  mode_t old_umask = ::umask(0177);
  auto server = builder.BuildAndStart();
  ::umask(old_umask);
  if (!server) {
    logger->error("cannot serve on unix:{}{}", opt.socket,
                  opt.listen.empty() ? "" : " or " + opt.listen);
    return 1;
  }
  if (!opt.listen.empty() && tcp_port == 0) {
    logger->error("cannot listen on {}", opt.listen);
    server->Shutdown();
    return 1;
  }
  if (auto secured = feos::daemon::secure_socket(opt.socket, socket_gid); !secured) {
    logger->error("{}", secured.error().message);
    server->Shutdown();
    return 1;
  }
  logger->info(
      "ready version=\"{}\" socket={} socket_mode={} listen={} state_dir={} sysfs_root={} "
      "dev_root={}",
      kVersion, opt.socket, socket_gid ? "0660 group=" + opt.socket_group : std::string("0600"),
      opt.listen.empty() ? "-" : opt.listen + " (TLS, client certificates required)", opt.state_dir,
      opt.paths.sysfs_root, opt.paths.dev_root);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  int sig = 0;
  sigwait(&signals, &sig);
  logger->info("signal={} stopping; VMs keep running", strsignal(sig));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"feosd: runs VMs with whole GPUs passed through, behind FeOS's VM API"};
  app.add_option(
         "--socket", opt.socket,
         "unix socket to serve on: mode 0600 (root only), 0660 with --socket-group; its directory "
         "is created 0755 and must not be writable by other users")
      ->capture_default_str();
  app.add_option("--socket-group", opt.socket_group,
                 "group that may also use the socket (mode 0660)")
      ->type_name("NAME");
  app.add_option(
         "--listen", opt.listen,
         "also serve on TCP, only with TLS and client certificates (needs --tls-cert, --tls-key, "
         "--tls-client-ca)")
      ->type_name("HOST:PORT");
  app.add_option("--tls-cert", opt.tls_cert, "PEM certificate (chain) feosd presents on --listen")
      ->type_name("FILE");
  app.add_option("--tls-key", opt.tls_key, "PEM private key of --tls-cert (unencrypted)")
      ->type_name("FILE");
  app.add_option(
         "--tls-client-ca", opt.tls_client_ca,
         "PEM CA certificate(s): --listen accepts only clients whose certificate they verify")
      ->type_name("FILE");
  app.add_option("--state-dir", opt.state_dir, "database, lock and per-VM runtime files")->capture_default_str();
  app.add_option("--sysfs-root", opt.paths.sysfs_root, "where sysfs is mounted")->capture_default_str();
  app.add_option("--dev-root", opt.paths.dev_root, "where /dev is")->capture_default_str();
  app.add_option("--proc-root", opt.paths.proc_root, "where procfs is mounted")->capture_default_str();
  app.add_option("--qemu", opt.qemu, "qemu-system binary")->capture_default_str();
  app.add_option("--qemu-user", opt.qemu_user,
                 "run qemu as this unprivileged user, given each VM's /dev/vfio/<group> nodes and "
                 "runtime dir while its qemu runs (default: as feosd)")
      ->type_name("NAME");
  app.add_option("--image-root", opt.image_roots,
                 "directory whose files VM requests may name as images, disks, kernels, initramfs "
                 "and qcow2 backing files (repeatable; symlinks are resolved; default: any regular file)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--accel", opt.accel, "auto (kvm when usable), kvm or tcg")
      ->check(CLI::IsMember({"auto", "kvm", "tcg"}))
      ->capture_default_str();
  app.add_option("--log-level", opt.log_level, "debug, info, warn, error")->capture_default_str();
  app.add_option("--device-policy", opt.device_policy,
                 "JSON allow-list of passable GPUs (default: every display/3D device, no group peers)");
  app.add_option("--pci-ids", opt.pci_ids, "pci.ids database for device names")->capture_default_str();
  app.add_flag("--discard-unknown-vms", opt.discard_unknown_vms,
               "recover a state dir whose database lost VMs (empty or replaced feosd.db): kill their "
               "qemus and move their runtime dirs to <state-dir>/vms.discarded/, then start");
  app.add_option("--max-vms", opt.vm_limits.max_vms, "VMs this daemon holds at most")->capture_default_str();
  app.add_option("--max-streams", opt.stream_limits.max_streams,
                 "event and console streams served at once (each holds a thread)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  feos::log::set_level(opt.log_level);

  // Block the stop signals in every thread; main waits for them with sigwait(). SIGPIPE from a
  // closed console socket must not kill the daemon.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return run(opt);
}
