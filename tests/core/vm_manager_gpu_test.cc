// VmManager with GPUs: the real HostDevices (ledger + vfio binding) on the fake kernel of an HGX
// H100 host, the scriptable FakeHypervisor for the process side.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "gpu_fixture.h"

namespace feos::core {
namespace {

using namespace std::chrono_literals;

TEST_F(VmManagerGpuTest, CreateTakesGpuStartPassesItDeleteGivesItBack) {
  auto id = create({"18:00.0"});
  ASSERT_TRUE(id) << id.error().to_string();
  auto record = manager_->get(*id);
  EXPECT_EQ(record->state, VmState::kCreated);
  EXPECT_EQ(record->spec.gpus.at(0).address.to_string(), "0000:18:00.0");  // canonical
  ASSERT_EQ(record->gpus.size(), 1u);
  EXPECT_EQ(record->gpus[0].functions.at(0).original_driver, "nvidia");
  EXPECT_EQ(record->gpus[0].functions[0].iommu_group, pci::IommuGroup(59));
  EXPECT_EQ(driver("0000:18:00.0"), "vfio-pci");

  ASSERT_TRUE(manager_->start(*id));
  ASSERT_EQ(hv_.started_gpus[id->text()].size(), 1u);
  uint64_t biggest = 0;
  for (const auto& bar : hv_.started_gpus[id->text()][0].functions[0].bars) biggest = std::max(biggest, bar.size);
  EXPECT_EQ(biggest, 128ull << 30);

  ASSERT_TRUE(manager_->remove(*id));
  EXPECT_EQ(kernel_->snapshot(), before_);
  EXPECT_TRUE(db_->ledger().list(std::nullopt)->empty());
}

// GPUs by count: picked at create, recorded as GPUs by address (what GetVm shows), and every later
// start takes the same ones, also after a daemon restart.
TEST_F(VmManagerGpuTest, GpusByCountAreRecordedByAddressAndKeptAcrossRestarts) {
  model::VmSpec spec;
  spec.boot.kernel = "/boot/vmlinuz";
  spec.gpus.push_back(model::GpuSpec{.address = test::pci_address("0000:9a:00.0")});
  spec.gpu_count = model::GpuCount{.count = 2, .model = "10de:2330", .p2p = false};
  auto id = create_and_wait(spec);
  ASSERT_TRUE(id) << id.error().to_string();
  auto record = manager_->get(*id);
  ASSERT_EQ(record->spec.gpus.size(), 3u);
  EXPECT_EQ(record->spec.gpus[0].address.to_string(), "0000:9a:00.0");
  // Node 1 holds two more most tightly (three free there besides the VM's own 9a:00.0; four on node 0).
  EXPECT_EQ(record->spec.gpus[1].address.to_string(), "0000:ab:00.0");
  EXPECT_EQ(record->spec.gpus[2].address.to_string(), "0000:ba:00.0");
  ASSERT_TRUE(record->spec.gpu_count);
  EXPECT_EQ(record->spec.gpu_count->count, 2u);
  EXPECT_EQ(driver("0000:ab:00.0"), "vfio-pci");

  ASSERT_TRUE(manager_->start(*id));
  hv_.exit(id->text(), true, "guest powered off");
  EXPECT_EQ(driver("0000:ab:00.0"), "nvidia");  // given back at the stop
  reopen();
  ASSERT_TRUE(manager_->start(*id));
  ASSERT_EQ(hv_.started_gpus[id->text()].size(), 3u);
  EXPECT_EQ(hv_.started_gpus[id->text()][1].request.address.to_string(), "0000:ab:00.0");
  EXPECT_EQ(hv_.started_gpus[id->text()][2].request.address.to_string(), "0000:ba:00.0");
  ASSERT_TRUE(manager_->remove(*id));
  EXPECT_EQ(kernel_->snapshot(), before_);
}

// A VM that exits stops listing its GPUs before the ledger frees them, and is stopped only once
// they are back: no client sees one GPU on two VMs, and one that sees the VM stopped may give its
// GPUs to another VM at once. (Here the host driver's probe is slow.)
TEST_F(VmManagerGpuTest, AnExitedVmStopsListingItsGpusBeforeTheLedgerFreesThem) {
  auto id = create({"0000:18:00.0"});
  ASSERT_TRUE(id) << id.error().to_string();
  ASSERT_TRUE(manager_->start(*id));
  ASSERT_EQ(manager_->get(*id)->gpus.size(), 1u);
  kernel_->inject({.op = test::Op::kDriversProbe, .fault = test::Fault::delay(400ms)});
  std::thread exit([&] { hv_.exit(id->text(), true, "guest powered off"); });
  int mid_release = 0;
  for (int i = 0; i < 300; ++i) {
    // In this order: a stopped VM had freed its rows before; freed rows mean the record was
    // cleared before.
    auto before = manager_->get(*id);
    auto rows = db_->ledger().list(id->text());
    auto after = manager_->get(*id);
    EXPECT_TRUE(before && rows && after);  // (no ASSERT: the exit thread must be joined)
    if (!before || !rows || !after) break;
    if (before->state == VmState::kStopped) {
      EXPECT_TRUE(rows->empty()) << "stopped before the GPU was back";
    }
    if (rows->empty()) {
      EXPECT_TRUE(after->gpus.empty()) << "the ledger freed the GPU and the VM lists it";
    }
    if (!rows->empty() && after->gpus.empty()) ++mid_release;
    std::this_thread::sleep_for(1ms);
  }
  exit.join();
  EXPECT_GT(mid_release, 0);  // the window was seen
  EXPECT_EQ(state(*id), VmState::kStopped);
  EXPECT_TRUE(db_->ledger().list(id->text())->empty());
  EXPECT_EQ(driver("0000:18:00.0"), "nvidia");
  ASSERT_TRUE(manager_->remove(*id));
  EXPECT_EQ(kernel_->snapshot(), before_);
}

TEST_F(VmManagerGpuTest, TooFewGpusByCountIsRefusedAndNotRecorded) {
  auto first = create({"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0", "0000:9a:00.0"});
  ASSERT_TRUE(first) << first.error().to_string();
  model::VmSpec spec;
  spec.boot.kernel = "/boot/vmlinuz";
  spec.gpu_count = model::GpuCount{.count = 4, .model = "", .p2p = false};
  auto refused = manager_->create(spec, std::nullopt);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kResourceExhausted);
  EXPECT_NE(refused.error().message.find("3 free: 0000:ab:00.0, 0000:ba:00.0, 0000:db:00.0 on node 1"),
            std::string::npos)
      << refused.error().message;
  EXPECT_EQ(manager_->list().size(), 1u);
}

TEST_F(VmManagerGpuTest, SecondVmForTheSameGpuIsRefusedAndNotRecorded) {
  auto first = create({"0000:2a:00.0"});
  ASSERT_TRUE(first);
  auto second = create({"0000:2a:00.0"});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Code::kFailedPrecondition);
  EXPECT_NE(second.error().message.find("0000:2a:00.0"), std::string::npos) << second.error().message;
  EXPECT_NE(second.error().message.find(first->text()), std::string::npos) << second.error().message;
  EXPECT_EQ(manager_->list().size(), 1u);
}

