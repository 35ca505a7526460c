#pragma once
// feosctl's command line (CLI11) turned into an Invocation: which command, its request message
// already built, and the options of the streaming commands. Pure: no gRPC, no environment access
// except what CommandLineEnv hands in, so tests drive it with plain argument vectors.
//
// Command groups: `vm ...` (feos.vm.vmm.api.v1.VMService), `gpu ...` and `host ...`
// (feosd.v1.HostDeviceService: the host's PCI inventory and its readiness for passthrough).
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "cli/requests.h"
#include "common/error.h"
#include "feos/vm/vmm/api/v1/vm.pb.h"
#include "feosd/v1/host.pb.h"
#include "sys/filesystem.h"

namespace feos::cli {

namespace v1 = ::feos::vm::vmm::api::v1;
namespace hostv1 = ::feosd::v1;

// Process exit statuses.
inline constexpr int kExitOk = 0;
// The daemon answered an error; a wait timed out; `host check` found the host not ready.
inline constexpr int kExitServerError = 1;
inline constexpr int kExitUsage = 2;        // bad command line; nothing was sent
inline constexpr int kExitUnreachable = 3;  // no connection to the daemon

inline constexpr char kDefaultSocket[] = "/run/feosd/feosd.sock";
inline constexpr char kSocketEnv[] = "FEOSCTL_SOCKET";

enum class OutputFormat { kTable, kJson };

// A --timeout or --wait value (seconds, fractions allowed) as a steady-clock duration.
inline std::chrono::steady_clock::duration to_duration(double seconds) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(seconds));
}

enum class Command {
  kVmCreate,
  kVmStart,
  kVmGet,
  kVmShutdown,
  kVmPause,
  kVmResume,
  kVmDelete,
  kVmPing,
  kVmList,
  kVmConsole,
  kVmEvents,
  kVmDiskAttach,  // vm disk attach ID PATH[,ro][,id=ID]
  kVmDiskDetach,  // vm disk detach ID DEVICE_ID
  kVmNicAttach,   // vm nic attach ID TAP[,mac=MAC][,id=ID]
  kVmNicDetach,   // vm nic detach ID DEVICE_ID
  kGpuList,    // gpu list [--all]
  kHostCheck,  // host check
};

// TLS towards a TCP address (feosd serves TCP only with TLS and client certificates). The PEM
// contents are read while parsing, so a missing file is a usage error before any connection.
struct TlsOptions {
  std::string ca_pem;       // --tls-ca: the CA certificate(s) that verify the daemon's certificate
  std::string cert_pem;     // --tls-cert: the client's certificate (chain); empty: none presented
  std::string key_pem;      // --tls-key: its private key; set exactly when cert_pem is
  std::string server_name;  // --tls-server-name: name to verify instead of the address's host
};

struct GlobalOptions {
  std::string socket_path = kDefaultSocket;  // --socket, else $FEOSCTL_SOCKET, else the default
  std::optional<std::string> address;        // --address HOST:PORT (TCP) instead of the socket
  std::optional<TlsOptions> tls;             // set by --tls-ca (only with --address)
  OutputFormat output = OutputFormat::kTable;
  double timeout_s = 30;  // --timeout: deadline of each unary call and of connecting

  // gRPC target: "unix:<path>" or "<host:port>".
  std::string grpc_target() const;
  // Where the daemon was looked for, for the unreachable hint: "socket: PATH" / "address: H:P"
  // (" with TLS" appended when tls is set).
  std::string where() const;
};

struct ConsoleOptions {
  std::optional<std::string> until;  // --until TEXT: exit 0 once TEXT was printed
  std::optional<std::string> send;   // --send TEXT: send TEXT + "\n" right after attaching
  std::optional<double> wait_s;      // --wait SECONDS
  int idle_ms = 300;                 // --idle-ms: with --send only, detach after this much quiet

  // Interactive sessions forward stdin; --until / --send make a scripted one that ignores it.
  bool interactive() const { return !until && !send; }
};

struct EventsOptions {
  bool follow = true;                      // false: --no-follow
  int idle_ms = 300;                       // --idle-ms: quiet period that ends the history
  std::optional<v1::VmState> until_state;  // --until-state STATE (needs the VM ID)
  std::optional<double> wait_s;            // --wait SECONDS
};

struct Invocation {
  GlobalOptions global;
  Command command = Command::kVmList;
  std::string vm_id;  // the ID argument of start/get/shutdown/pause/resume/delete/ping/console

  v1::CreateVmRequest create_request;  // vm create
  bool start_after_create = false;     // vm create --start
  bool create_no_wait = false;         // vm create --no-wait: answer while the VM is creating

  std::optional<uint32_t> shutdown_grace_s;  // vm shutdown --grace SECONDS

  v1::StreamVmEventsRequest events_request;  // vm events
  EventsOptions events;

  ConsoleOptions console;  // vm console

  v1::AttachDiskRequest attach_disk_request;  // vm disk attach (vm_id set by the client)
  v1::DetachDiskRequest detach_disk_request;  // vm disk detach
  v1::AttachNicRequest attach_nic_request;    // vm nic attach
  v1::DetachNicRequest detach_nic_request;    // vm nic detach

  hostv1::ListPciDevicesRequest pci_request;  // gpu list: gpus_only unless --all
};

// What the process needs from its surroundings, injected for tests.
struct CommandLineEnv {
  std::optional<std::string> socket_env;  // value of $FEOSCTL_SOCKET, if set
  std::string cwd;                        // absolute; relative host paths are resolved against it
  const sys::Filesystem* fs = nullptr;    // reads --ignition files; must not be null
};

struct ParsedCommandLine {
  // Set when help was asked for (--help, -h): print it to stdout and exit 0; `invocation` is unset.
  std::optional<std::string> help;
  Invocation invocation;
};

// Parses `args` (without the program name). INVALID_ARGUMENT with a one-line message naming the
// offending flag or argument for any usage error (unknown option or command, missing or malformed
// value, conflicting options, an unreadable or non-PEM --tls-* file); the caller prints it and
// exits with kExitUsage. TLS rules: --tls-ca needs --address; --tls-cert and --tls-key need each
// other and --tls-ca; --tls-server-name needs --tls-ca.
Result<ParsedCommandLine> parse_command_line(const std::vector<std::string>& args,
                                             const CommandLineEnv& env);

}  // namespace feos::cli
