// feosctl's gRPC side against fake feosd services on a real unix socket: the request that reaches
// the daemon, what is printed, the exit status. The daemon's own HostDeviceService is tested with
// the daemon; here only the client's half of the contract is.
#include "cli/client.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/command_line.h"
#include "cli/format.h"
#include "cli/json_format.h"
#include "feos/vm/vmm/api/v1/vm.grpc.pb.h"
#include "feosd/v1/host.grpc.pb.h"
#include "support/temp_dir.h"

namespace feos::cli {
namespace {

class FakeHostService final : public hostv1::HostDeviceService::Service {
 public:
  grpc::Status ListPciDevices(grpc::ServerContext*, const hostv1::ListPciDevicesRequest* request,
                              hostv1::ListPciDevicesResponse* response) override {
    std::lock_guard lock(mutex_);
    requests_.push_back(*request);
    *response = devices_;
    return grpc::Status::OK;
  }
  grpc::Status CheckHost(grpc::ServerContext*, const hostv1::CheckHostRequest*,
                         hostv1::CheckHostResponse* response) override {
    std::lock_guard lock(mutex_);
    *response = check_;
    return grpc::Status::OK;
  }

  void set_devices(hostv1::ListPciDevicesResponse devices) {
    std::lock_guard lock(mutex_);
    devices_ = std::move(devices);
  }
  void set_check(hostv1::CheckHostResponse check) {
    std::lock_guard lock(mutex_);
    check_ = std::move(check);
  }
  std::vector<hostv1::ListPciDevicesRequest> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  std::mutex mutex_;
  hostv1::ListPciDevicesResponse devices_;
  hostv1::CheckHostResponse check_;
  std::vector<hostv1::ListPciDevicesRequest> requests_;
};

class FakeVmService final : public v1::VMService::Service {
 public:
  grpc::Status GetVm(grpc::ServerContext*, const v1::GetVmRequest* request,
                     v1::VmInfo* response) override {
    std::lock_guard lock(mutex_);
    ++get_calls_;
    if (request->vm_id() != vm_.vm_id()) {
      return {grpc::StatusCode::NOT_FOUND, "vm " + request->vm_id() + " not found"};
    }
    // A created VM stays creating for two polls, then becomes what create_outcome_ says.
    if (vm_.state() == v1::VM_STATE_CREATING && ++creating_polls_ > 2) {
      vm_.set_state(create_outcome_.state());
      vm_.set_state_reason(create_outcome_.state_reason());
    }
    *response = vm_;
    return grpc::Status::OK;
  }
  int get_calls() {
    std::lock_guard lock(mutex_);
    return get_calls_;
  }
  void set_create_outcome(v1::VmState state, std::string reason) {
    std::lock_guard lock(mutex_);
    create_outcome_.set_state(state);
    create_outcome_.set_state_reason(std::move(reason));
  }
  grpc::Status CreateVm(grpc::ServerContext*, const v1::CreateVmRequest* request,
                        v1::CreateVmResponse* response) override {
    std::lock_guard lock(mutex_);
    created_ = *request;
    if (!create_error_.ok()) return create_error_;
    response->set_vm_id("vm-new");
    if (request->dry_run()) {
      *response->mutable_plan() = plan_;
      return grpc::Status::OK;
    }
    // As feosd: the answer comes with the VM creating.
    vm_.set_vm_id("vm-new");
    vm_.set_state(v1::VM_STATE_CREATING);
    creating_polls_ = 0;
    return grpc::Status::OK;
  }
  void set_plan(hostv1::VmPlan plan) {
    std::lock_guard lock(mutex_);
    plan_ = std::move(plan);
  }
  void set_create_error(grpc::Status status) {
    std::lock_guard lock(mutex_);
    create_error_ = std::move(status);
  }

  void set_vm(v1::VmInfo vm) {
    std::lock_guard lock(mutex_);
    vm_ = std::move(vm);
  }
  std::optional<v1::CreateVmRequest> created() {
    std::lock_guard lock(mutex_);
    return created_;
  }