TEST_F(VmManagerGpuTest, PlanCreateIsTheHostSidesPlanAndTheHypervisorsAndWritesNothing) {
  model::VmSpec spec;
  spec.boot.kernel = "/boot/vmlinuz";
  spec.gpus.push_back(model::GpuSpec{.address = test::pci_address("18:00.0")});
  auto plan = manager_->plan_create(spec, test::vm_id("AAAAAAAA-0000-4000-8000-000000000001"));
  ASSERT_TRUE(plan) << plan.error().to_string();
  EXPECT_EQ(plan->vm_id, "aaaaaaaa-0000-4000-8000-000000000001");
  ASSERT_EQ(plan->gpus.size(), 1u);
  EXPECT_EQ(plan->gpus[0].functions.at(0).iommu_group, pci::IommuGroup(59));
  EXPECT_EQ(plan->gpus[0].numa_node, 0);
  // The hypervisor was asked with the VM's future runtime dir and the planned functions.
  EXPECT_EQ(plan->qemu_argv, (std::vector<std::string>{"fake-hypervisor", "aaaaaaaa-0000-4000-8000-000000000001",
                                                       dir_.path() + "/vms/aaaaaaaa-0000-4000-8000-000000000001",
                                                       "vfio=0000:18:00.0"}));
  ASSERT_FALSE(plan->decisions.empty());
  EXPECT_EQ(plan->decisions.back(), "fake hypervisor");  // the host side's first, then the hypervisor's
  EXPECT_EQ(plan->address_space.ram_bytes, spec.memory.size_mib << 20);
  EXPECT_EQ(kernel_->write_count(), 0u);
  EXPECT_TRUE(db_->ledger().list(std::nullopt)->empty());
  EXPECT_TRUE(manager_->list().empty());
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/vms/aaaaaaaa-0000-4000-8000-000000000001"));
  EXPECT_EQ(hv_.starts, 0);

  // What the hypervisor refuses comes back as start() reports it.
  hv_.plan_error = Error{Code::kFailedPrecondition, "vm aaaaaaaa-0000-4000-8000-000000000001: gpus: too wide"};
  auto refused = manager_->plan_create(spec, test::vm_id("aaaaaaaa-0000-4000-8000-000000000001"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(refused.error().message, "start vm aaaaaaaa-0000-4000-8000-000000000001: vm aaaaaaaa-0000-4000-8000-000000000001: gpus: too wide");
  EXPECT_EQ(kernel_->write_count(), 0u);
}

TEST_F(VmManagerGpuTest, RefusalsLeaveNothingBehind) {
  for (auto [address, code] : std::vector<std::pair<std::string, Code>>{
           {"0000:19:00.0", Code::kFailedPrecondition},  // the ConnectX-7 NIC: not a GPU
           {"0000:77:00.0", Code::kNotFound},
           {"0000:1a:00.0", Code::kFailedPrecondition}}) {  // an NVMe drive: not a GPU
    auto r = create({address});
    ASSERT_FALSE(r) << address;
    EXPECT_EQ(r.error().code, code) << r.error().to_string();
  }
  EXPECT_TRUE(manager_->list().empty());
  EXPECT_EQ(kernel_->snapshot(), before_);
  EXPECT_EQ(kernel_->write_count(), 0u);
}

TEST_F(VmManagerGpuTest, ProcessExitReturnsGpusAndStartTakesThemAgain) {
  auto id = create({"0000:3a:00.0", "0000:5d:00.0"});
  ASSERT_TRUE(id) << id.error().to_string();
  ASSERT_TRUE(manager_->start(*id));
  hv_.exit(id->text(), true, "guest powered off");
  EXPECT_EQ(state(*id), VmState::kStopped);
  EXPECT_TRUE(manager_->get(*id)->gpus.empty()) << "VmInfo must not show GPUs the VM no longer holds";
  EXPECT_EQ(driver("0000:3a:00.0"), "nvidia");
  EXPECT_EQ(driver("0000:5d:00.0"), "nvidia");
  // The GPUs' return and the stop are events, in that order: stopped means they are back.
  EXPECT_EQ(last_events(*id, 2),
            (std::vector<std::string>{"gpus running: GPUs returned to the host: 0000:3a:00.0, 0000:5d:00.0",
                                      "vm stopped: guest powered off"}));

  // Meanwhile another VM takes one of the GPUs: the restart fails and says who has it.
  auto other = create({"0000:5d:00.0"});
  ASSERT_TRUE(other);
  auto restart = manager_->start(*id);
  ASSERT_FALSE(restart);
  EXPECT_NE(restart.error().message.find(other->text()), std::string::npos) << restart.error().message;
  EXPECT_EQ(driver("0000:3a:00.0"), "nvidia");  // nothing half-taken
  ASSERT_TRUE(manager_->remove(*other));
  ASSERT_TRUE(manager_->start(*id));
  EXPECT_EQ(driver("0000:3a:00.0"), "vfio-pci");
  EXPECT_EQ(driver("0000:5d:00.0"), "vfio-pci");
}

// A crash returns the GPUs at once; the crashed VM cannot start again (FeOS's rule) and keeps its
// reason until it is deleted.
TEST_F(VmManagerGpuTest, ACrashReturnsTheGpusAndTheCrashedVmOnlyGoesAway) {
  auto id = create({"0000:3a:00.0", "0000:5d:00.0"});
  ASSERT_TRUE(id) << id.error().to_string();
  ASSERT_TRUE(manager_->start(*id));
  hv_.exit(id->text(), false, "qemu killed by signal 9 (Killed)");
  EXPECT_EQ(state(*id), VmState::kCrashed);
  EXPECT_EQ(manager_->get(*id)->state_reason, "qemu killed by signal 9 (Killed)");
  EXPECT_TRUE(manager_->get(*id)->gpus.empty());
  EXPECT_EQ(driver("0000:3a:00.0"), "nvidia");
  EXPECT_EQ(driver("0000:5d:00.0"), "nvidia");
  EXPECT_EQ(last_events(*id, 2),
            (std::vector<std::string>{"gpus running: GPUs returned to the host: 0000:3a:00.0, 0000:5d:00.0",
                                      "vm crashed: qemu killed by signal 9 (Killed)"}));
  auto restart = manager_->start(*id);
  ASSERT_FALSE(restart);
  EXPECT_EQ(restart.error().code, Code::kFailedPrecondition);
  EXPECT_NE(restart.error().message.find("Cannot start VM in Crashed state. Must be in Created or Stopped."),
            std::string::npos)
      << restart.error().message;
  EXPECT_EQ(hv_.starts, 1);
  EXPECT_EQ(driver("0000:3a:00.0"), "nvidia");  // the refusal took nothing
  EXPECT_EQ(manager_->get(*id)->state_reason, "qemu killed by signal 9 (Killed)");
  ASSERT_TRUE(manager_->remove(*id));
  EXPECT_EQ(kernel_->snapshot(), before_);
}

// A guest that ignores the power button is forced off after the grace; its GPUs go back to the
// host as at any stop.
TEST_F(VmManagerGpuTest, AForcedOffVmReturnsItsGpus) {
  shutdown_ = {.grace = std::chrono::milliseconds(200), .repress = std::chrono::milliseconds(50)};
  reopen();
  auto id = create({"0000:3a:00.0"});
  ASSERT_TRUE(id) << id.error().to_string();
  ASSERT_TRUE(manager_->start(*id));
  EXPECT_EQ(driver("0000:3a:00.0"), "vfio-pci");
  ASSERT_TRUE(manager_->shutdown(*id));
  for (int i = 0; i < 1000 && state(*id) != VmState::kStopped; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(state(*id), VmState::kStopped);
  // Stopped is the last step: the GPUs are back, and the power-off's job has ended.
  EXPECT_EQ(driver("0000:3a:00.0"), "nvidia");
  auto events = last_events(*id, 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0], "gpus running: GPUs returned to the host: 0000:3a:00.0");
  EXPECT_TRUE(events[1].starts_with("vm stopped: forced off after 0.2 s: the guest did not power off after "))
      << events[1];
  // A client that sees it stopped may start it at once (no ABORTED), and it takes them again.
  Status started = manager_->start(*id);
  ASSERT_TRUE(started) << started.error().to_string();
  EXPECT_EQ(driver("0000:3a:00.0"), "vfio-pci");
}

// The hypervisor dies and a GPU cannot be returned: the VM is crashed, an event names the device,
// the device stays reserved (no other VM gets it; the crashed VM cannot start anyway), and the
// next delete returns it.
TEST_F(VmManagerGpuTest, GpuThatCannotBeReturnedAfterACrashStaysReservedAndIsReported) {
  auto id = create({"0000:3a:00.0"});
  ASSERT_TRUE(id) << id.error().to_string();
  ASSERT_TRUE(manager_->start(*id));
  auto stuck = kernel_->inject({.op = test::Op::kUnbind, .bdf = "0000:3a:00.0", .driver = "vfio-pci",
                                .fault = test::Fault::busy(-1)});
  hv_.exit(id->text(), false, "qemu killed by signal 11 (Segmentation fault)");
  EXPECT_EQ(state(*id), VmState::kCrashed);
  auto events = last_events(*id, 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1], "vm crashed: qemu killed by signal 11 (Segmentation fault)");
  EXPECT_NE(events[0].find("gpus running: GPUs not returned to the host: release devices of vm " + id->text() +
                           ": 0000:3a:00.0: unbind from vfio-pci"),
            std::string::npos)
      << events[0];
  auto other = create({"0000:3a:00.0"});
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message.find("0000:3a:00.0 is assigned to vm " + id->text()), std::string::npos);
  kernel_->remove_fault(stuck);
  ASSERT_TRUE(manager_->remove(*id));
  EXPECT_EQ(kernel_->snapshot(), before_);
}

