#include "api/convert.h"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "model/validate.h"

namespace feos::api {
namespace {

pb::VmConfig minimal() {
  pb::VmConfig c;
  c.mutable_cpus()->set_boot_vcpus(2);
  c.mutable_memory()->set_size_mib(256);
  c.mutable_boot()->set_kernel("/k");
  return c;
}

void expect_invalid(const pb::VmConfig& c, Code code, const std::string& fragment) {
  auto r = spec_from_proto(c);
  ASSERT_FALSE(r) << fragment;
  EXPECT_EQ(r.error().code, code) << r.error().message;
  EXPECT_NE(r.error().message.find(fragment), std::string::npos) << r.error().message;
}

TEST(ConvertTest, RoundTripFullConfig) {
  pb::VmConfig c = minimal();
  c.mutable_cpus()->set_max_vcpus(4);
  c.mutable_memory()->set_hugepages(true);
  c.set_image_ref("file:///img.qcow2");
  auto* d = c.add_disks();
  d->set_device_id("data");
  d->set_path("/data.raw");
  d->set_readonly(true);
  auto* n = c.add_net();
  n->set_device_id("n0");
  n->mutable_tap()->set_tap_name("tap0");
  n->set_mac_address("52:54:00:00:00:01");
  c.set_ignition("{\"ignition\":{}}");
  c.mutable_boot()->set_initramfs("/i");
  c.mutable_boot()->set_cmdline("console=ttyS0");
  auto* g = c.add_gpus();
  g->set_address("0000:18:00.0");
  g->set_rombar(feosd::v1::ROM_BAR_OFF);
  g->set_boot_vga(true);

  auto spec = spec_from_proto(c);
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->cpus.max_vcpus, 4u);
  EXPECT_EQ(spec->disks.at(0).path, "/data.raw");
  EXPECT_EQ(spec->nets.at(0).tap_name, "tap0");
  EXPECT_EQ(spec->gpus.at(0).address.to_string(), "0000:18:00.0");
  EXPECT_EQ(spec->gpus.at(0).rombar, model::RomBar::kOff);
  pb::VmConfig back = spec_to_proto(*spec);
  EXPECT_EQ(back.SerializeAsString(), c.SerializeAsString()) << back.DebugString();
}

TEST(ConvertTest, MaxVcpusDefaultsToBoot) {
  auto spec = spec_from_proto(minimal());
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->cpus.max_vcpus, 2u);
}

// Only what the model cannot hold is refused here: an unset oneof, a backend feosd does not
// offer, an unknown enum value.
TEST(ConvertTest, RejectsWhatTheModelCannotExpress) {
  pb::VmConfig c = minimal();
  c.add_disks()->set_device_id("x");
  expect_invalid(c, Code::kInvalidArgument, "config.disks[0]: no backend");
  c = minimal();
  c.add_net()->set_device_id("x");
  expect_invalid(c, Code::kInvalidArgument, "config.net[0]: no backend");
  c = minimal();
  c.add_disks()->mutable_vfio_pci()->set_bdf("0000:03:00.0");
  expect_invalid(c, Code::kUnimplemented, "config.disks[0].vfio_pci");
  c = minimal();
  c.add_net()->mutable_vfio_pci()->set_bdf("0000:03:00.0");
  expect_invalid(c, Code::kUnimplemented, "config.net[0].vfio_pci");
  c = minimal();
  c.add_gpus()->set_address("0000:18:00.0");
  c.mutable_gpus(0)->set_rombar(static_cast<feosd::v1::RomBar>(7));
  expect_invalid(c, Code::kInvalidArgument, "config.gpus[0].rombar: unknown value 7");
}

// Values the model can hold are converted as sent; model::validate() judges them, with the
// same field paths.
TEST(ConvertTest, LeavesBoundsToModelValidate) {
  struct Case {
    std::function<void(pb::VmConfig&)> edit;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](pb::VmConfig& c) { c.clear_cpus(); }, "config.cpus.boot_vcpus: must be at least 1"},
      {[](pb::VmConfig& c) { c.clear_memory(); }, "config.memory.size_mib: must be at least 1"},
      {[](pb::VmConfig& c) {
         auto* n = c.add_net();
         n->set_device_id("n0");
         n->mutable_tap()->set_tap_name("a-much-too-long-tap-name");
       },
       "config.net[0].tap.tap_name: "},
      {[](pb::VmConfig& c) { c.mutable_boot()->set_kernel(std::string("/k\0x", 4)); }, "config.boot.kernel: "},
      {[](pb::VmConfig& c) {
         for (int i = 0; i < 17; ++i) c.add_gpus()->set_address("0000:18:00.0");
       },
       "config.gpus: 17 given, at most 16 GPUs per VM"},
      {[](pb::VmConfig& c) {
         for (int i = 0; i < 65; ++i) c.add_disks()->set_path("/d");
       },
       "config.disks: 65 given, at most 64 disks per VM"},
  };
  for (const auto& test : cases) {
    pb::VmConfig c = minimal();
    test.edit(c);
    auto spec = spec_from_proto(c);
    ASSERT_TRUE(spec) << test.field << ": " << spec.error().message;
    auto valid = model::validate(*spec);
    ASSERT_FALSE(valid) << test.field;
    EXPECT_EQ(valid.error().code, Code::kInvalidArgument);
    EXPECT_EQ(valid.error().message.rfind(test.field, 0), 0u) << valid.error().message;
  }
}

