// feosd: the VM host daemon. Parses its flags, checks access control, has daemon::Daemon wire the
// real implementations together and recover state, then serves the gRPC API until SIGINT/SIGTERM.
// VMs keep running when feosd stops; the next feosd adopts them.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include "common/log.h"
#include "daemon/access_control.h"
#include "daemon/daemon.h"

namespace {

constexpr const char* kVersion = "feosd 0.1.0";

struct Options {
  std::string socket = "/run/feosd/feosd.sock";
  std::string socket_group;  // empty: the socket is 0600, root only
  std::string listen;        // host:port, optional; needs the three TLS files
  std::string listen_plaintext;  // a loopback host:port, optional: FeOS clients' plaintext TCP
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  std::string log_level = "info";
  double shutdown_grace_s = 20;         // daemon.shutdown.grace, as given
  feos::daemon::DaemonOptions daemon;  // everything else
};

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
  std::string plaintext_address;
  if (!opt.listen_plaintext.empty()) {
    auto address = feos::daemon::loopback_listen_address(opt.listen_plaintext);
    if (!address) {
      logger->error("{}", address.error().message);
      return 1;
    }
    plaintext_address = *address;
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

  auto daemon = feos::daemon::Daemon::open(opt.daemon);
  if (!daemon) {
    logger->error("{}", daemon.error().message);
    return 1;
  }

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
  // Loopback only (checked above): any local user may call, unlike the unix socket's 0600.
  int plaintext_port = 0;
  if (!plaintext_address.empty())
    builder.AddListeningPort(plaintext_address, grpc::InsecureServerCredentials(), &plaintext_port);
  (*daemon)->register_services(builder);
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
  if (!plaintext_address.empty() && plaintext_port == 0) {
    logger->error("cannot listen on {}", plaintext_address);
    server->Shutdown();
    return 1;
  }
  if (auto secured = feos::daemon::secure_socket(opt.socket, socket_gid); !secured) {
    logger->error("{}", secured.error().message);
    server->Shutdown();
    return 1;
  }
  logger->info(
      "ready version=\"{}\" socket={} socket_mode={} listen={} listen_plaintext={} state_dir={} "
      "sysfs_root={} dev_root={}",
      kVersion, opt.socket, socket_gid ? "0660 group=" + opt.socket_group : std::string("0600"),
      opt.listen.empty() ? "-" : opt.listen + " (TLS, client certificates required)",
      plaintext_address.empty() ? "-" : plaintext_address + " (loopback, no authentication)", opt.daemon.state_dir,
      opt.daemon.paths.sysfs_root, opt.daemon.paths.dev_root);

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
  std::string guest_numa = "auto";
  double unplug_timeout_s = 20.0;
  opt.daemon.pci_ids_file = "/usr/share/misc/pci.ids";
  opt.daemon.build_version = kVersion;
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
  app.add_option("--listen-plaintext", opt.listen_plaintext,
                 "also serve plaintext TCP, as FeOS's clients dial it (their default: port 1337), on a "
                 "loopback address only (127.0.0.1:1337, [::1]:1337, localhost:1337): every local user "
                 "can then drive VMs, unlike the unix socket's file permissions")
      ->type_name("HOST:PORT");
  app.add_option("--tls-cert", opt.tls_cert, "PEM certificate (chain) feosd presents on --listen")
      ->type_name("FILE");
  app.add_option("--tls-key", opt.tls_key, "PEM private key of --tls-cert (unencrypted)")
      ->type_name("FILE");
  app.add_option(
         "--tls-client-ca", opt.tls_client_ca,
         "PEM CA certificate(s): --listen accepts only clients whose certificate they verify")
      ->type_name("FILE");
  app.add_option("--state-dir", opt.daemon.state_dir, "database, lock and per-VM runtime files")->capture_default_str();
  app.add_option("--sysfs-root", opt.daemon.paths.sysfs_root, "where sysfs is mounted")->capture_default_str();
  app.add_option("--dev-root", opt.daemon.paths.dev_root, "where /dev is")->capture_default_str();
  app.add_option("--proc-root", opt.daemon.paths.proc_root, "where procfs is mounted")->capture_default_str();
  app.add_option("--qemu", opt.daemon.qemu.binary, "qemu-system binary")->capture_default_str();
  app.add_option("--qemu-user", opt.daemon.qemu_user,
                 "run qemu as this unprivileged user, given each VM's /dev/vfio/<group> nodes and "
                 "runtime dir while its qemu runs (default: as feosd)")
      ->type_name("NAME");
  app.add_option("--image-root", opt.daemon.qemu.image_roots,
                 "directory whose files VM requests may name as images, disks, kernels, initramfs "
                 "and qcow2 backing files (repeatable; symlinks are resolved; default: any regular file)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--firmware-dir", opt.daemon.qemu.firmware_dirs,
                 "directory of QEMU firmware descriptors (*.json) that UEFI guests' firmware is "
                 "found in (repeatable, in priority order; default: /etc/qemu/firmware, "
                 "/usr/share/qemu/firmware)")
      ->type_name("DIR");
  app.add_option("--guest-numa", guest_numa,
                 "auto: a VM's guest mirrors the host NUMA nodes of its GPUs (memory bound there, "
                 "vCPUs split, GPUs on their node's expander bus) when the host has more than one; off: never")
      ->check(CLI::IsMember({"auto", "off"}));
  app.add_option("--accel", opt.daemon.qemu.accel, "auto (kvm when usable), kvm or tcg")
      ->check(CLI::IsMember({"auto", "kvm", "tcg"}))
      ->capture_default_str();
  app.add_option("--log-level", opt.log_level, "debug, info, warn, error")->capture_default_str();
  app.add_option("--device-policy", opt.daemon.device_policy_file,
                 "JSON allow-list of passable GPUs (default: every display/3D device, no group peers)");
  app.add_option("--pci-ids", opt.daemon.pci_ids_file, "pci.ids database for device names")->capture_default_str();
  app.add_flag("--discard-unknown-vms", opt.daemon.discard_unknown_vms,
               "recover a state dir whose database lost VMs (empty or replaced feosd.db): kill their "
               "qemus and move their runtime dirs to <state-dir>/vms.discarded/, then start");
  app.add_option("--image-cache-size", opt.daemon.images.cache_limit_bytes,
                 "bytes the registry image cache (<state-dir>/images) holds at most; unused images "
                 "are evicted, least recently used first")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--image-max-blob-size", opt.daemon.images.max_blob_bytes,
                 "largest disk layer pulled from a registry (bytes; K, M, G suffixes)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--registry-ca", opt.daemon.images.ca_file,
                 "PEM CA certificate(s) trusted for registries besides the system's CAs")
      ->check(CLI::ExistingFile);
  app.add_option("--insecure-registry", opt.daemon.images.insecure_registries,
                 "registry host[:port] reached over plain HTTP (repeatable; no credentials are sent)")
      ->type_name("HOST[:PORT]");
  app.add_option("--registry-credentials", opt.daemon.images.credentials_file,
                 "JSON file {\"registries\": {\"HOST[:PORT]\": {\"username\": .., \"password\": ..}}}")
      ->check(CLI::ExistingFile);
  app.add_option("--max-vms", opt.daemon.vm_limits.max_vms, "VMs this daemon holds at most")->capture_default_str();
  app.add_option("--max-streams", opt.daemon.stream_limits.max_streams,
                 "event and console streams served at once (each holds a thread)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--shutdown-grace", opt.shutdown_grace_s,
                 "seconds a guest has to power off after ShutdownVm (the ACPI power button, pressed again "
                 "every 3 s) before its VM is powered off; a request's grace_seconds overrides it")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--hotplug-ports", opt.daemon.qemu.hotplug_ports,
                 "empty PCIe ports each VM gets at start for disks and NICs attached while it runs "
                 "(AttachDisk, AttachNic)")
      ->check(CLI::Range(0, 16))
      ->capture_default_str();
  app.add_option("--unplug-timeout", unplug_timeout_s,
                 "seconds DetachDisk/DetachNic wait for a running guest to release the device")
      ->check(CLI::Range(1.0, 600.0))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  opt.daemon.qemu.unplug_timeout = std::chrono::milliseconds(std::llround(unplug_timeout_s * 1000));
  opt.daemon.shutdown.grace = std::chrono::milliseconds(std::llround(opt.shutdown_grace_s * 1000));
  opt.daemon.qemu.guest_numa = guest_numa == "auto";
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
