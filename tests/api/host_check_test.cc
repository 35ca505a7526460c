// CheckHost's guest capacity on feosd's own wiring (daemon::Daemon with the real QEMU adapter) over
// the fake kernel of simulated hosts, through a real gRPC server: the host CPU's address bits, the
// UEFI firmware, and per GPU model how many one VM holds with BIOS and with UEFI. Every count is
// checked against the real path: a dry run of a VM with that many GPUs of the model passes, and one
// with one more is refused with the limit's own message.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>

#include "common/log.h"
#include "daemon/daemon.h"
#include "feos/vm/vmm/api/v1/vm.grpc.pb.h"
#include "feosd/v1/host.grpc.pb.h"
#include "support/fake_host.h"
#include "support/temp_dir.h"

namespace feos::api {
namespace {

namespace fs = std::filesystem;
namespace pb = ::feos::vm::vmm::api::v1;
namespace hostpb = ::feosd::v1;

void put_file(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

class HostCheckTest : public ::testing::Test {
 protected:
  // A daemon on `host` with accelerator `accel`; with `ovmf`, a firmware directory that offers
  // a UEFI build (else an empty one).
  // `policy_json`, when given, is the daemon's --device-policy file.
  void open(const test::HostBuilder& host, const std::string& accel, bool ovmf = true,
            const std::string& policy_json = "") {
    log::set_level("warn");
    auto fake = test::FakeHost::create(host);
    ASSERT_TRUE(fake) << fake.error().to_string();
    host_ = std::move(*fake);
    fs::create_directories(state_ / "firmware");
    if (ovmf) {
      put_file(state_ / "ovmf/CODE.fd", "code");
      put_file(state_ / "ovmf/VARS.fd", std::string(540672, '\0'));
      put_file(state_ / "firmware/60-edk2-x86_64.json",
               R"({"description": "test", "interface-types": ["uefi"],
                   "mapping": {"device": "flash",
                               "executable": {"filename": ")" + (state_ / "ovmf/CODE.fd") + R"(", "format": "raw"},
                               "nvram-template": {"filename": ")" + (state_ / "ovmf/VARS.fd") + R"(", "format": "raw"}},
                   "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
                   "features": ["acpi-s3"], "tags": []})");
    }
    put_file(state_ / "vmlinuz", "a kernel");
    daemon::DaemonOptions o;
    o.state_dir = state_ / "state";
    o.paths = host_->paths();
    o.filesystem = &host_->kernel();
    o.qemu.accel = accel;
    o.qemu.firmware_dirs = {state_ / "firmware"};
    o.build_version = "host-check-test";
    if (!policy_json.empty()) {
      put_file(state_ / "policy.json", policy_json);
      o.device_policy_file = state_ / "policy.json";
    }
    auto daemon = daemon::Daemon::open(std::move(o));
    ASSERT_TRUE(daemon) << daemon.error().to_string();
    daemon_ = std::move(*daemon);
    const std::string target = "unix:" + (state_ / "feosd.sock");
    grpc::ServerBuilder builder;
    builder.AddListeningPort(target, grpc::InsecureServerCredentials());
    daemon_->register_services(builder);
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_);
    auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
    vms_ = pb::VMService::NewStub(channel);
    hosts_ = hostpb::HostDeviceService::NewStub(channel);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  hostpb::CheckHostResponse check() {
    hostpb::CheckHostResponse resp;
    grpc::ClientContext context;
    grpc::Status status = hosts_->CheckHost(&context, {}, &resp);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return resp;
  }

  const hostpb::HostCheckItem* item(const hostpb::CheckHostResponse& resp, const std::string& name) {
    for (const auto& i : resp.items())
      if (i.name() == name) return &i;
    ADD_FAILURE() << "no item " << name;
    return nullptr;
  }

  const hostpb::GpuModelCapacity* model(const hostpb::CheckHostResponse& resp, const std::string& id) {
    for (const auto& m : resp.capacity().models())
      if (m.id() == id) return &m;
    ADD_FAILURE() << "no model " << id;
    return nullptr;
  }

  // A dry run of a VM with the first `n` GPUs of `m`, with the RAM the counts assume.
  grpc::Status dry_run(const hostpb::CheckHostResponse& resp, const hostpb::GpuModelCapacity& m, int n,
                       bool uefi) {
    pb::CreateVmRequest req;
    req.set_dry_run(true);
    auto* config = req.mutable_config();
    config->mutable_cpus()->set_boot_vcpus(2);
    config->mutable_memory()->set_size_mib(resp.capacity().guest_ram_bytes() >> 20);
    config->mutable_boot()->set_kernel(state_ / "vmlinuz");
    if (uefi) config->mutable_firmware()->set_kind(feosd::v1::FIRMWARE_KIND_UEFI);
    for (int i = 0; i < n; ++i) config->add_gpus()->set_address(m.addresses(i));
    pb::CreateVmResponse ignored;
    grpc::ClientContext context;
    return vms_->CreateVm(&context, req, &ignored);
  }

  // The counts of `m` are the real path's: `fit` GPUs plan, fit + 1 are refused with the limit.
  void expect_counts_match_dry_runs(const hostpb::CheckHostResponse& resp, const hostpb::GpuModelCapacity& m) {
    for (bool uefi : {false, true}) {
      SCOPED_TRACE(uefi ? "UEFI" : "BIOS");
      const hostpb::FirmwareCapacity& fit = uefi ? m.uefi() : m.bios();
      if (fit.fit() > 0) {
        grpc::Status planned = dry_run(resp, m, fit.fit(), uefi);
        EXPECT_TRUE(planned.ok()) << planned.error_message();
      }
      if (fit.fit() < m.addresses_size()) {
        grpc::Status refused = dry_run(resp, m, fit.fit() + 1, uefi);
        EXPECT_EQ(refused.error_code(), grpc::FAILED_PRECONDITION) << refused.error_message();
        EXPECT_NE(refused.error_message().find(fit.limit()), std::string::npos)
            << refused.error_message() << "\nlimit: " << fit.limit();
      } else {
        EXPECT_EQ(fit.limit(), "");
      }
    }
  }

  test::TempDir state_ = test::TempDir::for_trees();
  std::unique_ptr<test::FakeHost> host_;
  std::unique_ptr<daemon::Daemon> daemon_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<pb::VMService::Stub> vms_;
  std::unique_ptr<hostpb::HostDeviceService::Stub> hosts_;
};

TEST_F(HostCheckTest, FourCardsOf512GiBFitWithBiosButOnlyThreeWithUefiOnA43BitKvmHost) {
  open(test::bar512_host(), "kvm");
  auto resp = check();
  EXPECT_EQ(resp.capacity().host_phys_bits(), 43);
  EXPECT_EQ(resp.capacity().accelerator(), "kvm");
  EXPECT_EQ(resp.capacity().guest_phys_bits_max(), 43);
  EXPECT_EQ(resp.capacity().guest_ram_bytes(), uint64_t{257658} << 20);  // MemTotal in whole MiB
  EXPECT_EQ(resp.capacity().uefi_firmware(), state_ / "ovmf/CODE.fd");
  const auto* m = model(resp, "10de:2901");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->addresses_size(), 4);
  EXPECT_EQ(m->addresses(0), "0000:18:00.0");
  // SeaBIOS: four 1 TiB windows and 1 TiB of slack from 1 TiB + RAM: the hole ends below 8 TiB.
  EXPECT_EQ(m->bios().fit(), 4);
  EXPECT_EQ(m->bios().phys_bits_needed(), 43);
  EXPECT_EQ(m->bios().limit(), "");
  // OVMF: the fourth card makes the aperture 8 TiB, aligned to 8 TiB: it ends at 16 TiB (44 bits).
  EXPECT_EQ(m->uefi().fit(), 3);
  EXPECT_EQ(m->uefi().phys_bits_needed(), 43);
  EXPECT_NE(m->uefi().limit().find("aperture of 8 TiB at 8 TiB, which needs 44"), std::string::npos)
      << m->uefi().limit();
  EXPECT_NE(m->uefi().limit().find("the host CPU has 43"), std::string::npos) << m->uefi().limit();
  expect_counts_match_dry_runs(resp, *m);

