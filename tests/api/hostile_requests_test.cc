// Hostile API requests against an in-process feosd (api_harness.h) on a simulated HGX H100 host:
// malformed addresses, path traversal, huge counts and sizes, unknown enum values, missing fields,
// invalid ids, busy GPUs. Each case must get its documented gRPC code (src/api/status.cc maps the
// domain codes one to one; the codes are documented in the .proto files and the headers of core/,
// hostdev/ and vmm/), and leave the host exactly as it was: no kernel write, the same driver
// bindings and VFIO nodes, no new ledger row, no new VM record; and the server keeps answering.
// Prints "hostile requests: N cases, N held"; FEOS_HOSTILE_VERBOSE=1 prints each case's answer.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <future>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>

#include "api_harness.h"
#include "core/wait_created.h"

namespace feos::api::testing {
namespace {

using grpc::StatusCode;
using namespace std::chrono_literals;

// A VM id that is well formed and unknown to the server.
constexpr const char* kUnknownId = "123e4567-e89b-12d3-a456-426614174000";
// The GPU the fixture's holder VM keeps for the whole test.
constexpr const char* kHeldGpu = "0000:18:00.0";
// A free GPU.
constexpr const char* kFreeGpu = "0000:2a:00.0";

struct Clients {
  pb::VMService::Stub& vms;
  std::shared_ptr<grpc::Channel> channel;
};

using Call = std::function<grpc::Status(Clients&)>;

struct Case {
  std::string name;
  Call call;
  StatusCode code;
  std::vector<std::string> fragments{};  // each must appear in the status message
};

void set_deadline(grpc::ClientContext& ctx, std::chrono::seconds s = 10s) {
  ctx.set_deadline(std::chrono::system_clock::now() + s);
}

Call create(pb::CreateVmRequest req) {
  return [req = std::move(req)](Clients& c) {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    pb::CreateVmResponse resp;
    return c.vms.CreateVm(&ctx, req, &resp);
  };
}

// A valid create request, edited.
Call create_with(const std::function<void(pb::CreateVmRequest&)>& edit) {
  pb::CreateVmRequest req = valid_create_request();
  edit(req);
  return create(std::move(req));
}

Call config_with(const std::function<void(pb::VmConfig&)>& edit) {
  return create_with([&](pb::CreateVmRequest& r) { edit(*r.mutable_config()); });
}

Call gpus(const std::vector<std::string>& addresses) {
  return config_with([&](pb::VmConfig& c) {
    for (const auto& a : addresses) c.add_gpus()->set_address(a);
  });
}

template <typename Request, typename Response, typename Method>
Call unary(Method method, Request req) {
  return [method, req = std::move(req)](Clients& c) {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    Response resp;
    return (c.vms.*method)(&ctx, req, &resp);
  };
}

template <typename Request>
Request with_id(const std::string& id) {
  Request r;
  r.set_vm_id(id);
  return r;
}

Call get(const std::string& id) {
  return unary<pb::GetVmRequest, pb::VmInfo>(&pb::VMService::Stub::GetVm, with_id<pb::GetVmRequest>(id));
}
Call start(const std::string& id) {
  return unary<pb::StartVmRequest, pb::StartVmResponse>(&pb::VMService::Stub::StartVm,
                                                        with_id<pb::StartVmRequest>(id));
}
Call remove(const std::string& id) {
  return unary<pb::DeleteVmRequest, pb::DeleteVmResponse>(&pb::VMService::Stub::DeleteVm,
                                                          with_id<pb::DeleteVmRequest>(id));
}
Call pause(const std::string& id) {
  return unary<pb::PauseVmRequest, pb::PauseVmResponse>(&pb::VMService::Stub::PauseVm,
                                                        with_id<pb::PauseVmRequest>(id));
}
Call resume(const std::string& id) {
  return unary<pb::ResumeVmRequest, pb::ResumeVmResponse>(&pb::VMService::Stub::ResumeVm,
                                                          with_id<pb::ResumeVmRequest>(id));
}
Call shutdown(const std::string& id) {
  return unary<pb::ShutdownVmRequest, pb::ShutdownVmResponse>(&pb::VMService::Stub::ShutdownVm,
                                                              with_id<pb::ShutdownVmRequest>(id));
}
Call ping(const std::string& id) {
  return unary<pb::PingVmRequest, pb::PingVmResponse>(&pb::VMService::Stub::PingVm, with_id<pb::PingVmRequest>(id));
}

// StreamVmConsole: sends `first`, half-closes, reads whatever comes, returns the status.
Call console(pb::StreamVmConsoleRequest first) {
  return [first = std::move(first)](Clients& c) {
    grpc::ClientContext ctx;
    set_deadline(ctx, 5s);
    auto stream = c.vms.StreamVmConsole(&ctx);
    stream->Write(first);
    stream->WritesDone();
    pb::StreamVmConsoleResponse resp;
    while (stream->Read(&resp)) {
    }
    return stream->Finish();
  };
}
Call console_attach(const std::string& id) {
  pb::StreamVmConsoleRequest req;
  req.mutable_attach()->set_vm_id(id);
  return console(std::move(req));
}

Call events(pb::StreamVmEventsRequest req) {
  return [req = std::move(req)](Clients& c) {
    grpc::ClientContext ctx;
    set_deadline(ctx, 5s);
    auto reader = c.vms.StreamVmEvents(&ctx, req);
    pb::VmEvent event;
    while (reader->Read(&event)) {
    }
    return reader->Finish();
  };
}

// Raw bytes as the request of `method` ("/feos.vm.vmm.api.v1.VMService/CreateVm").
Call raw(std::string method, std::string bytes) {
  return [method = std::move(method), bytes = std::move(bytes)](Clients& c) {
    grpc::GenericStub stub(c.channel);
    grpc::ClientContext ctx;
    set_deadline(ctx);
    grpc::Slice slice(bytes.data(), bytes.size());
    grpc::ByteBuffer request(&slice, 1), response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                   [&done](grpc::Status s) { done.set_value(std::move(s)); });
    return done.get_future().get();
  };
}

// A disk / NIC with every field valid, for cases that spoil one of them.
void add_disk(pb::VmConfig& c, const std::string& path) {
  auto* d = c.add_disks();
  d->set_device_id("data");
  d->set_path(path);
}
pb::NetConfig* add_nic(pb::VmConfig& c, const std::string& tap, const std::string& mac) {
  auto* n = c.add_net();
  n->set_device_id("n0");
  n->mutable_tap()->set_tap_name(tap);
  n->set_mac_address(mac);
  return n;
}

std::string code_name(StatusCode code) { return std::string(feos::code_name(static_cast<Code>(code))); }

std::vector<Case> hostile_cases(const std::string& holder) {
  using S = StatusCode;
  const std::string nul_address("0000:2a:00.0\0/../x", 18);
  std::vector<std::string> ten_thousand;
  for (int i = 0; i < 10000; ++i) ten_thousand.push_back(kFreeGpu);
  std::vector<std::string> seventeen;  // distinct, well formed: one more than a VM may have
  for (int bus = 0x70; bus < 0x70 + 17; ++bus) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0000:%02x:00.0", bus);
    seventeen.push_back(buf);
  }

