#include "cli/client.h"

#include <fcntl.h>
#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "cli/format.h"
#include "cli/terminal.h"
#include "cli/watch.h"
#include "feos/vm/vmm/api/v1/vm.grpc.pb.h"
#include "feosd/v1/host.grpc.pb.h"
#include "tls/pem.h"

namespace feos::cli {
namespace {

using Clock = std::chrono::steady_clock;
using Stub = v1::VMService::Stub;
using HostStub = hostv1::HostDeviceService::Stub;

// A host with thousands of PCI functions answers `gpu list --all` with more than gRPC's default
// 4 MiB receive limit.
constexpr int kMaxReceiveBytes = 64 << 20;

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

std::string seconds_text(double s) {
  std::string text = std::to_string(s);
  // "30.000000" -> "30", "0.500000" -> "0.5"
  text.erase(text.find_last_not_of('0') + 1);
  if (text.back() == '.') text.pop_back();
  return text + " s";
}

int print_error(std::string_view code_name, std::string_view message, int exit_code) {
  std::cerr << error_line(code_name, message) << std::endl;
  return exit_code;
}

int print_error(const Error& error, int exit_code) {
  return print_error(code_name(error.code), error.message, exit_code);
}

int report(const grpc::Status& status, std::string_view context = {}) {
  std::string message = status.error_message();
  if (!context.empty()) message = std::string(context) + ": " + message;
  return print_error(grpc_code_name(status.error_code()), message, kExitServerError);
}

// Writes all of `data` to fd 1 (raw console output). False if stdout is gone.
bool write_stdout(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(STDOUT_FILENO, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Prints `message` as JSON (pretty) or `text` (already formatted) to stdout.
int print_result(const Invocation& inv, const google::protobuf::Message& message,
                 const std::string& text) {
  if (inv.global.output == OutputFormat::kJson) {
    auto json = to_json(message, /*pretty=*/true);
    if (!json) return print_error(json.error(), kExitServerError);
    std::cout << *json << std::endl;
  } else {
    std::cout << text << std::flush;
  }
  return kExitOk;
}

// Why a Unix socket cannot be connected to, from a plain connect(2): names the errno
// (ENOENT: no daemon ever listened there; ECONNREFUSED: a stale socket; EACCES: permissions).
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

// Why a TCP connection failed, in gRPC's words (refused, TLS handshake failed, certificate not
// accepted, ...): a call that does not wait for the channel fails at once with the channel's last
// error. nullopt if the call went through after all (the connection came up meanwhile).
std::optional<std::string> probe_tcp(const std::shared_ptr<grpc::Channel>& channel,
                                     const Invocation& inv) {
  const std::string& address = *inv.global.address;
  grpc::ClientContext context;
  context.set_wait_for_ready(false);
  context.set_deadline(std::chrono::system_clock::now() + seconds(inv.global.timeout_s));
  v1::ListVmsResponse response;
  grpc::Status status = v1::VMService::NewStub(channel)->ListVms(&context, {}, &response);
  if (status.ok()) return std::nullopt;
  return "connection to " + address + " failed: " + status.error_message();
}

// Waits until the channel is READY. Fails fast when the first attempt fails (no daemon, TLS
// handshake failed) instead of retrying until the deadline. Returns the failure detail, or
// nullopt when connected.
std::optional<std::string> connect(const std::shared_ptr<grpc::Channel>& channel,
                                   const Invocation& inv) {
  auto deadline = std::chrono::system_clock::now() + seconds(inv.global.timeout_s);
  grpc_connectivity_state state = channel->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      if (inv.global.address) return probe_tcp(channel, inv);
      return probe_unix_socket(inv.global.socket_path);
    }
    if (!channel->WaitForStateChange(state, deadline)) {
      return "no connection within " + seconds_text(inv.global.timeout_s);
    }
    state = channel->GetState(/*try_to_connect=*/true);
  }
  return std::nullopt;
}

// gRPC's own log lines would break the one-line error contract on stderr.
void silent_log(gpr_log_func_args*) {}

class Client {
 public:
  Client(const Invocation& inv, std::shared_ptr<grpc::Channel> channel)
      : inv_(inv),
        stub_(v1::VMService::NewStub(channel)),
        host_stub_(hostv1::HostDeviceService::NewStub(channel)) {}

