#pragma once
// An in-process feosd for API tests: a real grpc::Server on a unix socket in a scratch directory,
// serving the real VMService and HostDeviceService (src/api) over the real VmManager and EventBus
// (src/core), a real SQLite Database file, and real HostDevices on the FakeKernel of a simulated
// HGX H100 host (8 GPUs, NVSwitches, NICs). Wired by feosd's own daemon::Daemon (src/daemon), with
// two seams filled by fakes: the filesystem is the FakeKernel, and the hypervisor a fake
// (tests/core/fake_hypervisor.h) behind the same spec checks every real adapter runs.
//
//   auto api = ApiHarness::start();                 // Result<std::unique_ptr<ApiHarness>>
//   auto vms = (*api)->vm_stub();                   // generated stub over the unix socket
//   EXPECT_EQ((*api)->kernel().snapshot(), before);
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "common/error.h"
#include "core/fake_hypervisor.h"
#include "core/vm_manager.h"
#include "daemon/daemon.h"
#include "feos/vm/vmm/api/v1/vm.grpc.pb.h"
#include "feosd/v1/host.grpc.pb.h"
#include "store/database.h"
#include "support/fake_host.h"

namespace feos::api::testing {

namespace pb = ::feos::vm::vmm::api::v1;

// The FakeHypervisor behind the checks a real adapter makes in validate(): model::validate
// (QemuHypervisor::validate runs it first, then looks for the files). Files are not looked for:
// the fake host has no kernel images.
class CheckingHypervisor final : public vmm::Hypervisor {
 public:
  Status validate(const model::VmSpec& spec) const override;
  Result<int> start(const std::string& vm_id, const model::VmSpec& spec,
                    const std::vector<model::AssignedGpu>& gpus, const std::string& runtime_dir) override {
    return fake.start(vm_id, spec, gpus, runtime_dir);
  }
  Result<model::LaunchPlan> plan_start(const std::string& vm_id, const model::VmSpec& spec,
                                       const std::vector<model::AssignedGpu>& gpus,
                                       const std::string& runtime_dir) const override {
    return fake.plan_start(vm_id, spec, gpus, runtime_dir);
  }
  model::GuestLimits guest_limits() const override { return fake.guest_limits(); }
  model::GpuFit fit_gpus(const std::vector<model::AssignedGpu>& cards) const override {
    return fake.fit_gpus(cards);
  }
  Result<vmm::RunState> adopt(const std::string& vm_id, int pid, const std::string& runtime_dir) override {
    return fake.adopt(vm_id, pid, runtime_dir);
  }
  std::vector<vmm::FoundProcess> find_processes(const std::string& runtime_root) override {
    return fake.find_processes(runtime_root);
  }
  Status kill_found(const std::string& vm_id, int pid) override { return fake.kill_found(vm_id, pid); }
  Status pause(const std::string& vm_id) override { return fake.pause(vm_id); }
  Status resume(const std::string& vm_id) override { return fake.resume(vm_id); }
  Status request_shutdown(const std::string& vm_id) override { return fake.request_shutdown(vm_id); }
  Status stop(const std::string& vm_id) override { return fake.stop(vm_id); }
  Result<vmm::PingInfo> ping(const std::string& vm_id) override { return fake.ping(vm_id); }
  Result<std::shared_ptr<vmm::Console>> console(const std::string& vm_id) override { return fake.console(vm_id); }
  void set_exit_callback(ExitCallback callback) override { fake.set_exit_callback(std::move(callback)); }
  Result<model::DiskSpec> attach_disk(const std::string& vm_id, const model::DiskSpec& disk) override {
    return fake.attach_disk(vm_id, disk);
  }
  Result<bool> attach_nic(const std::string& vm_id, const model::NetSpec& nic) override {
    return fake.attach_nic(vm_id, nic);
  }
  Status remove_created_tap(const std::string& tap) override { return fake.remove_created_tap(tap); }
  Status detach_disk(const std::string& vm_id, const std::string& id) override { return fake.detach_disk(vm_id, id); }
  Status detach_nic(const std::string& vm_id, const std::string& id) override { return fake.detach_nic(vm_id, id); }

  core::FakeHypervisor fake;
};

struct HarnessOptions {
  // hostdev::Options as the daemon uses them (defaults), unless a test shortens them.
  hostdev::Options devices{};
  // Log level of every component logger ("warn" keeps per-VM info lines out of test output).
  std::string log_level = "warn";
};

// The eight GPUs of test::hgx_h100_host() (the harness's host, without its NVSwitches), in address order.
const std::vector<std::string>& hgx_gpus();

class ApiHarness {
 public:
  // Builds the fake host, opens the daemon on it (database, devices, the (empty) VM manager
  // recovered) and starts serving. Errors: the fake host's, daemon::Daemon::open()'s; UNAVAILABLE
  // when the server does not start.
  static Result<std::unique_ptr<ApiHarness>> start(HarnessOptions options = {});
  // Stops the server (in-flight calls get 2 s), then tears down the daemon, then the host.
  ~ApiHarness();
  ApiHarness(const ApiHarness&) = delete;
  ApiHarness& operator=(const ApiHarness&) = delete;

  // "unix:<scratch>/feosd.sock".
  const std::string& target() const { return target_; }
  // A new channel to the server. `own_connection`: never share a connection with other channels
  // (gRPC otherwise reuses one subchannel for channels with equal arguments).
  std::shared_ptr<grpc::Channel> channel(bool own_connection = false) const;
  std::unique_ptr<pb::VMService::Stub> vm_stub() const { return pb::VMService::NewStub(channel()); }
  std::unique_ptr<feosd::v1::HostDeviceService::Stub> host_stub() const {
    return feosd::v1::HostDeviceService::NewStub(channel());
  }

  test::FakeKernel& kernel() { return host_->kernel(); }
  const sys::HostPaths& paths() const { return host_->paths(); }
  store::Database& db() { return daemon_->db(); }
  core::VmManager& manager() { return daemon_->manager(); }
  core::FakeHypervisor& hypervisor() { return hypervisor_.fake; }
  const std::string& state_dir() const { return state_dir_.path(); }

 private:
  ApiHarness() = default;

  // Declaration order is construction order; destruction runs backwards (server first).
  std::unique_ptr<test::FakeHost> host_;
  test::TempDir state_dir_ = test::TempDir::for_trees();
  CheckingHypervisor hypervisor_;
  std::unique_ptr<daemon::Daemon> daemon_;
  std::unique_ptr<grpc::Server> server_;
  std::string target_;
};

// A CreateVmRequest that the service accepts: 1 vCPU, 256 MiB, kernel boot, no GPU.
pb::CreateVmRequest valid_create_request();

}  // namespace feos::api::testing