 private:
  std::mutex mutex_;
  v1::VmInfo vm_;
  std::optional<v1::CreateVmRequest> created_;
  hostv1::VmPlan plan_;
  grpc::Status create_error_;
  int get_calls_ = 0;
  int creating_polls_ = 0;
  v1::VmInfo create_outcome_ = [] {
    v1::VmInfo created;
    created.set_state(v1::VM_STATE_CREATED);
    return created;
  }();
};

struct Outcome {
  int rc = -1;
  std::string out;
  std::string err;
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = dir_ / "feosd.sock";
    start_server(/*with_host_service=*/true);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // Serves VMService always and HostDeviceService unless told not to (a daemon that predates it).
  void start_server(bool with_host_service) {
    if (server_) server_->Shutdown();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
    builder.RegisterService(&vms_);
    if (with_host_service) builder.RegisterService(&host_);
    builder.SetMaxSendMessageSize(-1);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }

  Outcome run_cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--socket", socket_, "--timeout", "10"});
    CommandLineEnv env;
    env.cwd = dir_.path();
    auto fs = sys::make_posix_filesystem();
    env.fs = fs.get();
    auto parsed = parse_command_line(args, env);
    EXPECT_TRUE(parsed.has_value()) << parsed.error().to_string();
    if (!parsed) return {};
    Outcome outcome;
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    outcome.rc = run(parsed->invocation);
    outcome.out = ::testing::internal::GetCapturedStdout();
    outcome.err = ::testing::internal::GetCapturedStderr();
    return outcome;
  }

