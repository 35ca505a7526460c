// VmManager's device changes (vm_hotplug.cc): spec only while stopped, live and stored while
// running, and the refusals.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/vm_manager.h"
#include "manager_fixture.h"
#include "model/validate.h"

namespace feos::core {
namespace {

using model::VmState;

class VmHotplugTest : public ManagerFixture {
 protected:
  void reopen() { ASSERT_TRUE(reopen_with({})); }
  model::VmId create() { return create_vm(); }
  model::VmSpec spec(const model::VmId& id) { return manager_->get(id)->spec; }
  std::vector<std::string> events(const model::VmId& id, const std::string& component) {
    store::EventFilter filter;
    filter.vm_id = id.text();
    std::vector<std::string> out;
    auto history = manager_->history(filter);
    EXPECT_TRUE(history) << history.error().to_string();
    if (!history) return out;
    for (const auto& e : *history)
      if (e.component_id == component) out.push_back(e.reason);
    return out;
  }

};

TEST_F(VmHotplugTest, StoppedVmChangesItsSpecOnlyAndKeepsItAcrossRestarts) {
  const model::VmId id = create();
  auto disk = manager_->attach_disk(id, {"data", "/srv/data.raw", true});
  ASSERT_TRUE(disk) << disk.error().to_string();
  EXPECT_EQ(*disk, "data");
  auto nic = manager_->attach_nic(id, {"", "tap-hp0", ""});
  ASSERT_TRUE(nic) << nic.error().to_string();
  EXPECT_EQ(*nic, "tap-hp0");  // FeOS's default: the tap's name
  EXPECT_TRUE(hv_.plugged_in(id.text()).empty());  // nothing runs: nothing plugged
  reopen();
  model::VmSpec stored = spec(id);
  ASSERT_EQ(stored.disks.size(), 1u);
  EXPECT_EQ(stored.disks[0].path, "/srv/data.raw");
  EXPECT_TRUE(stored.disks[0].readonly);
  ASSERT_EQ(stored.nets.size(), 1u);
  // A MAC was generated and stored, so the guest sees the same NIC at every start.
  EXPECT_TRUE(model::is_mac_text(stored.nets[0].mac)) << stored.nets[0].mac;
  EXPECT_TRUE(stored.nets[0].mac.starts_with("52:54:00:"));
  EXPECT_EQ(events(id, "disk").size(), 1u);
  EXPECT_NE(events(id, "nic").at(0).find("at the next start"), std::string::npos);

  ASSERT_TRUE(manager_->detach_disk(id, "data"));
  ASSERT_TRUE(manager_->detach_nic(id, "tap-hp0"));
  reopen();
  EXPECT_TRUE(spec(id).disks.empty());
  EXPECT_TRUE(spec(id).nets.empty());
  EXPECT_EQ(events(id, "disk").size(), 2u);
}

TEST_F(VmHotplugTest, RunningVmIsChangedLiveThenStored) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->start(id));
  ASSERT_TRUE(manager_->attach_disk(id, {"", "/srv/a.qcow2", false}));
  ASSERT_TRUE(manager_->attach_nic(id, {"eth1", "tap-hp1", "52:54:00:aa:bb:cc"}));
  EXPECT_EQ(hv_.plugged_in(id.text()), (std::set<std::string>{"disk0", "eth1"}));
  ASSERT_EQ(hv_.plugged_nics.size(), 1u);
  EXPECT_EQ(hv_.plugged_nics[0].mac, "52:54:00:aa:bb:cc");  // kept as given
  // The hypervisor's format is recorded with the disk.
  EXPECT_EQ(spec(id).disks.at(0).format, model::DiskFormat::kRaw);
  EXPECT_NE(events(id, "disk").at(0).find("to the running guest"), std::string::npos);
  ASSERT_TRUE(manager_->detach_disk(id, "disk0"));
  EXPECT_EQ(hv_.plugged_in(id.text()), (std::set<std::string>{"eth1"}));
  EXPECT_TRUE(spec(id).disks.empty());
  EXPECT_EQ(spec(id).nets.size(), 1u);
  EXPECT_EQ(manager_->get(id)->state, VmState::kRunning);
}

// A tap the live attach created goes with its NIC: at the detach, and with the VM at delete. A tap
// that existed (the operator's) stays, and a request cannot claim that feosd made one.
TEST_F(VmHotplugTest, ATapCreatedByTheAttachIsRemovedWithItsNic) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->start(id));
  hv_.missing_taps = {"tap-new0", "tap-new1"};
  hv_.hotplug_ports = 3;
  ASSERT_TRUE(manager_->attach_nic(id, {"eth0", "tap-new0", ""}));
  ASSERT_TRUE(manager_->attach_nic(id, {"eth1", "tap-ops", "", true}));  // existed; the claim is ignored
  ASSERT_TRUE(manager_->attach_nic(id, {"eth2", "tap-new1", ""}));
  ASSERT_EQ(spec(id).nets.size(), 3u);
  EXPECT_TRUE(spec(id).nets[0].tap_created);
  EXPECT_FALSE(spec(id).nets[1].tap_created);
  EXPECT_TRUE(spec(id).nets[2].tap_created);
  EXPECT_NE(events(id, "nic").at(0).find("(tap tap-new0, created, MAC "), std::string::npos) << events(id, "nic").at(0);

  ASSERT_TRUE(manager_->detach_nic(id, "eth1"));
  EXPECT_TRUE(hv_.removed_taps.empty()) << "the operator's tap stays";
  ASSERT_TRUE(manager_->detach_nic(id, "eth0"));
  EXPECT_EQ(hv_.removed_taps, std::vector<std::string>{"tap-new0"});
  EXPECT_NE(events(id, "nic").back().find("released by the guest; tap tap-new0 removed"), std::string::npos)
      << events(id, "nic").back();
  ASSERT_TRUE(manager_->remove(id));
  EXPECT_EQ(hv_.removed_taps, (std::vector<std::string>{"tap-new0", "tap-new1"}));
}

