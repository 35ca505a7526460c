// CreateVm with dry_run on feosd's own wiring (daemon::Daemon) with the real QEMU adapter, over
// the fake kernel of an HGX H100 host, through a real gRPC server: a dry run answers with the
// plan a real create and start would follow, gives the same code and message as the real path for
// every refusal, and changes nothing (kernel bindings, ledger, VM records, events, runtime dirs).
// Nothing launches qemu: the adapter's refusals come before it, and successful plans are not
// started.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "common/log.h"
#include "daemon/daemon.h"
#include "feos/vm/vmm/api/v1/vm.grpc.pb.h"
#include "store/database.h"
#include "support/fake_host.h"
#include "support/temp_dir.h"
#include "vmm/qemu/mmio_layout.h"

namespace feos::api {
namespace {

namespace fs = std::filesystem;
namespace pb = ::feos::vm::vmm::api::v1;

// VM ids are UUIDs.
constexpr const char* kExisting = "00000000-0000-4000-8000-000000000001";
constexpr const char* kHolder = "00000000-0000-4000-8000-000000000002";
constexpr const char* kCandidate = "00000000-0000-4000-8000-000000000003";
constexpr const char* kThird = "00000000-0000-4000-8000-000000000004";
constexpr const char* kFourth = "00000000-0000-4000-8000-000000000005";
constexpr const char* kNewUpper = "AAAAAAAA-0000-4000-8000-000000000006";
constexpr const char* kNew = "aaaaaaaa-0000-4000-8000-000000000006";

void put_file(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

// Everything a create could change, as comparable text.
struct HostState {
  test::BindingSnapshot bindings;
  std::vector<std::string> ledger, vms, runtime_dirs;
  size_t events = 0;
  bool operator==(const HostState&) const = default;
};

class DryRunTest : public ::testing::Test {
 protected:
  // The host: an HGX H100 server's shape without its NVSwitches, so that a VM may take any number
  // of its GPUs (the NVSwitch fabric's rules have their own fixtures below).
  virtual test::HostBuilder host_builder() { return test::without_nvswitches(test::hgx_h100_host()); }
  // The policy allows seven of the eight GPUs (not db:00.0) and the BMC's VGA.
  virtual std::string policy_text() {
    return R"({"allow_addresses": ["18:00.0", "2a:00.0", "3a:00.0", "5d:00.0", "9a:00.0",
               "ab:00.0", "ba:00.0", "02:00.0"]})";
  }
  // The GPUs of the VM kHolder.
  virtual std::vector<std::string> holder_gpus() { return {"0000:2a:00.0"}; }
  // kvm guests get the host's address bits: 40 hold one H100, not four.
  virtual int host_address_bits() { return 40; }
  // A host process has /dev/nvidia3 open: 5d:00.0's, by the driver's information files below.
  virtual bool nvidia3_open() { return true; }