  const auto* bits = item(resp, "address_bits");
  ASSERT_TRUE(bits);
  EXPECT_TRUE(bits->ok());
  EXPECT_EQ(bits->detail(), "host CPU: 43 physical address bits; kvm guests get the host's bits (at most 43)");
  const auto* row = item(resp, "model 10de:2901");
  ASSERT_TRUE(row);
  EXPECT_FALSE(row->ok());
  EXPECT_NE(row->detail().find("holds 4 of 4 with BIOS (43 address bits); 3 of 4 with UEFI (43 address bits): "),
            std::string::npos)
      << row->detail();
  // The BMC's VGA is a model too: one VM would hold it (the policy decides whether it may).
  const auto* bmc = model(resp, "1a03:2000");
  ASSERT_TRUE(bmc);
  EXPECT_EQ(bmc->bios().fit(), 1);
}

TEST_F(HostCheckTest, A40BitKvmHostHoldsTwoH100sWithBiosAndOneWithUefi) {
  // Without its NVSwitches, so that dry runs of 2 and 3 GPUs reach the address-space check
  // (with them, fewer than all 8 are refused first: tests/hostdev/nvswitch_test.cc).
  open(test::without_nvswitches(test::hgx_h100_host()).cpu_address_bits(40), "kvm");
  auto resp = check();
  const auto* m = model(resp, "10de:2330");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->addresses_size(), 8);
  // SeaBIOS: two 256 GiB windows and 128 GiB of slack after 251 GiB of RAM end below 1 TiB.
  EXPECT_EQ(m->bios().fit(), 2);
  EXPECT_NE(m->bios().limit().find("3 GPU(s) with 64-bit windows of 0000:18:00.0 256 GiB, 0000:2a:00.0 "
                                   "256 GiB, 0000:3a:00.0 256 GiB do not fit on this host"),
            std::string::npos)
      << m->bios().limit();
  // OVMF: the two need a 1 TiB aperture at 1 TiB, which ends past 40 bits.
  EXPECT_EQ(m->uefi().fit(), 1);
  EXPECT_NE(m->uefi().limit().find("aperture of 1 TiB at 1 TiB, which needs 41"), std::string::npos)
      << m->uefi().limit();
  expect_counts_match_dry_runs(resp, *m);
}