  int run() {
    switch (inv_.command) {
      case Command::kVmCreate: return create();
      case Command::kVmStart:
        return simple(&Stub::StartVm, v1::StartVmRequest{}, v1::StartVmResponse{});
      case Command::kVmShutdown:
        return simple(&Stub::ShutdownVm, v1::ShutdownVmRequest{}, v1::ShutdownVmResponse{});
      case Command::kVmPause:
        return simple(&Stub::PauseVm, v1::PauseVmRequest{}, v1::PauseVmResponse{});
      case Command::kVmResume:
        return simple(&Stub::ResumeVm, v1::ResumeVmRequest{}, v1::ResumeVmResponse{});
      case Command::kVmDelete:
        return simple(&Stub::DeleteVm, v1::DeleteVmRequest{}, v1::DeleteVmResponse{});
      case Command::kVmGet: return get();
      case Command::kVmPing: return ping();
      case Command::kVmList: return list();
      case Command::kVmConsole: return console();
      case Command::kVmEvents: return events();
      case Command::kGpuList: return gpu_list();
      case Command::kHostCheck: return host_check();
    }
    return print_error("INTERNAL", "unhandled command", kExitServerError);
  }

 private:
  void set_deadline(grpc::ClientContext& context) const {
    context.set_deadline(std::chrono::system_clock::now() + seconds(inv_.global.timeout_s));
  }

  // Unary call with the --timeout deadline.
  template <typename Request, typename Response>
  grpc::Status call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response) {
    grpc::ClientContext context;
    set_deadline(context);
    return (stub_.get()->*method)(&context, request, response);
  }

  // Commands whose request is just the VM id and whose answer is empty: silent in table mode,
  // "{}" in JSON mode.
  template <typename Request, typename Response>
  int simple(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
             Request request, Response response) {
    request.set_vm_id(inv_.vm_id);
    grpc::Status status = call(method, request, &response);
    if (!status.ok()) return report(status);
    return print_result(inv_, response, "");
  }

  int create() {
    v1::CreateVmResponse created;
    grpc::Status status = call(&Stub::CreateVm, inv_.create_request, &created);
    if (!status.ok()) return report(status);
    // Printed before starting, so a script learns the id even when the start fails.
    int rc = print_result(inv_, created, created.vm_id() + "\n");
    if (rc != kExitOk || !inv_.start_after_create) return rc;
    v1::StartVmRequest start;
    start.set_vm_id(created.vm_id());
    v1::StartVmResponse started;
    status = call(&Stub::StartVm, start, &started);
    if (!status.ok())
      return report(status, "created vm " + created.vm_id() + " but could not start it");
    return kExitOk;
  }

  int get() {
    v1::GetVmRequest request;
    request.set_vm_id(inv_.vm_id);
    v1::VmInfo info;
    grpc::Status status = call(&Stub::GetVm, request, &info);
    if (!status.ok()) return report(status);
    return print_result(
        inv_, info,
        inv_.global.output == OutputFormat::kTable ? format_vm_details(info, now_unix_ms()) : "");
  }

  int ping() {
    v1::PingVmRequest request;
    request.set_vm_id(inv_.vm_id);
    v1::PingVmResponse pong;
    grpc::Status status = call(&Stub::PingVm, request, &pong);
    if (!status.ok()) return report(status);
    return print_result(inv_, pong, format_ping(pong));
  }

  int list() {
    v1::ListVmsResponse vms;
    grpc::Status status = call(&Stub::ListVms, v1::ListVmsRequest{}, &vms);
    if (!status.ok()) return report(status);
    return print_result(
        inv_, vms,
        inv_.global.output == OutputFormat::kTable ? format_vm_table(vms, now_unix_ms()) : "");
  }