  void SetUp() override {
    log::set_level("warn");
    test::HostBuilder b = host_builder();
    if (nvidia3_open()) b.process(1234, "python3").open_dev(5, "nvidia3");
    auto host = test::FakeHost::create(b);
    ASSERT_TRUE(host) << host.error().to_string();
    host_ = std::move(*host);
    const auto& paths = host_->paths();
    const char* gpus[] = {"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
                          "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0"};
    for (int i = 0; i < 8; ++i)
      put_file(paths.proc_root + "/driver/nvidia/gpus/" + gpus[i] + "/information",
               "Device Minor: \t " + std::to_string(i) + "\nBus Location: \t " + gpus[i] + "\n");
    put_file(paths.cpuinfo(), "processor\t: 0\naddress sizes\t: " + std::to_string(host_address_bits()) +
                                  " bits physical, 48 bits virtual\n");
    put_file(state_ / "policy.json", policy_text());
    put_file(state_ / "vmlinuz", "a kernel");

    daemon::DaemonOptions o;
    o.state_dir = state_ / "state";
    o.paths = paths;
    o.filesystem = &host_->kernel();
    o.qemu.accel = "kvm";
    o.device_policy_file = state_ / "policy.json";
    o.vm_limits.max_vms = 3;
    o.build_version = "dry-run-test";
    auto daemon = daemon::Daemon::open(std::move(o));
    ASSERT_TRUE(daemon) << daemon.error().to_string();
    daemon_ = std::move(*daemon);
    const std::string target = "unix:" + (state_ / "feosd.sock");
    grpc::ServerBuilder builder;
    builder.AddListeningPort(target, grpc::InsecureServerCredentials());
    daemon_->register_services(builder);
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_);
    stub_ = pb::VMService::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));

    // Two VMs: one without GPUs, one holding 2a:00.0.
    ASSERT_TRUE(create(request(kExisting)).ok());
    ASSERT_TRUE(create(request(kHolder, holder_gpus())).ok());
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  pb::CreateVmRequest request(const std::string& id, std::vector<std::string> gpus = {}) {
    pb::CreateVmRequest req;
    req.set_vm_id(id);
    auto* config = req.mutable_config();
    config->mutable_cpus()->set_boot_vcpus(2);
    config->mutable_memory()->set_size_mib(1024);
    config->mutable_boot()->set_kernel(state_ / "vmlinuz");
    for (const auto& gpu : gpus) config->add_gpus()->set_address(gpu);
    return req;
  }

  grpc::Status create(pb::CreateVmRequest req, pb::CreateVmResponse* resp = nullptr) {
    pb::CreateVmResponse ignored;
    grpc::ClientContext context;
    pb::CreateVmResponse& out = resp ? *resp : ignored;
    grpc::Status status = stub_->CreateVm(&context, req, &out);
    if (status.ok() && !req.dry_run()) wait_created(out.vm_id());
    return status;
  }
  // CreateVm answers with the VM creating; its GPUs are bound in the background.
  void wait_created(const std::string& id) {
    for (int i = 0; i < 2000; ++i) {
      pb::GetVmRequest get;
      get.set_vm_id(id);
      pb::VmInfo info;
      grpc::ClientContext context;
      if (!stub_->GetVm(&context, get, &info).ok() || info.state() != pb::VM_STATE_CREATING) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "vm " << id << " still creating after 20 s";
  }
  grpc::Status dry_run(pb::CreateVmRequest req, pb::CreateVmResponse* resp = nullptr) {
    req.set_dry_run(true);
    return create(std::move(req), resp);
  }
  grpc::Status call_start(const std::string& id) {
    pb::StartVmRequest req;
    req.set_vm_id(id);
    pb::StartVmResponse resp;
    grpc::ClientContext context;
    return stub_->StartVm(&context, req, &resp);
  }
  grpc::Status call_delete(const std::string& id) {
    pb::DeleteVmRequest req;
    req.set_vm_id(id);
    pb::DeleteVmResponse resp;
    grpc::ClientContext context;
    return stub_->DeleteVm(&context, req, &resp);
  }

  HostState state() {
    HostState s;
    s.bindings = host_->kernel().snapshot();
    auto rows = daemon_->db().ledger().list(std::nullopt);
    EXPECT_TRUE(rows) << rows.error().to_string();
    if (rows)
      for (const auto& row : *rows)
        s.ledger.push_back(row.bdf.to_string() + " " + row.vm_id + " " +
                           std::string(store::step_name(row.step)));
    for (const auto& record : daemon_->manager().list())
      s.vms.push_back(record.id + " " + std::to_string(static_cast<int>(record.state)));
    auto events = daemon_->db().events().query(store::EventFilter{});
    EXPECT_TRUE(events) << events.error().to_string();
    if (events) s.events = events->size();
    for (const auto& entry : fs::directory_iterator(state_ / "state/vms"))
      s.runtime_dirs.push_back(entry.path().filename());
    std::sort(s.runtime_dirs.begin(), s.runtime_dirs.end());
    return s;
  }

  test::TempDir state_ = test::TempDir::for_trees();
  std::unique_ptr<test::FakeHost> host_;
  std::unique_ptr<daemon::Daemon> daemon_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<pb::VMService::Stub> stub_;
};

struct BadRequest {
  std::string name;
  std::function<void(pb::CreateVmRequest&)> change;
  grpc::StatusCode code;
  std::string message_part;  // the message must hold it (the full message is compared below)
  bool refused_at_start = false;  // the real path refuses it only when the VM starts
};