TEST_F(VmManagerGpuTest, RestartKeepsGpusOfRunningVmsAndReturnsOthers) {
  auto running = create({"0000:9a:00.0"});
  auto created = create({"0000:ab:00.0"});
  ASSERT_TRUE(running && created);
  ASSERT_TRUE(manager_->start(*running));
  hv_.alive_after_restart = {manager_->get(*running)->pid};
  reopen();
  EXPECT_EQ(state(*running), VmState::kRunning);
  EXPECT_EQ(driver("0000:9a:00.0"), "vfio-pci");
  EXPECT_EQ(driver("0000:ab:00.0"), "vfio-pci");  // a created VM keeps its GPUs too

  // The running VM's process dies while the daemon is down: on restart its GPU comes back.
  hv_.alive_after_restart.clear();
  reopen();
  EXPECT_EQ(state(*running), VmState::kCrashed);
  EXPECT_EQ(driver("0000:9a:00.0"), "nvidia");
  EXPECT_EQ(driver("0000:ab:00.0"), "vfio-pci");
  ASSERT_TRUE(manager_->remove(*created));
  ASSERT_TRUE(manager_->remove(*running));
  EXPECT_EQ(kernel_->snapshot(), before_);
}

TEST_F(VmManagerGpuTest, CrashDuringCreateStrandsNothing) {
  // The daemon "dies" while binding the second GPU (create's background part): no more writes
  // reach the kernel. The VM was recorded creating; the restart fails it and returns the GPUs.
  kernel_->inject({.op = test::Op::kDriversProbe, .bdf = "0000:db:00.0", .fault = test::Fault::crash()});
  auto r = create({"0000:ba:00.0", "0000:db:00.0"});
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(state(*r), VmState::kCrashed);
  kernel_->revive();
  kernel_->clear_faults();
  reopen();
  EXPECT_EQ(state(*r), VmState::kCrashed);
  EXPECT_TRUE(manager_->get(*r)->state_reason.starts_with("create failed: GPUs not bound to vfio-pci: "))
      << manager_->get(*r)->state_reason;
  ASSERT_TRUE(manager_->remove(*r));
  EXPECT_TRUE(manager_->list().empty());
  EXPECT_EQ(kernel_->snapshot(), before_);
  EXPECT_TRUE(db_->ledger().list(std::nullopt)->empty());
}