  int gpu_list() {
    grpc::ClientContext context;
    set_deadline(context);
    hostv1::ListPciDevicesResponse devices;
    grpc::Status status = host_stub_->ListPciDevices(&context, inv_.pci_request, &devices);
    if (!status.ok()) return report(status);
    return print_result(
        inv_, devices, inv_.global.output == OutputFormat::kTable ? format_pci_table(devices) : "");
  }

  // Exit 0 only when the host is ready, in both output formats, so scripts can gate on it.
  int host_check() {
    grpc::ClientContext context;
    set_deadline(context);
    hostv1::CheckHostResponse check;
    grpc::Status status = host_stub_->CheckHost(&context, hostv1::CheckHostRequest{}, &check);
    if (!status.ok()) return report(status);
    int rc = print_result(
        inv_, check, inv_.global.output == OutputFormat::kTable ? format_host_check(check) : "");
    if (rc != kExitOk) return rc;
    return check.ready() ? kExitOk : kExitServerError;
  }

  int events();
  int console();

  const Invocation& inv_;
  std::unique_ptr<Stub> stub_;
  std::unique_ptr<HostStub> host_stub_;
};

// ---- vm events ----------------------------------------------------------------------------

int Client::events() {
  const EventsOptions& opts = inv_.events;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::VmEvent>> reader =
      stub_->StreamVmEvents(&context, inv_.events_request);

  // A thread does the blocking reads; this one applies the idle and --wait deadlines.
  std::mutex mutex;
  std::condition_variable arrived;
  std::deque<v1::VmEvent> queue;
  bool ended = false;
  std::thread pump([&] {
    v1::VmEvent event;
    while (reader->Read(&event)) {
      std::lock_guard lock(mutex);
      queue.push_back(event);
      arrived.notify_one();
    }
    std::lock_guard lock(mutex);
    ended = true;
    arrived.notify_one();
  });

  std::optional<StateWatcher> watcher;
  if (opts.until_state) watcher.emplace(inv_.vm_id, *opts.until_state);
  const Clock::time_point start = Clock::now();
  // time_point::max() when there is no --wait.
  const Clock::time_point wait_deadline =
      opts.wait_s ? start + seconds(*opts.wait_s) : Clock::time_point::max();
  const auto idle = std::chrono::milliseconds(opts.idle_ms);
  // The history is over once the stream was quiet for `idle`; only --no-follow and
  // --until-state care.
  bool history_pending = !opts.follow || watcher.has_value();
  Clock::time_point last_event = start;
  std::optional<int> rc;  // set when this side ends the stream

  auto print_event = [&](const v1::VmEvent& event) {
    std::cout << (inv_.global.output == OutputFormat::kJson ? event_to_json(event)
                                                            : format_event_line(event))
              << std::endl;
  };

  std::unique_lock lock(mutex);
  while (!rc) {
    if (!queue.empty()) {
      std::deque<v1::VmEvent> batch;
      batch.swap(queue);
      lock.unlock();
      for (const v1::VmEvent& event : batch) {
        print_event(event);
        if (watcher && watcher->on_event(event)) {
          rc = kExitOk;
          break;
        }
      }
      last_event = Clock::now();
      lock.lock();
      continue;
    }
    if (ended) break;

    Clock::time_point deadline = wait_deadline;
    if (history_pending) deadline = std::min(deadline, last_event + idle);
    if (arrived.wait_until(lock, deadline, [&] { return !queue.empty() || ended; })) continue;

    const Clock::time_point now = Clock::now();
    if (history_pending && now >= last_event + idle) {
      history_pending = false;
      if (watcher && watcher->on_idle()) {
        rc = kExitOk;
      } else if (!opts.follow && watcher) {
        std::string latest = watcher->latest() ? state_name(*watcher->latest()) : "unknown";
        rc = print_error(
            "FAILED_PRECONDITION",
            "vm " + inv_.vm_id + " is " + latest + ", not " + state_name(*opts.until_state),
            kExitServerError);
      } else if (!opts.follow) {
        rc = kExitOk;
      }
    }
    if (!rc && now >= wait_deadline) {
      if (watcher) {
        std::string latest = watcher->latest() ? state_name(*watcher->latest()) : "unknown";
        rc = print_error("DEADLINE_EXCEEDED",
                         "timed out waiting for vm " + inv_.vm_id + " to reach state " +
                             state_name(*opts.until_state) + " after " +
                             seconds_text(*opts.wait_s) + " (latest state: " + latest + ")",
                         kExitServerError);
      } else {
        rc = kExitOk;
      }
    }
  }
  lock.unlock();

  if (rc) {
    context.TryCancel();
    pump.join();
    reader->Finish();  // CANCELLED by us: not an error
    return *rc;
  }
  // The server ended the stream.
  pump.join();
  grpc::Status status = reader->Finish();
  if (!status.ok()) return report(status);
  if (watcher) {
    return print_error("ABORTED",
                       "event stream ended before vm " + inv_.vm_id + " reached state " +
                           state_name(*opts.until_state),
                       kExitServerError);
  }
  return kExitOk;
}

// ---- vm console ---------------------------------------------------------------------------

int Client::console() {
  const ConsoleOptions& opts = inv_.console;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StreamVmConsoleRequest, v1::StreamVmConsoleResponse>>
      stream = stub_->StreamVmConsole(&context);

  // A failed Write means the call is over; Finish() tells why (e.g. NOT_FOUND).
  auto finish_with_error = [&]() { return report(stream->Finish()); };
  v1::StreamVmConsoleRequest attach;
  attach.mutable_attach()->set_vm_id(inv_.vm_id);
  if (!stream->Write(attach)) return finish_with_error();
  if (opts.send) {
    v1::StreamVmConsoleRequest data;
    data.mutable_data()->set_input(*opts.send + "\n");
    if (!stream->Write(data)) return finish_with_error();
  }

  // The reader thread copies output to stdout and watches for --until; it wakes this thread, which
  // reads stdin and keeps the deadlines, through a pipe.
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    return print_error("INTERNAL", std::string("pipe2: ") + std::strerror(errno), kExitServerError);
  }
  std::atomic<bool> matched{false};
  std::atomic<bool> ended{false};
  std::atomic<int64_t> last_output_ticks{Clock::now().time_since_epoch().count()};
  std::thread pump([&] {
    std::optional<TextMatcher> matcher;
    if (opts.until) matcher.emplace(*opts.until);
    bool stdout_ok = true;
    v1::StreamVmConsoleResponse chunk;
    while (stream->Read(&chunk)) {
      if (matched) continue;  // drain until our cancel ends the stream
      if (stdout_ok) stdout_ok = write_stdout(chunk.output());
      last_output_ticks = Clock::now().time_since_epoch().count();
      if (matcher && matcher->feed(chunk.output())) {
        matched = true;
        [[maybe_unused]] ssize_t n = ::write(wake[1], "m", 1);
      }
    }
    ended = true;
    [[maybe_unused]] ssize_t n = ::write(wake[1], "e", 1);
  });