// With its NVSwitches and no mode, the board goes whole or not at all: two fit the address space,
// so none does; the limit names the fabric first, and dry runs agree (8 refused for the address
// space, 2 for the fabric).
TEST_F(HostCheckTest, TheNvSwitchFabricBoundsTheCountToTheWholeBoard) {
  open(test::hgx_h100_host().cpu_address_bits(40), "kvm");
  auto resp = check();
  const auto* m = model(resp, "10de:2330");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->bios().fit(), 0);
  EXPECT_EQ(m->bios().phys_bits_needed(), 0);
  EXPECT_EQ(m->bios().limit().rfind("the NVSwitch fabric (no nvswitch_mode) gives a VM all 8 GPUs with the "
                                    "NVSwitches, or none; and the address space: ",
                                    0),
            0u)
      << m->bios().limit();
  EXPECT_EQ(m->uefi().fit(), 0);
  const auto* row = item(resp, "model 10de:2330");
  ASSERT_TRUE(row);
  EXPECT_FALSE(row->ok());
  EXPECT_NE(row->detail().find("holds 0 of 8 with BIOS: the NVSwitch fabric"), std::string::npos) << row->detail();
  grpc::Status all = dry_run(resp, *m, 8, false);
  EXPECT_EQ(all.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_NE(all.error_message().find("do not fit on this host"), std::string::npos) << all.error_message();
  grpc::Status two = dry_run(resp, *m, 2, false);
  EXPECT_EQ(two.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_NE(two.error_message().find("NVSwitch"), std::string::npos) << two.error_message();
}

// Shared mode: the counts are the partitions' sizes. The address space holds 2 (BIOS) and 1
// (UEFI) H100s; partitions of 1 and 4 leave 1 for both, and a dry run of that partition plans.
TEST_F(HostCheckTest, SharedModeBoundsTheCountToAPartitionSize) {
  open(test::hgx_h100_host().cpu_address_bits(40), "kvm", true,
       R"({"nvswitch_mode": "shared", "nvswitch_partitions": [
             ["0000:18:00.0"], ["0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0", "0000:9a:00.0"]]})");
  auto resp = check();
  const auto* m = model(resp, "10de:2330");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->bios().fit(), 1);
  EXPECT_GT(m->bios().phys_bits_needed(), 0);
  EXPECT_EQ(m->bios().limit().rfind("the NVSwitch fabric (mode shared) gives VMs one partition: of 1, 4 GPU(s); "
                                    "and the address space: ",
                                    0),
            0u)
      << m->bios().limit();
  EXPECT_EQ(m->uefi().fit(), 1);
  EXPECT_EQ(m->uefi().limit().find("the NVSwitch fabric"), std::string::npos) << m->uefi().limit();
  grpc::Status one = dry_run(resp, *m, 1, false);
  EXPECT_TRUE(one.ok()) << one.error_message();
}