  return {
      // --- GPU addresses: nothing that is not DDDD:BB:DD.F may reach a sysfs path ---
      {"gpu address ../../../../etc/passwd", gpus({"../../../../etc/passwd"}), S::INVALID_ARGUMENT, {"gpus[0]"}},
      {"gpu address with ../ after a bdf", gpus({"0000:17:00.0/../../x"}), S::INVALID_ARGUMENT, {"gpus[0]"}},
      {"gpu address naming a sysfs attribute", gpus({"0000:17:00.0/driver/unbind"}), S::INVALID_ARGUMENT},
      {"gpu address with a NUL byte", gpus({nul_address}), S::INVALID_ARGUMENT, {"NUL"}},
      {"gpu address with a newline", gpus({"0000:2a:00.0\n"}), S::INVALID_ARGUMENT},
      {"gpu address with a leading space", gpus({" 0000:2a:00.0"}), S::INVALID_ARGUMENT},
      {"gpu address empty", gpus({""}), S::INVALID_ARGUMENT, {"empty"}},
      {"gpu address 1 KiB long", gpus({std::string(1024, '0')}), S::INVALID_ARGUMENT, {"gpus[0]"}},
      {"gpu address device 0x20", gpus({"0000:17:20.0"}), S::INVALID_ARGUMENT},
      {"gpu address function 8", gpus({"0000:2a:00.8"}), S::INVALID_ARGUMENT},
      {"gpu address 5-digit domain", gpus({"10000:2a:00.0"}), S::INVALID_ARGUMENT},
      {"gpu address unknown ffff:ff:1f.7", gpus({"ffff:ff:1f.7"}), S::NOT_FOUND, {"ffff:ff:1f.7"}},
      {"gpu address of a NIC (ConnectX-7)", gpus({"0000:19:00.0"}), S::FAILED_PRECONDITION, {"0000:19:00.0", "not a GPU"}},
      // (The harness's host has no NVSwitches; an NVSwitch as a GPU: tests/hostdev/nvswitch_test.cc.)
      {"gpu address of an NVMe drive", gpus({"0000:1a:00.0"}), S::FAILED_PRECONDITION, {"0000:1a:00.0", "not a GPU"}},
      {"gpu address of the host's boot VGA", gpus({"0000:02:00.0"}), S::FAILED_PRECONDITION, {"0000:02:00.0", "boot VGA"}},
      {"same gpu twice", gpus({kFreeGpu, kFreeGpu}), S::INVALID_ARGUMENT, {"both name 0000:2a:00.0"}},
      {"same gpu twice, short and long form", gpus({"2a:00.0", kFreeGpu}), S::INVALID_ARGUMENT, {"0000:2a:00.0"}},
      {"same card via two functions", gpus({kFreeGpu, "0000:2a:00.1"}), S::INVALID_ARGUMENT, {"same card"}},
      {"10,000 gpu entries", gpus(ten_thousand), S::INVALID_ARGUMENT, {"at most 16"}},
      {"17 distinct gpu entries", gpus(seventeen), S::INVALID_ARGUMENT, {"at most 16"}},
      {"gpu held by another vm", gpus({kHeldGpu}), S::FAILED_PRECONDITION, {kHeldGpu, holder}},
      {"free gpu plus one held by another vm", gpus({kFreeGpu, kHeldGpu}), S::FAILED_PRECONDITION, {kHeldGpu, holder}},
      {"unknown enum: gpus[].rombar = 7",
       config_with([](pb::VmConfig& c) {
         auto* g = c.add_gpus();
         g->set_address(kFreeGpu);
         g->set_rombar(static_cast<feosd::v1::RomBar>(7));
       }),
       S::INVALID_ARGUMENT, {"rombar"}},
      {"unknown enum: gpus[].rombar = -1",
       config_with([](pb::VmConfig& c) {
         auto* g = c.add_gpus();
         g->set_address(kFreeGpu);
         g->set_rombar(static_cast<feosd::v1::RomBar>(-1));
       }),
       S::INVALID_ARGUMENT, {"rombar"}},

      // --- sizes and counts ---
      {"boot_vcpus = UINT32_MAX",
       config_with([](pb::VmConfig& c) { c.mutable_cpus()->set_boot_vcpus(UINT32_MAX); }), S::INVALID_ARGUMENT, {"vcpus"}},
      {"max_vcpus = UINT32_MAX",
       config_with([](pb::VmConfig& c) { c.mutable_cpus()->set_max_vcpus(UINT32_MAX); }), S::INVALID_ARGUMENT, {"max_vcpus"}},
      {"boot_vcpus = 0", config_with([](pb::VmConfig& c) { c.mutable_cpus()->set_boot_vcpus(0); }), S::INVALID_ARGUMENT, {"boot_vcpus"}},
      {"max_vcpus below boot_vcpus",
       config_with([](pb::VmConfig& c) {
         c.mutable_cpus()->set_boot_vcpus(4);
         c.mutable_cpus()->set_max_vcpus(2);
       }),
       S::INVALID_ARGUMENT, {"max_vcpus"}},
      {"memory = UINT64_MAX MiB",
       config_with([](pb::VmConfig& c) { c.mutable_memory()->set_size_mib(UINT64_MAX); }), S::INVALID_ARGUMENT, {"size_mib"}},
      {"memory = 0", config_with([](pb::VmConfig& c) { c.mutable_memory()->set_size_mib(0); }), S::INVALID_ARGUMENT, {"size_mib"}},
      {"65 disks",
       config_with([](pb::VmConfig& c) {
         for (int i = 0; i < 65; ++i) {
           auto* d = c.add_disks();
           d->set_device_id("d" + std::to_string(i));
           d->set_path("/var/lib/feosd/images/d" + std::to_string(i) + ".raw");
         }
       }),
       S::INVALID_ARGUMENT, {"at most 64"}},

      // --- missing fields ---
      {"no config", create(pb::CreateVmRequest()), S::INVALID_ARGUMENT},
      {"no cpus", config_with([](pb::VmConfig& c) { c.clear_cpus(); }), S::INVALID_ARGUMENT, {"cpus"}},
      {"no memory", config_with([](pb::VmConfig& c) { c.clear_memory(); }), S::INVALID_ARGUMENT, {"memory"}},
      {"no image and no kernel", config_with([](pb::VmConfig& c) { c.clear_boot(); }), S::INVALID_ARGUMENT, {"boot"}},
      {"disk without a backend",
       config_with([](pb::VmConfig& c) { c.add_disks()->set_device_id("data"); }), S::INVALID_ARGUMENT, {"no backend"}},
      {"nic without a backend",
       config_with([](pb::VmConfig& c) { c.add_net()->set_device_id("n0"); }), S::INVALID_ARGUMENT, {"no backend"}},
      {"disk with an empty path", config_with([](pb::VmConfig& c) { add_disk(c, ""); }), S::INVALID_ARGUMENT, {"path"}},
      {"disk vfio_pci backend (not offered)",
       config_with([](pb::VmConfig& c) {
         auto* d = c.add_disks();
         d->set_device_id("nvme");
         d->mutable_vfio_pci()->set_bdf("0000:1a:00.0");
       }),
       S::UNIMPLEMENTED, {"vfio_pci"}},
      {"nic vfio_pci backend (not offered)",
       config_with([](pb::VmConfig& c) {
         auto* n = c.add_net();
         n->set_device_id("n0");
         n->mutable_vfio_pci()->set_bdf("0000:19:00.0");
       }),
       S::UNIMPLEMENTED, {"vfio_pci"}},

      // --- oversized strings ---
      {"1 MiB vm id on create", create_with([](pb::CreateVmRequest& r) { r.set_vm_id(std::string(1 << 20, 'a')); }),
       S::INVALID_ARGUMENT, {"vm id"}},
      {"64 KiB kernel cmdline",
       config_with([](pb::VmConfig& c) { c.mutable_boot()->set_cmdline(std::string(64 << 10, 'x')); }), S::INVALID_ARGUMENT, {"cmdline"}},
      {"3000-byte kernel cmdline (over the kernel's 2047)",
       config_with([](pb::VmConfig& c) { c.mutable_boot()->set_cmdline(std::string(3000, 'x')); }), S::INVALID_ARGUMENT, {"cmdline"}},
      {"2 MiB ignition", config_with([](pb::VmConfig& c) { c.set_ignition(std::string(2 << 20, '{')); }), S::INVALID_ARGUMENT, {"ignition"}},
      {"5 MiB message (over gRPC's 4 MiB)",
       config_with([](pb::VmConfig& c) { c.set_ignition(std::string(5 << 20, '{')); }), S::RESOURCE_EXHAUSTED},
      {"1 MiB disk device id",
       config_with([](pb::VmConfig& c) {
         auto* d = c.add_disks();
         d->set_device_id(std::string(1 << 20, 'd'));
         d->set_path("/var/lib/feosd/images/d.raw");
       }),
       S::INVALID_ARGUMENT, {"device_id"}},

      // --- paths: absolute, normalized, no NUL ---
      {"kernel path with ..", config_with([](pb::VmConfig& c) { c.mutable_boot()->set_kernel("/var/lib/feosd/../../../etc/shadow"); }),
       S::INVALID_ARGUMENT, {"boot.kernel"}},
      {"relative kernel path", config_with([](pb::VmConfig& c) { c.mutable_boot()->set_kernel("vmlinuz"); }),
       S::INVALID_ARGUMENT, {"boot.kernel"}},
      {"kernel path with a NUL byte",
       config_with([](pb::VmConfig& c) { c.mutable_boot()->set_kernel(std::string("/boot/vmlinuz\0/../x", 19)); }),
       S::INVALID_ARGUMENT, {"boot.kernel"}},
      {"initramfs path with ..",
       config_with([](pb::VmConfig& c) { c.mutable_boot()->set_initramfs("/var/lib/feosd/images/../../../../root/x"); }),
       S::INVALID_ARGUMENT, {"boot.initramfs"}},
      {"disk path ../../etc/passwd", config_with([](pb::VmConfig& c) { add_disk(c, "../../etc/passwd"); }),
       S::INVALID_ARGUMENT, {"disks[0].path"}},
      {"disk path with .. inside", config_with([](pb::VmConfig& c) { add_disk(c, "/var/lib/images/../../../etc/shadow"); }),
       S::INVALID_ARGUMENT, {"disks[0].path"}},
      {"disk path with a NUL byte",
       config_with([](pb::VmConfig& c) { add_disk(c, std::string("/var/lib/images/a.raw\0/etc/shadow", 33)); }),
       S::INVALID_ARGUMENT, {"disks[0].path"}},
      {"image_ref file:// with ..", config_with([](pb::VmConfig& c) { c.set_image_ref("file:///var/lib/images/../../etc/shadow"); }),
       S::INVALID_ARGUMENT, {"image_ref"}},
      {"image_ref ending in /..", config_with([](pb::VmConfig& c) { c.set_image_ref("/var/lib/images/.."); }),
       S::INVALID_ARGUMENT, {"image_ref"}},
      {"image_ref http:// URL", config_with([](pb::VmConfig& c) { c.set_image_ref("http://evil.example/x.img"); }),
       S::INVALID_ARGUMENT, {"image_ref"}},
      {"image_ref OCI reference, malformed", config_with([](pb::VmConfig& c) { c.set_image_ref("ghcr.io/Ironcore/x:1"); }),
       S::INVALID_ARGUMENT, {"image_ref", "repository name"}},

      // --- NICs and device ids ---
      {"mac not hex", config_with([](pb::VmConfig& c) { add_nic(c, "tap0", "zz:zz:zz:zz:zz:zz"); }), S::INVALID_ARGUMENT, {"mac_address"}},
      {"multicast mac", config_with([](pb::VmConfig& c) { add_nic(c, "tap0", "01:00:5e:00:00:01"); }), S::INVALID_ARGUMENT, {"multicast"}},
      {"mac 1 KiB long", config_with([](pb::VmConfig& c) { add_nic(c, "tap0", std::string(1024, 'a')); }), S::INVALID_ARGUMENT, {"mac_address"}},
      {"tap name with ../", config_with([](pb::VmConfig& c) { add_nic(c, "../../x", "52:54:00:00:00:01"); }), S::INVALID_ARGUMENT, {"tap_name"}},
      {"tap name 16 characters", config_with([](pb::VmConfig& c) { add_nic(c, "tap0123456789abc", "52:54:00:00:00:01"); }),
       S::INVALID_ARGUMENT, {"tap_name"}},
      {"tap name with a newline", config_with([](pb::VmConfig& c) { add_nic(c, "tap0\nx", "52:54:00:00:00:01"); }),
       S::INVALID_ARGUMENT, {"tap_name"}},
      {"tap name with a comma (qemu option injection)",
       config_with([](pb::VmConfig& c) { add_nic(c, "t,script=/x", "52:54:00:00:00:01"); }), S::INVALID_ARGUMENT, {"tap_name"}},
      {"disk device id with a comma (qemu option injection)",
       config_with([](pb::VmConfig& c) {
         auto* d = c.add_disks();
         d->set_device_id("a,file=/etc/shadow");
         d->set_path("/var/lib/feosd/images/d.raw");
       }),
       S::INVALID_ARGUMENT, {"device_id"}},
      {"reserved device id", config_with([](pb::VmConfig& c) { add_nic(c, "tap0", "52:54:00:00:00:01")->set_device_id("feos-root"); }),
       S::INVALID_ARGUMENT, {"reserved"}},

      // --- vm ids ---
      {"create with vm id ../x", create_with([](pb::CreateVmRequest& r) { r.set_vm_id("../x"); }), S::INVALID_ARGUMENT, {"vm id"}},
      {"create with an existing vm id", create_with([&](pb::CreateVmRequest& r) { r.set_vm_id(holder); }), S::ALREADY_EXISTS, {holder}},
      {"get vm ../x", get("../x"), S::INVALID_ARGUMENT, {"vm id"}},
      {"get vm a/b", get("a/b"), S::INVALID_ARGUMENT, {"vm id"}},
      {"get vm with empty id", get(""), S::INVALID_ARGUMENT, {"vm id"}},
      {"get vm with a 1 MiB id", get(std::string(1 << 20, 'a')), S::INVALID_ARGUMENT, {"vm id"}},
      {"get vm id with a newline", get(std::string(kUnknownId) + "\n"), S::INVALID_ARGUMENT, {"vm id"}},
      {"start vm ../../../etc", start("../../../etc"), S::INVALID_ARGUMENT, {"vm id"}},
      {"delete vm ../x", remove("../x"), S::INVALID_ARGUMENT, {"vm id"}},
      {"delete vm with empty id", remove(""), S::INVALID_ARGUMENT, {"vm id"}},
      {"delete vm holder/../x", remove(holder + "/../x"), S::INVALID_ARGUMENT, {"vm id"}},
      {"console attach ../x", console_attach("../x"), S::INVALID_ARGUMENT, {"vm id"}},
      {"events of vm a/b",
       events([] {
         pb::StreamVmEventsRequest r;
         r.set_vm_id("a/b");
         return r;
       }()),
       S::INVALID_ARGUMENT, {"vm id"}},

      // --- unknown VMs and wrong states ---
      {"get unknown vm", get(kUnknownId), S::NOT_FOUND, {kUnknownId}},
      {"start unknown vm", start(kUnknownId), S::NOT_FOUND, {kUnknownId}},
      {"delete unknown vm", remove(kUnknownId), S::NOT_FOUND, {kUnknownId}},
      {"pause unknown vm", pause(kUnknownId), S::NOT_FOUND, {kUnknownId}},
      {"resume unknown vm", resume(kUnknownId), S::NOT_FOUND, {kUnknownId}},
      {"shutdown unknown vm", shutdown(kUnknownId), S::NOT_FOUND, {kUnknownId}},
      {"ping unknown vm", ping(kUnknownId), S::NOT_FOUND, {kUnknownId}},
      {"console of unknown vm", console_attach(kUnknownId), S::NOT_FOUND, {kUnknownId}},
      {"events of unknown vm",
       events([] {
         pb::StreamVmEventsRequest r;
         r.set_vm_id(kUnknownId);
         return r;
       }()),
       S::NOT_FOUND, {kUnknownId}},
      {"pause a created (not running) vm", pause(holder), S::FAILED_PRECONDITION, {holder}},
      {"console of a created (not running) vm", console_attach(holder), S::FAILED_PRECONDITION, {holder}},
      {"console without attach first",
       console([] {
         pb::StreamVmConsoleRequest r;
         r.mutable_data()->set_input("rm -rf /\n");
         return r;
       }()),
       S::INVALID_ARGUMENT, {"attach"}},
      {"events tail_events = -1",
       events([] {
         pb::StreamVmEventsRequest r;
         r.set_tail_events(-1);
         return r;
       }()),
       S::INVALID_ARGUMENT, {"tail_events"}},
      {"events tail_id not a number",
       events([] {
         pb::StreamVmEventsRequest r;
         r.set_tail_id("1; DROP TABLE vms");
         return r;
       }()),
       S::INVALID_ARGUMENT, {"tail_id"}},
      {"attach disk without a disk",
       unary<pb::AttachDiskRequest, pb::AttachDiskResponse>(&pb::VMService::Stub::AttachDisk,
                                                            with_id<pb::AttachDiskRequest>(holder)),
       S::INVALID_ARGUMENT, {"disk: not given"}},

      // --- bytes that are not a request at all (gRPC's own mapping: INTERNAL "parse" errors) ---
      {"garbage bytes as CreateVmRequest", raw("/feos.vm.vmm.api.v1.VMService/CreateVm", std::string("\xff\xff\xff\xff\x0f\x0a\x80", 7)),
       S::INTERNAL},
      {"invalid UTF-8 in a vm id string", raw("/feos.vm.vmm.api.v1.VMService/GetVm", std::string("\x0a\x04\xff\xfe../", 8)),
       S::INTERNAL},
  };
}

class HostileRequestsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto api = ApiHarness::start();
    ASSERT_TRUE(api) << api.error().to_string();
    api_ = std::move(*api);
    vms_ = api_->vm_stub();
    // A VM that holds a GPU for the whole test: the busy-GPU, duplicate-id and wrong-state cases.
    pb::CreateVmRequest req = valid_create_request();
    req.mutable_config()->add_gpus()->set_address(kHeldGpu);
    grpc::ClientContext ctx;
    pb::CreateVmResponse resp;
    grpc::Status s = vms_->CreateVm(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    holder_ = resp.vm_id();
    ASSERT_EQ(core::wait_created(api_->manager(), *model::VmId::parse(holder_)), model::VmState::kCreated);
  }

  std::set<std::string> listed_ids() {
    grpc::ClientContext ctx;
    set_deadline(ctx);
    pb::ListVmsResponse resp;
    grpc::Status s = vms_->ListVms(&ctx, pb::ListVmsRequest(), &resp);
    EXPECT_TRUE(s.ok()) << "ListVms: " << s.error_message();
    std::set<std::string> ids;
    for (const auto& vm : resp.vms()) ids.insert(vm.vm_id());
    return ids;
  }
  std::set<std::string> stored_ids() {
    std::set<std::string> ids;
    auto vms = api_->db().vms().list();
    EXPECT_TRUE(vms) << vms.error().to_string();
    if (vms)
      for (const auto& vm : *vms) ids.insert(vm.id);
    return ids;
  }
  std::vector<store::DeviceAssignment> ledger() {
    auto rows = api_->db().ledger().list(std::nullopt);
    EXPECT_TRUE(rows) << rows.error().to_string();
    return rows ? *rows : std::vector<store::DeviceAssignment>();
  }

  std::unique_ptr<ApiHarness> api_;
  std::unique_ptr<pb::VMService::Stub> vms_;
  std::string holder_;
};