// StartVm refused because a process of the VM is alive (issue 17): that process may be using the
// GPUs, so they stay on vfio-pci for the VM; nothing is taken from under it.
TEST_F(VmManagerGpuTest, AStartRefusedForALiveProcessLeavesTheGpusBound) {
  auto id = create({"0000:3a:00.0"});
  ASSERT_TRUE(id) << id.error().to_string();
  hv_.start_error = Error{Code::kAlreadyExists, "vm " + id->text() + ": a qemu process of this VM (pid 77) is still running"};
  auto refused = manager_->start(*id);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kAlreadyExists);
  EXPECT_EQ(driver("0000:3a:00.0"), "vfio-pci");
  EXPECT_EQ(state(*id), VmState::kCreated);
  // Any other failure gives them back (as before).
  hv_.start_error = Error{Code::kInternal, "qemu exited with status 1"};
  ASSERT_FALSE(manager_->start(*id));
  EXPECT_EQ(driver("0000:3a:00.0"), "nvidia");
}

// A failed start gives the GPUs back; after a daemon restart the created VM must take them again
// at its next start (it does not still "hold" what it gave back).
TEST_F(VmManagerGpuTest, AfterAFailedStartAndARestartTheNextStartTakesTheGpusAgain) {
  auto id = create({"0000:3a:00.0"});
  ASSERT_TRUE(id) << id.error().to_string();
  hv_.fail_start = true;
  ASSERT_FALSE(manager_->start(*id));
  EXPECT_EQ(driver("0000:3a:00.0"), "nvidia");
  hv_.fail_start = false;
  reopen();
  ASSERT_TRUE(manager_->start(*id));
  EXPECT_EQ(driver("0000:3a:00.0"), "vfio-pci");
  ASSERT_EQ(hv_.started_gpus[id->text()].size(), 1u);
  EXPECT_EQ(hv_.started_gpus[id->text()][0].request.address.to_string(), "0000:3a:00.0");
}

}  // namespace
}  // namespace feos::core