  const bool interactive = opts.interactive();
  const bool tty = interactive && ::isatty(STDIN_FILENO) == 1;
  std::optional<RawTerminal> raw;
  if (tty) {
    std::cerr << "Attached to the console of vm " << inv_.vm_id << "; Ctrl-] detaches."
              << std::endl;
    auto entered = RawTerminal::enter(STDIN_FILENO);
    if (entered) raw.emplace(std::move(*entered));
  }

  const Clock::time_point start = Clock::now();
  // time_point::max() when there is no --wait.
  const Clock::time_point wait_deadline =
      opts.wait_s ? start + seconds(*opts.wait_s) : Clock::time_point::max();
  // --send alone: nothing to wait for but the echo; detach once the output went quiet.
  const bool detach_when_quiet = opts.send && !opts.until;
  const auto idle = std::chrono::milliseconds(opts.idle_ms);
  bool stdin_open = interactive;
  std::optional<int> rc;  // set when this side ends the session

  while (!rc && !ended) {
    if (matched) {
      rc = kExitOk;
      break;
    }
    Clock::time_point deadline = wait_deadline;
    if (detach_when_quiet) {
      deadline =
          std::min(deadline, Clock::time_point(Clock::duration(last_output_ticks.load())) + idle);
    }
    int timeout_ms = -1;
    if (deadline != Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, 60'000));
    }
    pollfd fds[2] = {{wake[0], POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    int n = ::poll(fds, stdin_open ? 2 : 1, timeout_ms);
    if (n < 0 && errno != EINTR) {
      rc = print_error("INTERNAL", std::string("poll: ") + std::strerror(errno), kExitServerError);
      break;
    }
    if (n > 0 && (fds[0].revents & POLLIN)) {
      char drain[64];
      while (::read(wake[0], drain, sizeof drain) > 0) {
      }
      continue;  // re-check matched / ended
    }
    if (n > 0 && stdin_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buffer[4096];
      ssize_t got = ::read(STDIN_FILENO, buffer, sizeof buffer);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        stdin_open = false;  // EOF: keep showing output; the server or --wait ends the session
        stream->WritesDone();
        continue;
      }
      std::string_view input(buffer, static_cast<size_t>(got));
      bool detach = false;
      if (tty) {
        if (size_t pos = input.find(kDetachKey); pos != std::string_view::npos) {
          input = input.substr(0, pos);
          detach = true;
        }
      }
      if (!input.empty()) {
        v1::StreamVmConsoleRequest data;
        data.mutable_data()->set_input(std::string(input));
        if (!stream->Write(data)) stdin_open = false;  // stream broken: the reader sees the end
      }
      if (detach) rc = kExitOk;
      continue;
    }
    const Clock::time_point now = Clock::now();
    if (now >= wait_deadline) {
      rc = opts.until
               ? print_error("DEADLINE_EXCEEDED",
                             "timed out waiting for '" + *opts.until + "' on the console of vm " +
                                 inv_.vm_id + " after " + seconds_text(*opts.wait_s),
                             kExitServerError)
               : kExitOk;
    } else if (detach_when_quiet &&
               now >= Clock::time_point(Clock::duration(last_output_ticks.load())) + idle) {
      rc = kExitOk;
    }
  }
  raw.reset();  // restore the terminal before anything else is printed
  if (tty) std::cerr << std::endl;
  if (matched && !rc) rc = kExitOk;

  if (rc) {
    context.TryCancel();
    pump.join();
    stream->Finish();  // CANCELLED by us: not an error
  } else {
    pump.join();
    grpc::Status status = stream->Finish();
    if (!status.ok()) {
      rc = report(status);
    } else if (opts.until) {
      rc = print_error(
          "ABORTED",
          "console of vm " + inv_.vm_id + " closed before '" + *opts.until + "' appeared",
          kExitServerError);
    } else {
      rc = kExitOk;
    }
  }
  ::close(wake[0]);
  ::close(wake[1]);
  return *rc;
}

// Parses the TLS material before gRPC sees it: gRPC reports a malformed key or a key that does
// not belong to the certificate only as an unusable channel ("empty address list").
// INVALID_ARGUMENT naming the flag.
Status check_tls(const TlsOptions& tls) {
  FEOS_TRY(feos::tls::check_certificates(tls.ca_pem, "--tls-ca"));
  if (tls.cert_pem.empty()) return ok();
  return feos::tls::check_key_pair(tls.cert_pem, "--tls-cert", tls.key_pem, "--tls-key");
}

// TLS (with the client certificate, when given) for --tls-ca, else plaintext: the Unix socket, or
// a TCP server that takes plaintext (feosd itself never does).
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

int run(const Invocation& inv) {
  gpr_set_log_function(silent_log);
  if (inv.global.tls) {
    if (auto checked = check_tls(*inv.global.tls); !checked) {
      return print_error(checked.error(), kExitUsage);
    }
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  std::shared_ptr<grpc::ChannelCredentials> creds = credentials(inv.global, args);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(inv.global.grpc_target(), creds, args);
  if (auto failure = connect(channel, inv)) {
    return print_error(
        "UNAVAILABLE",
        "cannot connect to feosd: " + *failure + " (is feosd running? " + inv.global.where() + ")",
        kExitUnreachable);
  }
  return Client(inv, channel).run();
}

}  // namespace feos::cli