TEST_F(HostileRequestsTest, EachGetsItsCodeAndChangesNothing) {
  const auto cases = hostile_cases(holder_);
  ASSERT_GE(cases.size(), 30u);
  test::FakeKernel& kernel = api_->kernel();
  const test::BindingSnapshot bindings = kernel.snapshot();
  const std::vector<std::string> vfio = kernel.vfio_groups();
  size_t writes = kernel.write_count();
  const std::vector<store::DeviceAssignment> rows = ledger();
  const std::set<std::string> ids = listed_ids();
  ASSERT_EQ(ids, std::set<std::string>{holder_});
  ASSERT_EQ(stored_ids(), ids);
  ASSERT_EQ(bindings.at(kHeldGpu).driver, "vfio-pci");

  Clients clients{*vms_, api_->channel()};
  size_t held = 0;
  std::set<std::string> names;
  std::vector<std::string> broken;
  for (const Case& c : cases) {
    SCOPED_TRACE("case: " + c.name);
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate case name";
    const int failures_before = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
    auto started = std::chrono::steady_clock::now();
    grpc::Status status = c.call(clients);
    auto took = std::chrono::steady_clock::now() - started;
    if (std::getenv("FEOS_HOSTILE_VERBOSE")) {
      std::printf("  %-55s %s %.150s\n", c.name.c_str(), code_name(status.error_code()).c_str(),
                  status.error_message().c_str());
    }

    EXPECT_EQ(code_name(status.error_code()), code_name(c.code)) << status.error_message();
    for (const auto& fragment : c.fragments)
      EXPECT_NE(status.error_message().find(fragment), std::string::npos)
          << "message lacks \"" << fragment << "\": " << status.error_message();
    // Messages quote client input, but bounded: a 1 MiB id must not come back as a 1 MiB error.
    EXPECT_LE(status.error_message().size(), 2048u);
    EXPECT_LT(took, 5s) << "slow refusal";
    // Nothing on the host moved.
    EXPECT_EQ(kernel.write_count(), writes);
    EXPECT_EQ(kernel.snapshot(), bindings);
    EXPECT_EQ(kernel.vfio_groups(), vfio);
    EXPECT_EQ(ledger(), rows);
    // No VM appeared (or went), in the API and in the store; the server still answers.
    const std::set<std::string> listed = listed_ids();
    EXPECT_EQ(listed, ids);
    EXPECT_EQ(stored_ids(), ids);
    const int failures_after = ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
    if (failures_after == failures_before) {
      ++held;
    } else {
      broken.push_back(c.name + ": " + code_name(status.error_code()) + " \"" +
                       status.error_message().substr(0, 160) + "\"");
      // Undo what the case did so that the next one is judged on its own.
      for (const auto& id : listed) {
        if (ids.count(id)) continue;
        grpc::ClientContext ctx;
        pb::DeleteVmResponse resp;
        (void)vms_->DeleteVm(&ctx, with_id<pb::DeleteVmRequest>(id), &resp);
      }
      writes = kernel.write_count();
    }
  }
  for (const auto& b : broken) std::printf("  NOT HELD %s\n", b.c_str());
  std::printf("hostile requests: %zu cases, %zu held\n", cases.size(), held);
  EXPECT_EQ(held, cases.size());

  // The holder is intact and the daemon still does real work: the GPU goes back on delete.
  grpc::ClientContext ctx;
  pb::DeleteVmResponse resp;
  grpc::Status s = vms_->DeleteVm(&ctx, with_id<pb::DeleteVmRequest>(holder_), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(kernel.snapshot().at(kHeldGpu).driver, "nvidia");
  EXPECT_TRUE(ledger().empty());
  EXPECT_TRUE(listed_ids().empty());
}

// The host service takes no input that could hurt; it must still answer after the abuse above
// and report the same GPUs as the fake host has.
TEST_F(HostileRequestsTest, HostServiceStillAnswers) {
  auto host = api_->host_stub();
  grpc::ClientContext ctx;
  set_deadline(ctx);
  feosd::v1::ListPciDevicesRequest req;
  req.set_gpus_only(true);
  feosd::v1::ListPciDevicesResponse resp;
  grpc::Status s = host->ListPciDevices(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::vector<std::string> nvidia;
  for (const auto& d : resp.devices())
    if (d.vendor_id() == "10de") nvidia.push_back(d.address());
  EXPECT_EQ(nvidia, hgx_gpus());
  for (const auto& d : resp.devices()) {
    if (d.address() == kHeldGpu) {
      EXPECT_EQ(d.assigned_vm(), holder_);
    }
  }
}

}  // namespace
}  // namespace feos::api::testing