// GPU addresses are parsed here, the one place a requested address enters the daemon; below, they
// are values, and what the API shows and stores is their canonical form.
TEST(ConvertTest, GpuAddressesAreParsedStrictly) {
  for (const char* bad : {"../../../etc/passwd", "0000:01:00.0/../..", " 01:00.0", "01:00.8",
                          "10000:01:00.0", "0000:01:20.0"}) {
    SCOPED_TRACE(bad);
    pb::VmConfig c = minimal();
    c.add_gpus()->set_address(bad);
    expect_invalid(c, Code::kInvalidArgument, "config.gpus[0].address: invalid PCI address");
  }
  pb::VmConfig c = minimal();
  c.add_gpus()->set_address("0000:01:00.0");
  c.add_gpus()->set_address("zz:00.0");
  expect_invalid(c, Code::kInvalidArgument, "config.gpus[1].address: invalid PCI address 'zz:00.0'");

  c = minimal();
  c.add_gpus()->set_address("1A:00.0");  // short form, upper case
  auto spec = spec_from_proto(c);
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec_to_proto(*spec).gpus(0).address(), "0000:1a:00.0");
}

TEST(ConvertTest, GuestTopologyChoicesRoundTrip) {
  pb::VmConfig c = minimal();
  c.mutable_cpus()->set_max_vcpus(2);  // spec_to_proto writes it
  c.add_gpus()->set_address("0000:18:00.0");
  c.add_gpus()->set_address("0000:19:00.0");
  c.mutable_gpu_p2p()->set_mode(feosd::v1::GPU_P2P_MODE_EXPLICIT);
  auto* clique = c.mutable_gpu_p2p()->add_cliques();
  clique->add_gpus("0000:18:00.0");
  clique->add_gpus("0000:19:00.0");
  c.set_guest_numa(feosd::v1::GUEST_NUMA_MODE_OFF);
  auto spec = spec_from_proto(c);
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->gpu_p2p.mode, model::GpuP2pMode::kExplicit);
  ASSERT_EQ(spec->gpu_p2p.cliques.size(), 1u);
  EXPECT_EQ(spec->gpu_p2p.cliques[0].at(1).to_string(), "0000:19:00.0");
  EXPECT_EQ(spec->guest_numa, model::GuestNumaMode::kOff);
  EXPECT_TRUE(model::validate(*spec));
  EXPECT_EQ(spec_to_proto(*spec).SerializeAsString(), c.SerializeAsString());
  // The defaults: auto cliques, the daemon's NUMA, nothing on the wire.
  auto plain = spec_from_proto(minimal());
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->gpu_p2p, model::GpuP2pSpec{});
  EXPECT_EQ(plain->guest_numa, model::GuestNumaMode::kDefault);
  EXPECT_FALSE(spec_to_proto(*plain).has_gpu_p2p());
}

TEST(ConvertTest, GuestTopologyChoicesAreParsedAtTheBorder) {
  pb::VmConfig c = minimal();
  c.mutable_gpu_p2p()->set_mode(static_cast<feosd::v1::GpuP2pMode>(9));
  expect_invalid(c, Code::kInvalidArgument, "config.gpu_p2p.mode: unknown value 9");
  c = minimal();
  c.set_guest_numa(static_cast<feosd::v1::GuestNumaMode>(5));
  expect_invalid(c, Code::kInvalidArgument, "config.guest_numa: unknown value 5");
  c = minimal();
  c.mutable_gpu_p2p()->set_mode(feosd::v1::GPU_P2P_MODE_EXPLICIT);
  c.mutable_gpu_p2p()->add_cliques()->add_gpus("18:00.0/..");
  expect_invalid(c, Code::kInvalidArgument, "config.gpu_p2p.cliques[0].gpus[0]: invalid PCI address");
  c = minimal();
  for (int i = 0; i < 17; ++i) c.mutable_gpu_p2p()->add_cliques();
  expect_invalid(c, Code::kInvalidArgument, "config.gpu_p2p.cliques: 17 given, at most 16");
}