  test::TempDir dir_;
  std::string socket_;
  FakeHostService host_;
  FakeVmService vms_;
  std::unique_ptr<grpc::Server> server_;
};

hostv1::PciDeviceInfo h100(const std::string& address) {
  hostv1::PciDeviceInfo device;
  device.set_address(address);
  device.set_vendor_id("10de");
  device.set_device_id("2330");
  device.set_vendor_name("NVIDIA Corporation");
  device.set_device_name("GH100 [H100 SXM5 80GB]");
  device.set_class_code(0x030200);
  device.set_class_name("3D controller");
  device.set_driver("nvidia");
  device.set_iommu_group("59");
  device.add_iommu_group_members(address);
  device.set_numa_node(0);
  hostv1::PciBar* bar = device.add_bars();
  bar->set_index(1);
  bar->set_size(128ULL << 30);
  bar->set_is_64bit(true);
  bar->set_prefetchable(true);
  device.set_is_gpu(true);
  device.set_status(hostv1::DEVICE_STATUS_AVAILABLE);
  return device;
}

hostv1::ListPciDevicesResponse many_gpus(int count) {
  hostv1::ListPciDevicesResponse list;
  for (int i = 0; i < count; ++i) {
    char address[16];
    std::snprintf(address, sizeof address, "0000:%02x:%02x.0", (i / 32) % 256, i % 32);
    *list.add_devices() = h100(address);
  }
  return list;
}

TEST_F(ClientTest, GpuListAsksForGpusOnlyAndPrintsTheTable) {
  hostv1::ListPciDevicesResponse list;
  *list.add_devices() = h100("0000:18:00.0");
  host_.set_devices(list);
  Outcome outcome = run_cli({"gpu", "list"});
  EXPECT_EQ(outcome.rc, kExitOk) << outcome.err;
  EXPECT_EQ(outcome.out, format_pci_table(list));
  EXPECT_EQ(outcome.err, "");
  ASSERT_EQ(host_.requests().size(), 1u);
  EXPECT_TRUE(host_.requests()[0].gpus_only());

  EXPECT_EQ(run_cli({"gpu", "list", "--all"}).rc, kExitOk);
  ASSERT_EQ(host_.requests().size(), 2u);
  EXPECT_FALSE(host_.requests()[1].gpus_only());
}

TEST_F(ClientTest, GpuListJsonIsTheResponse) {
  host_.set_devices(many_gpus(3));
  Outcome outcome = run_cli({"gpu", "list", "-o", "json"});
  ASSERT_EQ(outcome.rc, kExitOk) << outcome.err;
  auto json = nlohmann::json::parse(outcome.out);
  ASSERT_EQ(json["devices"].size(), 3u);
  EXPECT_EQ(json["devices"][2]["address"], "0000:00:02.0");
  EXPECT_EQ(json["devices"][0]["status"], "DEVICE_STATUS_AVAILABLE");
  EXPECT_EQ(json["devices"][0]["bars"][0]["size"], "137438953472");
  EXPECT_EQ(outcome.out, to_json(many_gpus(3), true).value() + "\n");
}

// A big host's `gpu list --all` exceeds gRPC's default 4 MiB receive limit.
TEST_F(ClientTest, ResponsesLargerThanFourMebibytesArrive) {
  hostv1::ListPciDevicesResponse list = many_gpus(5000);
  for (hostv1::PciDeviceInfo& device : *list.mutable_devices()) {
    device.set_reason(std::string(1000, 'r'));
  }
  ASSERT_GT(list.ByteSizeLong(), 4u << 20);
  host_.set_devices(list);
  Outcome outcome = run_cli({"gpu", "list", "--all"});
  EXPECT_EQ(outcome.rc, kExitOk) << outcome.err;
  EXPECT_EQ(std::count(outcome.out.begin(), outcome.out.end(), '\n'), 5001);
}

TEST_F(ClientTest, HostCheckExitStatusFollowsReadiness) {
  hostv1::CheckHostResponse check;
  check.set_ready(false);
  hostv1::HostCheckItem* iommu = check.add_items();
  iommu->set_name("iommu");
  iommu->set_ok(false);
  iommu->set_detail("no IOMMU groups: boot with intel_iommu=on");
  host_.set_check(check);

  Outcome not_ready = run_cli({"host", "check"});
  EXPECT_EQ(not_ready.rc, kExitServerError);
  EXPECT_EQ(not_ready.out,
            "FAIL   iommu   no IOMMU groups: boot with intel_iommu=on\n"
            "host NOT ready: 1 problem(s)\n");
  EXPECT_EQ(not_ready.err, "");

  Outcome json = run_cli({"host", "check", "-o", "json"});
  EXPECT_EQ(json.rc, kExitServerError);
  EXPECT_EQ(nlohmann::json::parse(json.out)["ready"], false);

  iommu->set_ok(true);
  iommu->set_detail("on");
  check.set_ready(true);
  host_.set_check(check);
  Outcome ready = run_cli({"host", "check"});
  EXPECT_EQ(ready.rc, kExitOk);
  EXPECT_EQ(ready.out, "OK   iommu   on\nhost ready for GPU passthrough\n");
  EXPECT_EQ(run_cli({"host", "check", "-o", "json"}).rc, kExitOk);
}

TEST_F(ClientTest, DaemonWithoutHostServiceIsOneErrorLine) {
  start_server(/*with_host_service=*/false);
  Outcome outcome = run_cli({"gpu", "list"});
  EXPECT_EQ(outcome.rc, kExitServerError);
  EXPECT_EQ(outcome.out, "");
  EXPECT_EQ(outcome.err.rfind("feosctl: error: UNIMPLEMENTED: ", 0), 0u) << outcome.err;
  EXPECT_EQ(std::count(outcome.err.begin(), outcome.err.end(), '\n'), 1);
}

// CreateVm answers with the VM creating: `vm create` prints the id and waits until it is created.
TEST_F(ClientTest, VmCreateWaitsUntilTheVmIsCreated) {
  Outcome created = run_cli({"vm", "create", "--kernel", "/boot/vmlinuz"});
  EXPECT_EQ(created.rc, kExitOk) << created.err;
  EXPECT_EQ(created.out, "vm-new\n");
  EXPECT_EQ(vms_.get_calls(), 3);  // creating, creating, created
}

TEST_F(ClientTest, VmCreateThatFailsInTheBackgroundIsAnErrorWithTheVmsReason) {
  vms_.set_create_outcome(v1::VM_STATE_CRASHED, "create failed: image pull failed: config.image_ref: no such tag");
  Outcome created = run_cli({"vm", "create", "--kernel", "/boot/vmlinuz"});
  EXPECT_EQ(created.rc, kExitServerError);
  EXPECT_EQ(created.out, "vm-new\n");  // the id first: the script can delete it
  EXPECT_EQ(created.err,
            "feosctl: error: FAILED_PRECONDITION: vm vm-new is crashed: create failed: image pull failed: "
            "config.image_ref: no such tag\n");
}

TEST_F(ClientTest, VmCreateNoWaitReturnsWhileCreating) {
  Outcome created = run_cli({"vm", "create", "--no-wait", "--kernel", "/boot/vmlinuz"});
  EXPECT_EQ(created.rc, kExitOk) << created.err;
  EXPECT_EQ(created.out, "vm-new\n");
  EXPECT_EQ(vms_.get_calls(), 0);
}

TEST_F(ClientTest, VmCreateSendsGpusAndVmGetShowsThem) {
  Outcome created =
      run_cli({"vm", "create", "--gpu", "18:00.0,rombar=off", "--gpu", "0000:2a:00.0,boot-vga"});
  EXPECT_EQ(created.rc, kExitOk) << created.err;
  EXPECT_EQ(created.out, "vm-new\n");
  std::optional<v1::CreateVmRequest> request = vms_.created();
  ASSERT_TRUE(request.has_value());
  const auto& gpus = request->config().gpus();
  ASSERT_EQ(gpus.size(), 2);
  EXPECT_EQ(gpus[0].address(), "18:00.0");
  EXPECT_EQ(gpus[0].rombar(), hostv1::ROM_BAR_OFF);
  EXPECT_EQ(gpus[1].address(), "0000:2a:00.0");
  EXPECT_TRUE(gpus[1].boot_vga());

  v1::VmInfo vm;
  vm.set_vm_id("vm-new");
  *vm.mutable_config()->mutable_gpus() = gpus;
  hostv1::AssignedGpu& assigned = *vm.add_gpus();
  *assigned.mutable_request() = gpus[0];
  hostv1::PassthroughFunction& function = *assigned.add_functions();
  function.set_address("0000:18:00.0");
  function.set_id("10de:2330");
  function.set_iommu_group("59");
  function.set_original_driver("nvidia");
  assigned.set_numa_node(0);
  vms_.set_vm(vm);
  Outcome shown = run_cli({"vm", "get", "vm-new"});
  EXPECT_EQ(shown.rc, kExitOk) << shown.err;
  EXPECT_NE(shown.out.find("gpu:      18:00.0,rombar=off -> 0000:18:00.0 (10de:2330, group 59, "
                           "was nvidia); numa node 0\n"
                           "gpu:      0000:2a:00.0,boot-vga (not assigned)\n"),
            std::string::npos)
      << shown.out;
  auto json = nlohmann::json::parse(run_cli({"vm", "get", "vm-new", "-o", "json"}).out);
  EXPECT_EQ(json["gpus"][0]["functions"][0]["original_driver"], "nvidia");
  EXPECT_EQ(json["config"]["gpus"][1]["boot_vga"], true);
}

// A plan as feosd answers it for one H100 under tcg (abridged argv).
hostv1::VmPlan h100_plan() {
  hostv1::VmPlan plan;
  plan.set_vm_id("vm-new");
  hostv1::AssignedGpu& gpu = *plan.add_gpus();
  gpu.mutable_request()->set_address("18:00.0");
  gpu.set_numa_node(0);
  hostv1::PassthroughFunction& f = *gpu.add_functions();
  f.set_address("0000:18:00.0");
  f.set_id("10de:2330");
  f.set_class_code(0x030200);
  f.set_iommu_group("59");
  f.set_original_driver("nvidia");
  hostv1::PciBar& bar0 = *f.add_bars();
  bar0.set_index(0);
  bar0.set_size(16ULL << 20);
  hostv1::PciBar& bar1 = *f.add_bars();
  bar1.set_index(1);
  bar1.set_size(128ULL << 30);
  bar1.set_is_64bit(true);
  bar1.set_prefetchable(true);
  plan.add_decisions("0000:18:00.0 (IOMMU group 59): nvidia -> vfio-pci");
  auto& space = *plan.mutable_address_space();
  space.set_ram_bytes(16ULL << 30);
  space.set_mmio32_bytes(16ULL << 20);
  space.set_hole64_start(20ULL << 30);
  space.set_hole64_size(384ULL << 30);
  space.set_phys_bits(40);
  for (const char* arg : {"qemu-system-x86_64", "-name", "guest=vm-new,debug-threads=on", "-cpu",
                          "max,phys-bits=40", "-append", "console=ttyS0 it's"})
    plan.add_qemu_argv(arg);
  return plan;
}

TEST_F(ClientTest, DryRunSendsTheFlagAndPrintsThePlanInSections) {
  vms_.set_plan(h100_plan());
  Outcome planned = run_cli({"vm", "create", "--dry-run", "--memory", "16384", "--gpu", "18:00.0"});
  EXPECT_EQ(planned.rc, kExitOk) << planned.err;
  ASSERT_TRUE(vms_.created().has_value());
  EXPECT_TRUE(vms_.created()->dry_run());
  EXPECT_EQ(planned.out,
            "vm:  vm-new\n"
            "gpus:\n"
            "  18:00.0  numa node 0\n"
            "    0000:18:00.0  10de:2330  class 0x030200  group 59  nvidia  BAR0 16MiB, "
            "BAR1 128GiB 64-bit pref\n"
            "decisions:\n"
            "  - 0000:18:00.0 (IOMMU group 59): nvidia -> vfio-pci\n"
            "address space:\n"
            "  ram:          16 GiB\n"
            "  below 4 GiB:  0.016 GiB (16MiB)\n"
            "  64-bit hole:  384 GiB at 20 GiB (0x500000000)\n"
            "  phys-bits:    40\n"
            "firmware:\n"
            "  kind:         bios\n"
            "qemu command line:\n"
            "  qemu-system-x86_64 \\\n"
            "    -name \\\n"
            "    guest=vm-new,debug-threads=on \\\n"
            "    -cpu \\\n"
            "    max,phys-bits=40 \\\n"
            "    -append \\\n"
            "    'console=ttyS0 it'\\''s'\n");
}

TEST_F(ClientTest, ADryRunOfAUefiVmShowsTheFirmwareAndOvmfsAperture) {
  hostv1::VmPlan plan = h100_plan();
  plan.mutable_address_space()->set_uefi_aperture_base(512ULL << 30);
  plan.mutable_address_space()->set_uefi_aperture_size(512ULL << 30);
  auto& firmware = *plan.mutable_firmware();
  firmware.set_kind(hostv1::FIRMWARE_KIND_UEFI);
  firmware.set_secure_boot(true);
  firmware.set_descriptor_file("/usr/share/qemu/firmware/40-edk2-x86_64-secure-enrolled.json");
  firmware.set_code("/usr/share/OVMF/OVMF_CODE_4M.ms.fd");
  firmware.set_vars_template("/usr/share/OVMF/OVMF_VARS_4M.ms.fd");
  firmware.set_vars("/var/lib/feosd/vms/vm-new/uefi-vars.fd");
  vms_.set_plan(plan);
  Outcome planned = run_cli({"vm", "create", "--dry-run", "--secure-boot", "--gpu", "18:00.0"});
  EXPECT_EQ(planned.rc, kExitOk) << planned.err;
  ASSERT_TRUE(vms_.created().has_value());
  EXPECT_EQ(vms_.created()->config().firmware().kind(), hostv1::FIRMWARE_KIND_UEFI);
  EXPECT_NE(planned.out.find("  phys-bits:    40\n"
                             "  UEFI aperture: 512 GiB at 512 GiB (0x8000000000)\n"
                             "firmware:\n"
                             "  kind:         uefi, secure boot\n"
                             "  descriptor:   /usr/share/qemu/firmware/40-edk2-x86_64-secure-enrolled.json\n"
                             "  code:         /usr/share/OVMF/OVMF_CODE_4M.ms.fd\n"
                             "  vars:         /var/lib/feosd/vms/vm-new/uefi-vars.fd "
                             "(from /usr/share/OVMF/OVMF_VARS_4M.ms.fd)\n"),
            std::string::npos)
      << planned.out;
}

TEST_F(ClientTest, DryRunJsonIsTheResponseWithItsPlan) {
  vms_.set_plan(h100_plan());
  Outcome planned = run_cli({"vm", "create", "--dry-run", "--gpu", "18:00.0", "-o", "json"});
  EXPECT_EQ(planned.rc, kExitOk) << planned.err;
  auto json = nlohmann::json::parse(planned.out);
  EXPECT_EQ(json["vm_id"], "vm-new");
  EXPECT_EQ(json["plan"]["vm_id"], "vm-new");
  EXPECT_EQ(json["plan"]["gpus"][0]["functions"][0]["iommu_group"], "59");
  EXPECT_EQ(json["plan"]["gpus"][0]["functions"][0]["bars"][1]["size"], "137438953472");
  EXPECT_EQ(json["plan"]["address_space"]["hole64_size"], std::to_string(384ULL << 30));
  EXPECT_EQ(json["plan"]["address_space"]["phys_bits"], 40);
  EXPECT_EQ(json["plan"]["qemu_argv"][0], "qemu-system-x86_64");
  EXPECT_EQ(json["plan"]["qemu_argv"].size(), 7u);
}

TEST_F(ClientTest, ARefusedDryRunExitsAsAFailedCreate) {
  vms_.set_create_error({grpc::StatusCode::PERMISSION_DENIED, "vm x: 0000:db:00.0 (10de:2330) is not allowed"});
  Outcome refused = run_cli({"vm", "create", "--dry-run", "--gpu", "db:00.0"});
  EXPECT_EQ(refused.rc, kExitServerError);
  EXPECT_EQ(refused.out, "");
  EXPECT_EQ(refused.err,
            "feosctl: error: PERMISSION_DENIED: vm x: 0000:db:00.0 (10de:2330) is not allowed\n");
}

// The real binary, end to end (process start, connect, call, JSON), on 1,000 GPUs: the shape of
// the `gpu list -o json` benchmark. Reports the time; asserts only a generous bound.
TEST_F(ClientTest, FeosctlBinaryListsAThousandGpusAsJson) {
  host_.set_devices(many_gpus(1000));
  const std::string command =
      std::string(FEOSCTL_BINARY) + " --socket " + socket_ + " gpu list -o json";
  std::string out;
  const auto start = std::chrono::steady_clock::now();
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buffer[65536];
  size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, got);
  int status = ::pclose(pipe);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kExitOk);
  EXPECT_EQ(nlohmann::json::parse(out)["devices"].size(), 1000u);
  const double ms = std::chrono::duration<double, std::milli>(elapsed).count();
  RecordProperty("feosctl_gpu_list_json_1000_ms", std::to_string(ms));
  std::printf("feosctl gpu list -o json, 1000 GPUs: %.1f ms, %zu bytes\n", ms, out.size());
  EXPECT_LT(ms, 5000);
}

}  // namespace
}  // namespace feos::cli