TEST_F(VmHotplugTest, DuplicateIdsAreAlreadyExistsAcrossDisksAndNics) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->attach_disk(id, {"data", "/srv/data.raw", false}));
  auto disk = manager_->attach_disk(id, {"data", "/srv/other.raw", false});
  ASSERT_FALSE(disk);
  EXPECT_EQ(disk.error().code, Code::kAlreadyExists) << disk.error().to_string();
  auto nic = manager_->attach_nic(id, {"data", "tap0", ""});
  ASSERT_FALSE(nic);
  EXPECT_EQ(nic.error().code, Code::kAlreadyExists);
  EXPECT_EQ(spec(id).disks.size(), 1u);
  EXPECT_TRUE(spec(id).nets.empty());
}

TEST_F(VmHotplugTest, UnknownDevicesAndVmsAreNotFound) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->attach_nic(id, {"eth0", "tap0", ""}));
  auto disk = manager_->detach_disk(id, "eth0");  // a NIC, not a disk
  ASSERT_FALSE(disk);
  EXPECT_EQ(disk.error().code, Code::kNotFound) << disk.error().to_string();
  EXPECT_EQ(manager_->detach_nic(id, "nope").error().code, Code::kNotFound);
  EXPECT_EQ(manager_->attach_disk(model::VmId::random(), {"d", "/srv/d.raw", false}).error().code, Code::kNotFound);
  EXPECT_EQ(spec(id).nets.size(), 1u);
}

TEST_F(VmHotplugTest, NoFreeSlotIsResourceExhaustedAndChangesNothing) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->start(id));
  hv_.hotplug_ports = 1;
  ASSERT_TRUE(manager_->attach_nic(id, {"eth0", "tap0", ""}));
  auto second = manager_->attach_disk(id, {"data", "/srv/data.raw", false});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Code::kResourceExhausted) << second.error().to_string();
  EXPECT_TRUE(spec(id).disks.empty());
  // The port is free again after a detach.
  ASSERT_TRUE(manager_->detach_nic(id, "eth0"));
  EXPECT_TRUE(manager_->attach_disk(id, {"data", "/srv/data.raw", false}));
}

TEST_F(VmHotplugTest, DetachTheGuestDoesNotReleaseIsDeadlineExceededAndKeepsTheDevice) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->start(id));
  ASSERT_TRUE(manager_->attach_disk(id, {"data", "/srv/data.raw", false}));
  hv_.guest_releases = false;
  auto detached = manager_->detach_disk(id, "data");
  ASSERT_FALSE(detached);
  EXPECT_EQ(detached.error().code, Code::kDeadlineExceeded);
  EXPECT_EQ(spec(id).disks.size(), 1u);
  EXPECT_EQ(hv_.plugged_in(id.text()).count("data"), 1u);
  EXPECT_EQ(events(id, "disk").size(), 1u);  // the attach only
  // The job ended: the VM takes other requests, and a retry once the guest lets go succeeds.
  hv_.guest_releases = true;
  EXPECT_TRUE(manager_->detach_disk(id, "data"));
  EXPECT_TRUE(spec(id).disks.empty());
}

TEST_F(VmHotplugTest, PausedAndCrashedVmsAreRefusedInFeosWords) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->start(id));
  ASSERT_TRUE(manager_->pause(id));
  auto paused = manager_->attach_nic(id, {"eth0", "tap0", ""});
  ASSERT_FALSE(paused);
  EXPECT_EQ(paused.error().code, Code::kFailedPrecondition);
  EXPECT_NE(paused.error().message.find("Cannot attach NIC to VM in Paused state"), std::string::npos)
      << paused.error().message;
  ASSERT_TRUE(manager_->resume(id));
  hv_.exit(id.text(), false, "qemu killed by signal 9");
  ASSERT_EQ(manager_->get(id)->state, VmState::kCrashed);
  EXPECT_EQ(manager_->attach_disk(id, {"d", "/srv/d.raw", false}).error().code, Code::kFailedPrecondition);
  EXPECT_TRUE(spec(id).nets.empty());
}

TEST_F(VmHotplugTest, TheNextStartGetsTheAttachedDevices) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->attach_disk(id, {"data", "/srv/data.raw", false}));
  ASSERT_TRUE(manager_->start(id));
  ASSERT_EQ(hv_.started_specs[id.text()].disks.size(), 1u);
  EXPECT_EQ(hv_.started_specs[id.text()].disks[0].path, "/srv/data.raw");
}

}  // namespace
}  // namespace feos::core
