#include "cli/client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <thread>

#include "cli/connection.h"
#include "cli/console_command.h"
#include "cli/events_command.h"
#include "cli/format.h"
#include "cli/plan_format.h"
#include "cli/output.h"
#include "feos/vm/vmm/api/v1/vm.grpc.pb.h"
#include "feosd/v1/host.grpc.pb.h"

namespace feos::cli {
namespace {

using Stub = v1::VMService::Stub;
using HostStub = hostv1::HostDeviceService::Stub;

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

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
      case Command::kVmShutdown: {
        v1::ShutdownVmRequest request;
        if (inv_.shutdown_grace_s) request.set_grace_seconds(*inv_.shutdown_grace_s);
        return simple(&Stub::ShutdownVm, std::move(request), v1::ShutdownVmResponse{});
      }
      case Command::kVmPause:
        return simple(&Stub::PauseVm, v1::PauseVmRequest{}, v1::PauseVmResponse{});
      case Command::kVmResume:
        return simple(&Stub::ResumeVm, v1::ResumeVmRequest{}, v1::ResumeVmResponse{});
      case Command::kVmDelete:
        return simple(&Stub::DeleteVm, v1::DeleteVmRequest{}, v1::DeleteVmResponse{});
      case Command::kVmGet: return get();
      case Command::kVmPing: return ping();
      case Command::kVmList: return list();
      case Command::kVmConsole: return run_console_command(*stub_, inv_);
      case Command::kVmEvents: return run_events_command(*stub_, inv_);
      case Command::kVmDiskAttach: return attach(&Stub::AttachDisk, inv_.attach_disk_request, v1::AttachDiskResponse{});
      case Command::kVmDiskDetach:
        return simple(&Stub::DetachDisk, inv_.detach_disk_request, v1::DetachDiskResponse{});
      case Command::kVmNicAttach: return attach(&Stub::AttachNic, inv_.attach_nic_request, v1::AttachNicResponse{});
      case Command::kVmNicDetach:
        return simple(&Stub::DetachNic, inv_.detach_nic_request, v1::DetachNicResponse{});
      case Command::kGpuList: return gpu_list();
      case Command::kHostCheck: return host_check();
    }
    return print_error("INTERNAL", "unhandled command", kExitServerError);
  }

 private:
  void set_deadline(grpc::ClientContext& context) const {
    context.set_deadline(std::chrono::system_clock::now() + to_duration(inv_.global.timeout_s));
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

  // AttachDisk / AttachNic: prints the device id.
  template <typename Request, typename Response>
  int attach(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*), Request request,
             Response response) {
    request.set_vm_id(inv_.vm_id);
    grpc::Status status = call(method, request, &response);
    if (!status.ok()) return report(status);
    return print_result(inv_, response, response.device_id() + "\n");
  }

  int create() {
    v1::CreateVmResponse created;
    grpc::Status status = call(&Stub::CreateVm, inv_.create_request, &created);
    if (!status.ok()) return report(status);
    if (inv_.create_request.dry_run())
      return print_result(inv_, created,
                          inv_.global.output == OutputFormat::kTable ? format_plan(created.plan()) : "");
    // Printed before waiting and starting, so a script learns the id even when either fails.
    int rc = print_result(inv_, created, created.vm_id() + "\n");
    if (rc != kExitOk || inv_.create_no_wait) return rc;
    if (rc = wait_created(created.vm_id()); rc != kExitOk || !inv_.start_after_create) return rc;
    v1::StartVmRequest start;
    start.set_vm_id(created.vm_id());
    v1::StartVmResponse started;
    status = call(&Stub::StartVm, start, &started);
    if (!status.ok())
      return report(status, "created vm " + created.vm_id() + " but could not start it");
    return kExitOk;
  }

  // CreateVm answers with the VM creating (FeOS's two phases); the image pull and GPU binding
  // follow. Polls GetVm until the VM leaves creating: OK when created, the VM's reason when the
  // create failed (crashed).
  int wait_created(const std::string& id) {
    v1::GetVmRequest request;
    request.set_vm_id(id);
    for (;;) {
      v1::VmInfo info;
      grpc::Status status = call(&Stub::GetVm, request, &info);
      if (!status.ok()) return report(status, "created vm " + id + " but could not watch it");
      if (info.state() == v1::VM_STATE_CREATED) return kExitOk;
      if (info.state() != v1::VM_STATE_CREATING)
        return print_error("FAILED_PRECONDITION",
                           "vm " + id + " is " + state_name(info.state()) + ": " + info.state_reason(),
                           kExitServerError);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
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

  const Invocation& inv_;
  std::unique_ptr<Stub> stub_;
  std::unique_ptr<HostStub> host_stub_;
};

}  // namespace

int run(const Invocation& inv) {
  silence_grpc_log();
  if (inv.global.tls) {
    if (auto checked = check_tls(*inv.global.tls); !checked) {
      return print_error(checked.error(), kExitUsage);
    }
  }
  std::shared_ptr<grpc::Channel> channel = make_channel(inv.global);
  if (auto failure = wait_until_connected(channel, inv.global)) {
    return print_error(
        "UNAVAILABLE",
        "cannot connect to feosd: " + *failure + " (is feosd running? " + inv.global.where() + ")",
        kExitUnreachable);
  }
  return Client(inv, channel).run();
}

}  // namespace feos::cli