TEST_F(HostCheckTest, TcgGuestsAreNotBoundByTheHostCpuAndEightH200sFit) {
  open(test::hgx_h200_host(), "tcg");
  auto resp = check();
  EXPECT_EQ(resp.capacity().host_phys_bits(), 46);
  EXPECT_EQ(resp.capacity().guest_phys_bits_max(), 52);
  const auto* m = model(resp, "10de:2335");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->bios().fit(), 8);
  EXPECT_EQ(m->uefi().fit(), 8);
  EXPECT_EQ(m->uefi().phys_bits_needed(), 44);  // an 8 TiB aperture at 8 TiB
  const auto* row = item(resp, "model 10de:2335");
  ASSERT_TRUE(row);
  EXPECT_TRUE(row->ok()) << row->detail();
  const auto* bits = item(resp, "address_bits");
  ASSERT_TRUE(bits);
  EXPECT_EQ(bits->detail(), "host CPU: 46 physical address bits; tcg guests may have up to 52");
  expect_counts_match_dry_runs(resp, *m);
}

TEST_F(HostCheckTest, UnknownAddressBitsAndNoOvmfAreReportedNotGuessed) {
  open(test::hgx_h200_host().cpu_address_bits(0), "kvm", /*ovmf=*/false);
  auto resp = check();
  EXPECT_EQ(resp.capacity().host_phys_bits(), 0);
  EXPECT_EQ(resp.capacity().guest_phys_bits_max(), 52);
  EXPECT_EQ(resp.capacity().uefi_firmware(), "");
  const auto* bits = item(resp, "address_bits");
  ASSERT_TRUE(bits);
  EXPECT_FALSE(bits->ok());
  EXPECT_NE(bits->detail().find("unknown"), std::string::npos) << bits->detail();
  const auto* uefi = item(resp, "uefi_firmware");
  ASSERT_TRUE(uefi);
  EXPECT_FALSE(uefi->ok());
  EXPECT_NE(uefi->detail().find(state_ / "firmware"), std::string::npos) << uefi->detail();
  // A start with unknown bits is not refused for them (qemu decides), so all eight count.
  const auto* m = model(resp, "10de:2335");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->bios().fit(), 8);
}