TEST_F(DryRunTest, ARefusedDryRunGivesTheRealPathsCodeAndMessageAndChangesNothing) {
  const std::vector<BadRequest> cases = {
      {"bad id", [](auto& r) { r.set_vm_id("no spaces allowed"); }, grpc::INVALID_ARGUMENT, "vm id"},
      {"id taken", [](auto& r) { r.set_vm_id(kExisting); }, grpc::ALREADY_EXISTS, "already exists"},
      {"missing image", [](auto& r) { r.mutable_config()->set_image_ref("/nonexistent/disk.img"); },
       grpc::NOT_FOUND, "/nonexistent/disk.img"},
      {"unknown GPU", [](auto& r) { r.mutable_config()->add_gpus()->set_address("0000:77:00.0"); },
       grpc::NOT_FOUND, "0000:77:00.0"},
      {"not a GPU", [](auto& r) { r.mutable_config()->add_gpus()->set_address("0000:19:00.0"); },
       grpc::FAILED_PRECONDITION, "not a GPU"},
      {"held by another VM", [](auto& r) { r.mutable_config()->add_gpus()->set_address("0000:2a:00.0"); },
       grpc::FAILED_PRECONDITION, "is assigned to vm " + std::string(kHolder)},
      {"refused by the policy", [](auto& r) { r.mutable_config()->add_gpus()->set_address("0000:db:00.0"); },
       grpc::PERMISSION_DENIED, "not allowed by the GPU policy"},
      {"boot VGA", [](auto& r) { r.mutable_config()->add_gpus()->set_address("0000:02:00.0"); },
       grpc::FAILED_PRECONDITION, "boot VGA"},
      {"open on the host", [](auto& r) { r.mutable_config()->add_gpus()->set_address("0000:5d:00.0"); },
       grpc::FAILED_PRECONDITION, "pid 1234 (python3)"},
      {"layout past the host's address bits",
       [](auto& r) {
         for (const char* gpu : {"0000:18:00.0", "0000:3a:00.0", "0000:9a:00.0", "0000:ab:00.0"})
           r.mutable_config()->add_gpus()->set_address(gpu);
       },
       grpc::FAILED_PRECONDITION, "the host CPU has 40", true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    pb::CreateVmRequest req = request(kCandidate);
    c.change(req);
    const HostState before = state();
    pb::CreateVmResponse planned;
    const grpc::Status dry = dry_run(req, &planned);
    EXPECT_EQ(dry.error_code(), c.code) << dry.error_message();
    EXPECT_NE(dry.error_message().find(c.message_part), std::string::npos) << dry.error_message();
    EXPECT_EQ(state(), before) << "a refused dry run changed the host";

    grpc::Status real = create(req);
    if (c.refused_at_start) {
      ASSERT_TRUE(real.ok()) << real.error_message();
      real = call_start(req.vm_id());
      ASSERT_TRUE(call_delete(req.vm_id()).ok());
    }
    EXPECT_EQ(real.error_code(), dry.error_code());
    EXPECT_EQ(real.error_message(), dry.error_message());
    EXPECT_EQ(state(), before) << "the real path left something behind";
  }

  // Past the VM limit: a third VM fills it.
  ASSERT_TRUE(create(request(kThird)).ok());
  const HostState before = state();
  const grpc::Status dry = dry_run(request(kFourth));
  EXPECT_EQ(dry.error_code(), grpc::RESOURCE_EXHAUSTED) << dry.error_message();
  EXPECT_EQ(state(), before);
  const grpc::Status real = create(request(kFourth));
  EXPECT_EQ(real.error_code(), dry.error_code());
  EXPECT_EQ(real.error_message(), dry.error_message());
}

TEST_F(DryRunTest, APlanShowsTheCardItsGroupTheDecisionsAndTheCommandLineAndChangesNothing) {
  const HostState before = state();
  pb::CreateVmResponse planned;
  const grpc::Status status = dry_run(request(kNewUpper, {"18:00.0"}), &planned);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(state(), before) << "a dry run changed the host";

  EXPECT_EQ(planned.vm_id(), kNew);  // as a create would store it
  const feosd::v1::VmPlan& plan = planned.plan();
  EXPECT_EQ(plan.vm_id(), kNew);
  ASSERT_EQ(plan.gpus_size(), 1);
  const auto& gpu = plan.gpus(0);
  EXPECT_EQ(gpu.request().address(), "0000:18:00.0");  // canonical, as a create stores it
  EXPECT_EQ(gpu.numa_node(), 0);
  ASSERT_EQ(gpu.functions_size(), 1);
  EXPECT_EQ(gpu.functions(0).address(), "0000:18:00.0");
  EXPECT_EQ(gpu.functions(0).iommu_group(), "59");
  EXPECT_EQ(gpu.functions(0).original_driver(), "nvidia");
  EXPECT_EQ(gpu.functions(0).bars_size(), 3);

  auto has_decision = [&](const std::string& part) {
    for (const auto& d : plan.decisions())
      if (d.find(part) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has_decision("0000:18:00.0 (10de:2330) is allowed by the GPU policy"));
  EXPECT_TRUE(has_decision("0000:18:00.0 (IOMMU group 59): nvidia -> vfio-pci"));
  EXPECT_TRUE(has_decision("accelerator: kvm"));
  EXPECT_TRUE(has_decision("RLIMIT_MEMLOCK: 2 GiB"));

  // kvm: the guest has the host's 40 bits; one H100 (256 GiB window) fits them.
  const auto& space = plan.address_space();
  EXPECT_EQ(space.ram_bytes(), 1024 * vmm::qemu::kMiB);
  EXPECT_EQ(space.phys_bits(), 40u);
  EXPECT_EQ(space.hole64_start(), 4 * vmm::qemu::kGiB);
  EXPECT_EQ(space.hole64_size(), 384 * vmm::qemu::kGiB);  // 256 GiB window + 128 GiB slack

  const std::vector<std::string> argv(plan.qemu_argv().begin(), plan.qemu_argv().end());
  ASSERT_FALSE(argv.empty());
  EXPECT_EQ(argv[0], "qemu-system-x86_64");
  auto value_of = [&](const std::string& flag) {
    std::vector<std::string> values;
    for (size_t i = 0; i + 1 < argv.size(); ++i)
      if (argv[i] == flag) values.push_back(argv[i + 1]);
    return values;
  };
  EXPECT_EQ(value_of("-accel"), std::vector<std::string>{"kvm"});
  EXPECT_EQ(value_of("-cpu"), std::vector<std::string>{"host,host-phys-bits=on"});
  EXPECT_EQ(value_of("-pidfile"),
            std::vector<std::string>{state_ / "state/vms/" + std::string(kNew) + "/qemu.pid"});
  bool vfio = false;
  for (const auto& device : value_of("-device"))
    vfio = vfio || device.find("vfio-pci,host=0000:18:00.0") == 0;
  EXPECT_TRUE(vfio);

  // The real create of the same request succeeds with the same GPUs.
  pb::CreateVmResponse created;
  ASSERT_TRUE(create(request(kNewUpper, {"18:00.0"}), &created).ok());
  EXPECT_EQ(created.vm_id(), kNew);
  EXPECT_FALSE(created.has_plan());
}

// GPUs by count: the dry run picks as the create would (free, allowed, on one NUMA node), and the
// create that follows takes the same GPUs and records them by address.
TEST_F(DryRunTest, GpusByCountArePickedAsTheCreateWouldPickThem) {
  pb::CreateVmRequest req = request(kNewUpper);
  req.mutable_config()->mutable_gpu_count()->set_count(2);
  const HostState before = state();
  pb::CreateVmResponse planned;
  const grpc::Status status = dry_run(req, &planned);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(state(), before) << "a dry run changed the host";
  // Node 0 has two free (2a:00.0 is held, 5d:00.0 open on the host), node 1 three (db:00.0 is
  // refused by the policy): node 0 holds two most tightly.
  ASSERT_EQ(planned.plan().gpus_size(), 2);
  EXPECT_EQ(planned.plan().gpus(0).request().address(), "0000:18:00.0");
  EXPECT_EQ(planned.plan().gpus(1).request().address(), "0000:3a:00.0");
  EXPECT_EQ(planned.plan().decisions(0),
            "gpu_count: 2 GPU(s) on node 0 (2 free there, the tightest node that holds all): 0000:18:00.0, "
            "0000:3a:00.0");

  // Too many: the dry run's refusal is the create's, naming the free ones by node.
  pb::CreateVmRequest greedy = request(kCandidate);
  greedy.mutable_config()->mutable_gpu_count()->set_count(6);
  const grpc::Status refused_plan = dry_run(greedy);
  const grpc::Status refused = create(greedy);
  EXPECT_EQ(refused_plan.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_EQ(refused_plan.error_message(), refused.error_message());
  EXPECT_NE(refused.error_message().find("6 GPU(s) asked, 5 free: 0000:18:00.0, 0000:3a:00.0 on node 0; 0000:9a:00.0, "
                                         "0000:ab:00.0, 0000:ba:00.0 on node 1 (1 held by VMs, 3 not assignable)"),
            std::string::npos)
      << refused.error_message();

  pb::CreateVmResponse created;
  ASSERT_TRUE(create(req, &created).ok());
  pb::GetVmRequest get;
  get.set_vm_id(kNew);
  pb::VmInfo info;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->GetVm(&context, get, &info).ok());
  ASSERT_EQ(info.config().gpus_size(), 2);
  EXPECT_EQ(info.config().gpus(0).address(), "0000:18:00.0");
  EXPECT_EQ(info.config().gpus(1).address(), "0000:3a:00.0");
  EXPECT_EQ(info.config().gpu_count().count(), 2u);
}

TEST_F(DryRunTest, WithoutAnIdTheDryRunNamesTheIdItWouldHaveGiven) {
  pb::CreateVmRequest req = request("");
  req.clear_vm_id();
  pb::CreateVmResponse planned;
  ASSERT_TRUE(dry_run(req, &planned).ok());
  EXPECT_FALSE(planned.vm_id().empty());
  EXPECT_EQ(planned.plan().vm_id(), planned.vm_id());
  EXPECT_EQ(planned.plan().gpus_size(), 0);
  EXPECT_EQ(planned.plan().address_space().hole64_size(), vmm::qemu::kQ35DefaultHole64Size);
}

// No nvswitch_mode: the board is passed whole, with its NVSwitches, or not at all.
class WholeBoardDryRunTest : public DryRunTest {
 protected:
  test::HostBuilder host_builder() override { return test::hgx_h100_host(); }
  std::string policy_text() override { return "{}"; }
  std::vector<std::string> holder_gpus() override { return {}; }
  int host_address_bits() override { return 46; }  // eight 256 GiB windows fit
  bool nvidia3_open() override { return false; }     // every GPU free
};

TEST_F(WholeBoardDryRunTest, FewerGpusAreRefusedAndTheWholeBoardBringsItsNvSwitches) {
  const HostState before = state();
  auto two = request(kCandidate, {"0000:18:00.0", "0000:2a:00.0"});
  pb::CreateVmRequest one = request(kCandidate);
  one.mutable_config()->mutable_gpu_count()->set_count(1);
  for (const auto* req : {&two, &one}) {
    const grpc::Status dry = dry_run(*req);
    EXPECT_EQ(dry.error_code(), grpc::FAILED_PRECONDITION) << dry.error_message();
    EXPECT_NE(dry.error_message().find("this host's 8 GPUs are joined by 4 NVSwitches (10de:22a3, IOMMU group 114) "
                                       "and the fabric is passed whole (no nvswitch_mode set: full-board VMs only)"),
              std::string::npos)
        << dry.error_message();
    const grpc::Status real = create(*req);
    EXPECT_EQ(real.error_code(), dry.error_code());
    EXPECT_EQ(real.error_message(), dry.error_message());
    EXPECT_EQ(state(), before) << "a refusal left something behind";
  }

  pb::CreateVmRequest board = request(kNewUpper);
  board.mutable_config()->mutable_gpu_count()->set_count(8);
  pb::CreateVmResponse planned;
  const grpc::Status status = dry_run(board, &planned);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(state(), before) << "a dry run changed the host";
  ASSERT_EQ(planned.plan().gpus_size(), 8);
  ASSERT_EQ(planned.plan().gpus(0).fabric_size(), 4);
  EXPECT_EQ(planned.plan().gpus(0).fabric(0).address(), "0000:05:00.0");
  EXPECT_EQ(planned.plan().gpus(0).fabric(3).iommu_group(), "114");
  EXPECT_EQ(planned.plan().gpus(1).fabric_size(), 0);
  int nvswitch_devices = 0;
  for (const auto& arg : planned.plan().qemu_argv())
    nvswitch_devices += arg.find("vfio-pci,host=0000:0") == 0 && arg.find("id=feos-gpu0-fabric") != std::string::npos;
  EXPECT_EQ(nvswitch_devices, 4);

  // The create takes the same: the four NVSwitches are held with the GPUs.
  ASSERT_TRUE(create(board).ok());
  int nvswitch_rows = 0;
  for (const auto& row : state().ledger)
    for (const char* sw : {"0000:05:00.0 ", "0000:06:00.0 ", "0000:07:00.0 ", "0000:08:00.0 "})
      nvswitch_rows += row.rfind(sw, 0) == 0;
  EXPECT_EQ(nvswitch_rows, 4);
}

// Shared NVSwitches: a VM's GPUs are one partition of the host's fabric manager.
class SharedFabricDryRunTest : public DryRunTest {
 protected:
  test::HostBuilder host_builder() override { return test::hgx_h100_host(); }
  std::string policy_text() override {
    return R"({"nvswitch_mode": "shared",
               "nvswitch_partitions": [["2a:00.0"], ["18:00.0", "3a:00.0"], ["5d:00.0"],
                                       ["9a:00.0", "ab:00.0", "ba:00.0", "db:00.0"]]})";
  }
};

