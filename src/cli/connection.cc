#include "cli/connection.h"

#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "cli/format.h"
#include "feos/vm/vmm/api/v1/vm.grpc.pb.h"
#include "tls/pem.h"

namespace feos::cli {
namespace {

// A host with thousands of PCI functions answers `gpu list --all` with more than gRPC's default
// 4 MiB receive limit.
constexpr int kMaxReceiveBytes = 64 << 20;

// Why a Unix socket cannot be connected to, from a plain connect(2) that names the errno.
std::string probe_unix_socket(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return "socket path too long for connect(2): " + path;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket(AF_UNIX): ") + std::strerror(errno);
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::close(fd);
  if (rc != 0) return "connect " + path + ": " + std::strerror(err);
  return "the socket accepts connections but no gRPC session came up";
}

// Why a TCP connection failed, in gRPC's words: a call that does not wait for the channel fails
// at once with the channel's last error. nullopt if the call went through after all (the
// connection came up meanwhile).
std::optional<std::string> probe_tcp(const std::shared_ptr<grpc::Channel>& channel,
                                     const GlobalOptions& global) {
  grpc::ClientContext context;
  context.set_wait_for_ready(false);
  context.set_deadline(std::chrono::system_clock::now() + to_duration(global.timeout_s));
  v1::ListVmsResponse response;
  grpc::Status status = v1::VMService::NewStub(channel)->ListVms(&context, {}, &response);
  if (status.ok()) return std::nullopt;
  return "connection to " + *global.address + " failed: " + status.error_message();
}

void silent_log(gpr_log_func_args*) {}

// The credentials for `global`; sets the name to verify on `args` when --tls-server-name asks.
std::shared_ptr<grpc::ChannelCredentials> credentials(const GlobalOptions& global,
                                                      grpc::ChannelArguments& args) {
  if (!global.tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = global.tls->ca_pem;
  ssl.pem_cert_chain = global.tls->cert_pem;
  ssl.pem_private_key = global.tls->key_pem;
  if (!global.tls->server_name.empty()) args.SetSslTargetNameOverride(global.tls->server_name);
  return grpc::SslCredentials(ssl);
}

}  // namespace

void silence_grpc_log() { gpr_set_log_function(silent_log); }

Status check_tls(const TlsOptions& tls) {
  FEOS_TRY(feos::tls::check_certificates(tls.ca_pem, "--tls-ca"));
  if (tls.cert_pem.empty()) return ok();
  return feos::tls::check_key_pair(tls.cert_pem, "--tls-cert", tls.key_pem, "--tls-key");
}

std::shared_ptr<grpc::Channel> make_channel(const GlobalOptions& global) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  std::shared_ptr<grpc::ChannelCredentials> creds = credentials(global, args);
  return grpc::CreateCustomChannel(global.grpc_target(), creds, args);
}

std::optional<std::string> wait_until_connected(const std::shared_ptr<grpc::Channel>& channel,
                                                const GlobalOptions& global) {
  auto deadline = std::chrono::system_clock::now() + to_duration(global.timeout_s);
  grpc_connectivity_state state = channel->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      if (global.address) return probe_tcp(channel, global);
      return probe_unix_socket(global.socket_path);
    }
    if (!channel->WaitForStateChange(state, deadline)) {
      return "no connection within " + format_seconds(global.timeout_s);
    }
    state = channel->GetState(/*try_to_connect=*/true);
  }
  return std::nullopt;
}

}  // namespace feos::cli