// An HGX board's NVSwitches: one item naming them, their group and the policy's nvswitch_mode
// (a warning without one), and the structured list.
TEST_F(HostCheckTest, NvSwitchesAreOneItemWithTheirGroup) {
  open(test::hgx_h100_host(), "tcg");
  auto resp = check();
  const auto* row = item(resp, "nvswitch");
  ASSERT_TRUE(row);
  EXPECT_FALSE(row->ok());  // no nvswitch_mode in the (default) policy
  EXPECT_EQ(row->detail(),
            "4 NVSwitches 10de:22a3 (0000:05:00.0, 0000:06:00.0, 0000:07:00.0, 0000:08:00.0) in IOMMU group 114; "
            "no nvswitch_mode in the GPU policy: only a VM with all 8 GPUs is allowed (it gets the NVSwitches "
            "too), since one with fewer would fail CUDA with error 802 without a fabric manager; set "
            "\"nvswitch_mode\": \"full-passthrough\", or \"shared\" with the fabric manager's "
            "\"nvswitch_partitions\", in the --device-policy file");
  ASSERT_EQ(resp.nvswitches_size(), 4);
  EXPECT_EQ(resp.nvswitches(0).address(), "0000:05:00.0");
  EXPECT_EQ(resp.nvswitches(3).address(), "0000:08:00.0");
  EXPECT_EQ(resp.nvswitches(3).id(), "10de:22a3");
  EXPECT_EQ(resp.nvswitches(3).iommu_group(), "114");
}

TEST_F(HostCheckTest, HostsWithoutNvSwitchesHaveNoSuchItem) {
  open(test::pcie_2s4g_host(), "tcg");
  auto resp = check();
  EXPECT_EQ(resp.nvswitches_size(), 0);
  for (const auto& i : resp.items()) EXPECT_NE(i.name(), "nvswitch") << i.detail();
}

// ListPciDevices carries each device's place: local CPUs, root bus, switch, and a GPU's switch peers.
TEST_F(HostCheckTest, ListedDevicesCarryTheirPlaceInThePcieTree) {
  open(test::hgx_h100_host(), "tcg");
  hostpb::ListPciDevicesRequest req;
  hostpb::ListPciDevicesResponse resp;
  grpc::ClientContext context;
  grpc::Status status = hosts_->ListPciDevices(&context, req, &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const hostpb::PciDeviceInfo* gpu = nullptr;
  const hostpb::PciDeviceInfo* root_port = nullptr;
  for (const auto& d : resp.devices()) {
    if (d.address() == "0000:18:00.0") gpu = &d;
    if (d.address() == "0000:15:01.0") root_port = &d;
  }
  ASSERT_TRUE(gpu && root_port);
  EXPECT_EQ(gpu->local_cpus(), "0-55");
  EXPECT_EQ(gpu->pcie_root(), "pci0000:15");
  EXPECT_EQ(gpu->switch_upstream(), "0000:16:00.0");
  ASSERT_EQ(gpu->switch_peers_size(), 2);
  EXPECT_EQ(gpu->switch_peers(0).address(), "0000:19:00.0");
  EXPECT_EQ(gpu->switch_peers(0).id(), "15b3:1021");
  EXPECT_EQ(gpu->switch_peers(0).class_name(), "network controller");
  EXPECT_EQ(gpu->switch_peers(1).address(), "0000:1a:00.0");
  EXPECT_EQ(gpu->switch_peers(1).class_name(), "mass storage controller");
  // A root port sits on the root bus, under no switch.
  EXPECT_EQ(root_port->pcie_root(), "pci0000:15");
  EXPECT_EQ(root_port->switch_upstream(), "");
  EXPECT_EQ(root_port->switch_peers_size(), 0);
}

}  // namespace
}  // namespace feos::api