TEST(ConvertTest, StateNumbersMatchFeos) {
  EXPECT_EQ(state_to_proto(model::VmState::kUnspecified), pb::VM_STATE_UNSPECIFIED);
  EXPECT_EQ(state_to_proto(model::VmState::kCreating), pb::VM_STATE_CREATING);
  EXPECT_EQ(state_to_proto(model::VmState::kCreated), pb::VM_STATE_CREATED);
  EXPECT_EQ(state_to_proto(model::VmState::kRunning), pb::VM_STATE_RUNNING);
  EXPECT_EQ(state_to_proto(model::VmState::kPaused), pb::VM_STATE_PAUSED);
  EXPECT_EQ(state_to_proto(model::VmState::kStopped), pb::VM_STATE_STOPPED);
  EXPECT_EQ(state_to_proto(model::VmState::kCrashed), pb::VM_STATE_CRASHED);
}

TEST(ConvertTest, AssignedGpusAreShown) {
  model::VmRecord r;
  r.id = "vm1";
  model::AssignedGpu g;
  g.request.address = pci::Address(0, 0x18, 0, 0);
  g.functions.push_back({pci::Address(0, 0x18, 0, 0), "10de:2330", 0x030200, pci::IommuGroup(59), "nvidia",
                         {{1, 128ull << 30, true, true, false}}});
  g.numa_node = 0;
  r.gpus.push_back(g);
  auto info = record_to_proto(r);
  ASSERT_EQ(info.gpus_size(), 1);
  EXPECT_EQ(info.gpus(0).functions(0).iommu_group(), "59");
  EXPECT_EQ(info.gpus(0).functions(0).bars(0).size(), 128ull << 30);
  EXPECT_EQ(info.gpus(0).functions(0).original_driver(), "nvidia");
}

TEST(ConvertTest, EventPacksStateChange) {
  model::VmEvent e{42, "vm1", "vm", model::VmState::kStopped, "guest powered off", 1};
  pb::VmEvent out = event_to_proto(e);
  EXPECT_EQ(out.id(), "42");
  EXPECT_EQ(out.data().type_url(), "type.googleapis.com/feos.vm.vmm.api.v1.VmStateChangedEvent");
  pb::VmStateChangedEvent changed;
  ASSERT_TRUE(out.data().UnpackTo(&changed));
  EXPECT_EQ(changed.new_state(), pb::VM_STATE_STOPPED);
  EXPECT_EQ(changed.reason(), "guest powered off");
}

// AttachDisk / AttachNic: the device as create takes it; what is missing or not offered is named.
TEST(ConvertTest, AttachedDevices) {
  pb::DiskConfig disk;
  disk.set_device_id("data");
  disk.set_path("/srv/data.qcow2");
  disk.set_readonly(true);
  auto converted = disk_from_proto(true, disk);
  ASSERT_TRUE(converted) << converted.error().to_string();
  EXPECT_EQ(converted->device_id, "data");
  EXPECT_EQ(converted->path, "/srv/data.qcow2");
  EXPECT_TRUE(converted->readonly);
  EXPECT_EQ(disk_from_proto(false, {}).error().message, "disk: not given");
  EXPECT_EQ(disk_from_proto(true, {}).error().code, Code::kInvalidArgument);
  disk.mutable_vfio_pci()->set_bdf("0000:03:00.0");
  EXPECT_EQ(disk_from_proto(true, disk).error().code, Code::kUnimplemented);

  pb::NetConfig nic;
  nic.mutable_tap()->set_tap_name("tap0");
  nic.set_mac_address("52:54:00:00:00:01");
  auto net = net_from_proto(true, nic);
  ASSERT_TRUE(net) << net.error().to_string();
  EXPECT_EQ(net->tap_name, "tap0");
  EXPECT_EQ(net->mac, "52:54:00:00:00:01");
  EXPECT_EQ(net->device_id, "");  // the manager names it after the tap
  EXPECT_EQ(net_from_proto(false, {}).error().message, "nic: not given");
  nic.mutable_vfio_pci()->set_bdf("0000:03:00.0");
  EXPECT_EQ(net_from_proto(true, nic).error().code, Code::kUnimplemented);
}

}  // namespace
}  // namespace feos::api