TEST_F(SharedFabricDryRunTest, APartitionIsPlannedAndTakenAsTheCreateTakesItAndNoneOtherIs) {
  const HostState before = state();
  auto mixed = request(kCandidate, {"0000:18:00.0", "0000:9a:00.0"});
  const grpc::Status dry = dry_run(mixed);
  EXPECT_EQ(dry.error_code(), grpc::FAILED_PRECONDITION) << dry.error_message();
  EXPECT_NE(dry.error_message().find("0000:18:00.0, 0000:9a:00.0 are not one NVSwitch partition"), std::string::npos)
      << dry.error_message();
  const grpc::Status real = create(mixed);
  EXPECT_EQ(real.error_code(), dry.error_code());
  EXPECT_EQ(real.error_message(), dry.error_message());
  EXPECT_EQ(state(), before);

  pb::CreateVmRequest pair = request(kNewUpper);
  pair.mutable_config()->mutable_gpu_count()->set_count(2);
  pb::CreateVmResponse planned;
  ASSERT_TRUE(dry_run(pair, &planned).ok());
  ASSERT_EQ(planned.plan().gpus_size(), 2);
  EXPECT_EQ(planned.plan().gpus(0).request().address(), "0000:18:00.0");
  EXPECT_EQ(planned.plan().gpus(1).request().address(), "0000:3a:00.0");
  EXPECT_EQ(planned.plan().gpus(0).fabric_size(), 0);
  for (const auto& arg : planned.plan().qemu_argv()) EXPECT_EQ(arg.find("fabric"), std::string::npos) << arg;
  ASSERT_TRUE(create(pair).ok());
  for (const auto& row : state().ledger) EXPECT_EQ(row.find("0000:05:00.0"), std::string::npos) << row;

  // The only partition of two is taken now.
  pb::CreateVmRequest again = request(kCandidate);
  again.mutable_config()->mutable_gpu_count()->set_count(2);
  const grpc::Status none = dry_run(again);
  EXPECT_EQ(none.error_code(), grpc::RESOURCE_EXHAUSTED) << none.error_message();
  EXPECT_EQ(create(again).error_message(), none.error_message());
}

}  // namespace
}  // namespace feos::api
