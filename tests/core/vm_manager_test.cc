#include "core/vm_manager.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "manager_fixture.h"
#include "support/vm_ids.h"

namespace feos::core {
namespace {

using model::VmState;

class VmManagerTest : public ManagerFixture {
 protected:
  // Simulates a daemon restart: a new store connection and manager on the same file.
  void reopen() { ASSERT_TRUE(reopen_with({})); }
  model::VmSpec spec() {
    model::VmSpec s;
    s.boot.kernel = "/boot/vmlinuz";
    return s;
  }
  model::VmId create() { return create_vm(); }
  std::vector<VmState> event_states(const model::VmId& id) {
    store::EventFilter f;
    f.vm_id = id.text();
    auto events = manager_->history(f);
    EXPECT_TRUE(events) << events.error().to_string();
    std::vector<VmState> out;
    for (const auto& e : *events) out.push_back(e.state);
    return out;
  }

};

TEST_F(VmManagerTest, LifecycleWithEvents) {
  std::vector<model::VmEvent> live;
  int token = bus_.subscribe([&](const model::VmEvent& e) { live.push_back(e); });
  const model::VmId id = create();
  EXPECT_EQ(state(id), VmState::kCreated);
  ASSERT_TRUE(manager_->start(id));
  EXPECT_EQ(state(id), VmState::kRunning);
  EXPECT_EQ(manager_->get(id)->pid, 1000);
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "vms" / id.text()));
  ASSERT_TRUE(manager_->pause(id));
  EXPECT_EQ(state(id), VmState::kPaused);
  ASSERT_TRUE(manager_->resume(id));
  ASSERT_TRUE(manager_->shutdown(id));
  EXPECT_EQ(hv_.shutdown_requests, 1);
  EXPECT_EQ(state(id), VmState::kRunning);  // until the guest powers off
  hv_.exit(id.text(), true, "guest powered off");
  EXPECT_EQ(state(id), VmState::kStopped);
  // The reason says which way it stopped, and how long after the request.
  EXPECT_TRUE(manager_->get(id)->state_reason.starts_with("guest powered off 0.")) << manager_->get(id)->state_reason;
  EXPECT_TRUE(manager_->get(id)->state_reason.ends_with(" s after the shutdown request (1 press of the ACPI power button)"))
      << manager_->get(id)->state_reason;
  EXPECT_EQ(manager_->get(id)->pid, 0);
  // The request is an event of its own (the state stays running until the guest acts).
  EXPECT_EQ(event_states(id), (std::vector<VmState>{VmState::kCreating, VmState::kCreated, VmState::kRunning,
                                                    VmState::kPaused, VmState::kRunning, VmState::kRunning,
                                                    VmState::kStopped}));
  ASSERT_EQ(live.size(), 7u);
  EXPECT_EQ(live[0].reason, "creating");
  EXPECT_EQ(live[1].reason, "created");
  EXPECT_EQ(live[5].reason, "shutdown requested: ACPI power button pressed; forced off in 20 s unless the guest powers off");
  EXPECT_LT(live[0].id, live[6].id);
  bus_.unsubscribe(token);
  ASSERT_TRUE(manager_->remove(id));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "vms" / id.text()));
  EXPECT_EQ(manager_->get(id).error().code, Code::kNotFound);
}

TEST_F(VmManagerTest, CrashIsReportedWithReason) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->start(id));
  hv_.exit(id.text(), false, "qemu killed by signal 9 (Killed)");
  EXPECT_EQ(state(id), VmState::kCrashed);
  EXPECT_EQ(manager_->get(id)->state_reason, "qemu killed by signal 9 (Killed)");
  // Crashed is final (FeOS's rule): only delete; the VM keeps its reason until then.
  for (auto refused : {manager_->start(id), manager_->pause(id), manager_->resume(id), manager_->shutdown(id)}) {
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
    EXPECT_NE(refused.error().message.find("Invalid VM state for operation: Cannot "), std::string::npos)
        << refused.error().message;
    EXPECT_NE(refused.error().message.find(" VM in Crashed state."), std::string::npos) << refused.error().message;
  }
  EXPECT_EQ(manager_->ping(id).error().code, Code::kFailedPrecondition);
  EXPECT_EQ(manager_->console(id).error().code, Code::kFailedPrecondition);
  EXPECT_EQ(hv_.starts, 1);
  EXPECT_EQ(state(id), VmState::kCrashed);
  EXPECT_EQ(manager_->get(id)->state_reason, "qemu killed by signal 9 (Killed)");
  EXPECT_EQ(event_states(id).back(), VmState::kCrashed);
  ASSERT_TRUE(manager_->remove(id));
  EXPECT_EQ(manager_->get(id).error().code, Code::kNotFound);
}

TEST_F(VmManagerTest, IllegalTransitionsChangeNothing) {
  const model::VmId id = create();
  for (auto result : {manager_->pause(id), manager_->resume(id), manager_->shutdown(id)}) {
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, Code::kFailedPrecondition);
    EXPECT_NE(result.error().message.find(id.text()), std::string::npos);
  }
  EXPECT_EQ(manager_->ping(id).error().code, Code::kFailedPrecondition);
  EXPECT_EQ(state(id), VmState::kCreated);
  EXPECT_EQ(event_states(id).size(), 2u);  // creating, created
  EXPECT_EQ(manager_->start(test::vm_id("123e4567-e89b-12d3-a456-426614174000")).error().code, Code::kNotFound);
}

TEST_F(VmManagerTest, CreateValidates) {
  auto dup = manager_->create(spec(), test::vm_id("123e4567-e89b-12d3-a456-426614174000"));
  ASSERT_TRUE(dup);
  EXPECT_EQ(manager_->create(spec(), *dup).error().code, Code::kAlreadyExists);
  model::VmSpec missing = spec();
  missing.boot.kernel = "/missing";
  auto r = manager_->create(missing, std::nullopt);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kNotFound);
  EXPECT_EQ(manager_->list().size(), 1u);
}

TEST_F(VmManagerTest, FailedStartKeepsStateAndSaysWhy) {
  const model::VmId id = create();
  hv_.fail_start = true;
  auto r = manager_->start(id);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("could not open kernel"), std::string::npos);
  EXPECT_EQ(state(id), VmState::kCreated);
  EXPECT_NE(manager_->get(id)->state_reason.find("start failed"), std::string::npos);
}

TEST_F(VmManagerTest, OverlappingOperationsAreRefused) {
  const model::VmId id = create();
  hv_.hold(true);
  std::thread starter([&] { EXPECT_TRUE(manager_->start(id)); });
  while (hv_.starts == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto second = manager_->start(id);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("busy"), std::string::npos);
  EXPECT_EQ(second.error().code, Code::kAborted);  // a conflict worth retrying
  EXPECT_EQ(manager_->remove(id).error().code, Code::kAborted);
  hv_.hold(false);
  starter.join();
  EXPECT_EQ(state(id), VmState::kRunning);
}

TEST_F(VmManagerTest, ExitDuringOperationIsAppliedAfterIt) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->start(id));
  // The process dies while a pause is in flight: the manager must not lose the exit.
  hv_.hold(true);
  std::thread pauser([&] { (void)manager_->pause(id); });
  while (hv_.pauses == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  hv_.exit(id.text(), false, "qemu exited with status 1");
  EXPECT_EQ(state(id), VmState::kRunning);  // held back while the pause runs
  hv_.hold(false);
  pauser.join();
  EXPECT_EQ(state(id), VmState::kCrashed);
  EXPECT_EQ(manager_->get(id)->state_reason, "qemu exited with status 1");
}

TEST_F(VmManagerTest, RestartAdoptsLiveAndReportsGone) {
  model::VmId live = create(), gone = create(), asked = create(), idle = create();
  ASSERT_TRUE(manager_->start(live));
  ASSERT_TRUE(manager_->start(gone));
  ASSERT_TRUE(manager_->start(asked));
  ASSERT_TRUE(manager_->shutdown(asked));
  hv_.alive_after_restart = {manager_->get(live)->pid};
  reopen();
  EXPECT_EQ(state(live), VmState::kRunning);
  EXPECT_EQ(manager_->get(live)->pid, 1000);
  EXPECT_EQ(state(gone), VmState::kCrashed);
  EXPECT_NE(manager_->get(gone)->state_reason.find("while feosd was not running"), std::string::npos);
  EXPECT_EQ(state(asked), VmState::kStopped);
  EXPECT_EQ(state(idle), VmState::kCreated);
  // The adopted VM is fully usable.
  ASSERT_TRUE(manager_->shutdown(live));
  hv_.exit(live.text(), true, "guest powered off");
  EXPECT_EQ(state(live), VmState::kStopped);
}

TEST_F(VmManagerTest, AdoptedPausedStateIsTakenFromHypervisor) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->start(id));
  hv_.alive_after_restart = {manager_->get(id)->pid};
  hv_.adopted_state = vmm::RunState::kPaused;
  reopen();
  EXPECT_EQ(state(id), VmState::kPaused);
}

// --- ids are compared canonically (issue 17, item 4) ---

TEST_F(VmManagerTest, AnIdInUpperCaseNamesTheSameVm) {
  const model::VmId upper = test::vm_id("123E4567-E89B-12D3-A456-426614174000");
  const model::VmId lower = test::vm_id("123e4567-e89b-12d3-a456-426614174000");
  auto created = manager_->create(spec(), upper);
  ASSERT_TRUE(created) << created.error().to_string();
  EXPECT_EQ(*created, lower);  // stored and reported in lower case
  auto again = manager_->create(spec(), lower);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kAlreadyExists);
  EXPECT_EQ(manager_->create(spec(), test::vm_id("123e4567-E89B-12d3-a456-426614174000")).error().code, Code::kAlreadyExists);
  ASSERT_TRUE(manager_->get(upper));
  EXPECT_EQ(manager_->get(upper)->id, lower.text());
  ASSERT_EQ(manager_->list().size(), 1u);
  EXPECT_EQ(manager_->list()[0].id, lower.text());
  ASSERT_EQ(wait_created(*manager_, upper), VmState::kCreated);
  ASSERT_TRUE(manager_->start(upper));
  EXPECT_EQ(manager_->resolve_id(upper), lower);
  store::EventFilter filter;
  filter.vm_id = manager_->resolve_id(upper)->text();
  auto events = manager_->history(filter);
  ASSERT_TRUE(events);
  EXPECT_FALSE(events->empty());
  ASSERT_TRUE(manager_->remove(test::vm_id("123e4567-e89b-12d3-A456-426614174000")));
  EXPECT_TRUE(manager_->list().empty());
}

// --- crash-safe start (issue 17, item 2) ---

TEST_F(VmManagerTest, StartRecordsItsIntentBeforeTheHypervisorRuns) {
  const model::VmId id = create();
  hv_.hold(true);
  std::thread starter([&] { EXPECT_TRUE(manager_->start(id)); });
  while (hv_.starts == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // What a daemon killed now would find on disk, read through a second connection.
  auto other = store::Database::open((dir_ / "feosd.db").string());
  ASSERT_TRUE(other) << other.error().to_string();
  auto stored = (*other)->vms().get(id.text());
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->state, VmState::kCreated);
  EXPECT_EQ(stored->state_reason, "starting");
  hv_.hold(false);
  starter.join();
  EXPECT_EQ(state(id), VmState::kRunning);
}

TEST_F(VmManagerTest, ALiveProcessOfAVmRecordedAsCreatedIsAdopted) {
  // The daemon died after qemu ran the guest but before it recorded "running".
  const model::VmId id = create();
  ASSERT_TRUE(db_->vms().update_state(id.text(), VmState::kCreated, "starting", 0, 1));
  hv_.found = {{id.text(), 4242}};
  hv_.alive_after_restart = {4242};
  reopen();
  EXPECT_EQ(state(id), VmState::kRunning);
  EXPECT_EQ(manager_->get(id)->pid, 4242);
  EXPECT_EQ(manager_->get(id)->state_reason, "adopted after a feosd restart");
  // Never a second process for it: start is refused by the state table now.
  EXPECT_EQ(manager_->start(id).error().code, Code::kFailedPrecondition);
  EXPECT_EQ(hv_.starts, 0);
}

TEST_F(VmManagerTest, AProcessWhoseStartWasCutShortIsStoppedAndTheVmKeepsItsState) {
  const model::VmId id = create();
  ASSERT_TRUE(db_->vms().update_state(id.text(), VmState::kCreated, "starting", 0, 1));
  hv_.found = {{id.text(), 4242}};
  hv_.alive_after_restart = {4242};
  hv_.adopted_state = vmm::RunState::kNotStarted;
  reopen();
  EXPECT_EQ(hv_.stops, 1);
  EXPECT_FALSE(hv_.running(id.text()));
  EXPECT_EQ(state(id), VmState::kCreated);
  EXPECT_EQ(manager_->get(id)->state_reason,
            "start interrupted by a feosd restart; its qemu (pid 4242) was stopped");
  ASSERT_TRUE(manager_->start(id));  // exactly one process again
  EXPECT_EQ(state(id), VmState::kRunning);
}

TEST_F(VmManagerTest, AStartCutShortBeforeAnythingRanSaysSo) {
  const model::VmId id = create();
  ASSERT_TRUE(db_->vms().update_state(id.text(), VmState::kStopped, "starting", 0, 1));
  reopen();
  EXPECT_EQ(state(id), VmState::kStopped);
  EXPECT_EQ(manager_->get(id)->state_reason, "start interrupted by a feosd restart");
}

TEST_F(VmManagerTest, AFoundProcessThatCannotBeAdoptedIsKilled) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->start(id));
  int pid = manager_->get(id)->pid;
  hv_.found = {{id.text(), pid}};
  hv_.unreachable = {pid};  // alive, but it never answers on its control socket
  reopen();
  EXPECT_EQ(hv_.adoptions, 0);
  ASSERT_EQ(hv_.killed.size(), 1u);
  EXPECT_EQ(hv_.killed[0].vm_id, id.text());
  EXPECT_EQ(hv_.killed[0].pid, pid);
  EXPECT_EQ(state(id), VmState::kCrashed);
  EXPECT_EQ(manager_->get(id)->state_reason,
            "its qemu (pid " + std::to_string(pid) +
                ") could not be attached after a feosd restart (process " + std::to_string(pid) +
                ": QMP timed out) and was stopped");
}

// --- a database that forgets (issue 17, item 3) ---

TEST_F(VmManagerTest, RuntimeDirectoriesTheDatabaseDoesNotKnowStopRecovery) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->start(id));
  // The database is lost: a fresh file, while the VM's runtime dir and qemu are still there.
  manager_.reset();
  db_.reset();
  std::filesystem::remove(dir_ / "feosd.db");
  std::filesystem::remove(dir_ / "feosd.db-wal");
  std::filesystem::remove(dir_ / "feosd.db-shm");
  hv_.found = {{id.text(), 1000}};
  auto refused = reopen_with({});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_NE(refused.error().message.find("1 VM(s) in " + (dir_ / "vms").string() + " are unknown to the database"),
            std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("'" + id.text() + "': runtime directory " + (dir_ / "vms" / id.text()).string() +
                                         ", live qemu pid 1000"),
            std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("--discard-unknown-vms"), std::string::npos);
  EXPECT_TRUE(hv_.killed.empty());  // nothing touched without the operator's word
  EXPECT_TRUE(std::filesystem::exists(dir_ / "vms" / id.text()));

  ASSERT_TRUE(reopen_with({.discard_unknown_vms = true}));
  ASSERT_EQ(hv_.killed.size(), 1u);
  EXPECT_EQ(hv_.killed[0].pid, 1000);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "vms" / id.text()));
  int set_aside = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_ / "vms.discarded"))
    set_aside += entry.path().filename().string().rfind(id.text() + "-", 0) == 0;
  EXPECT_EQ(set_aside, 1);
  EXPECT_TRUE(manager_->list().empty());
  hv_.found.clear();
  reopen();  // and from now on the state dir is consistent
}

// --- limits (issue 17, item 6) ---

TEST_F(VmManagerTest, CreatesPastTheLimitsAreResourceExhausted) {
  ASSERT_TRUE(reopen_with({}, VmLimits{.max_vms = 2, .max_total_bytes = 64 * 1024}));
  model::VmId a = create(), b = create();
  auto third = manager_->create(spec(), std::nullopt);
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code, Code::kResourceExhausted);
  EXPECT_NE(third.error().message.find("feosd holds 2 VMs, its limit"), std::string::npos) << third.error().message;
  ASSERT_TRUE(manager_->remove(a));
  auto big = spec();
  big.ignition = std::string(63 * 1024, 'x');
  auto too_big = manager_->create(big, std::nullopt);
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().code, Code::kResourceExhausted);
  EXPECT_NE(too_big.error().message.find("over feosd's limit of 64.0 KiB"), std::string::npos) << too_big.error().message;
  EXPECT_EQ(manager_->list().size(), 1u);  // nothing recorded
  EXPECT_TRUE(manager_->create(spec(), std::nullopt));
}

TEST_F(VmManagerTest, StateReasonsAreBoundedAndStayUtf8) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->start(id));
  std::string reason(2000, 'a');
  reason.replace(kMaxReasonBytes - 4, 3, "\xe2\x82\xac");  // a euro sign across the cut
  hv_.exit(id.text(), false, reason);
  std::string stored = manager_->get(id)->state_reason;
  EXPECT_LE(stored.size(), kMaxReasonBytes);
  EXPECT_EQ(stored.substr(stored.size() - 3), "...");
  EXPECT_EQ(stored.find('\xe2'), std::string::npos);  // cut before the character, not inside it
  reopen();  // and the store takes it back
  EXPECT_EQ(manager_->get(id)->state_reason, stored);
}

TEST_F(VmManagerTest, OfTwoLiveProcessesOfOneVmOneIsAdoptedAndTheOtherStopped) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->start(id));
  int recorded = manager_->get(id)->pid;
  hv_.found = {{id.text(), 5555}, {id.text(), recorded}};  // a qemu doubled by an older feosd
  hv_.alive_after_restart = {recorded, 5555};
  reopen();
  EXPECT_EQ(state(id), VmState::kRunning);
  EXPECT_EQ(manager_->get(id)->pid, recorded);  // the recorded one is the VM's
  ASSERT_EQ(hv_.killed.size(), 1u);
  EXPECT_EQ(hv_.killed[0].pid, 5555);
}

TEST_F(VmManagerTest, AVmOfAnOlderFeosdUnderAnUpperCaseIdIsFoundAndItsDirectoryRenamed) {
  // As an older feosd left it: the record migrated to lower case, the runtime directory and the
  // live process still under the client's spelling.
  const model::VmId lower = test::vm_id("123e4567-e89b-12d3-a456-426614174000");
  const std::string upper = "123E4567-E89B-12D3-A456-426614174000";  // as the directory is named
  ASSERT_TRUE(manager_->create(spec(), lower));
  ASSERT_EQ(wait_created(*manager_, lower), VmState::kCreated);
  ASSERT_TRUE(db_->vms().update_state(lower.text(), VmState::kRunning, "started", 4242, 1));
  std::filesystem::create_directories(dir_ / "vms" / upper);
  std::ofstream(dir_ / "vms" / upper / "console.log") << "guest output";
  hv_.found = {{upper, 4242}};
  hv_.alive_after_restart = {4242};
  reopen();  // not refused: the directory and the process are the VM's
  EXPECT_EQ(state(lower), VmState::kRunning);
  EXPECT_EQ(manager_->get(lower)->pid, 4242);
  EXPECT_TRUE(hv_.killed.empty());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "vms" / upper));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "vms" / lower.text() / "console.log"));
}

TEST_F(VmManagerTest, DeleteLeavesNoRuntimeDirectoryBehind) {
  const model::VmId id = create();
  ASSERT_TRUE(manager_->start(id));
  ASSERT_TRUE(std::filesystem::exists(dir_ / "vms" / id.text()));
  ASSERT_TRUE(manager_->remove(id));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "vms" / id.text()));
  reopen();  // nothing unknown is left for the next daemon
}

// A slow start's progress (the hypervisor's: preallocation, memory ready) becomes events of the
// VM, stored and published, between the start's intent and its running state.
TEST_F(VmManagerTest, AStartsProgressBecomesEventsOfTheVm) {
  const model::VmId id = create();
  hv_.start_progress = {"preallocating 1 GiB (2 MiB pages, 2 threads)", "guest memory ready after 0.4 s"};
  std::vector<std::string> live;
  int token = bus_.subscribe([&](const model::VmEvent& e) { live.push_back(e.component_id + ": " + e.reason); });
  ASSERT_TRUE(manager_->start(id));
  bus_.unsubscribe(token);
  EXPECT_EQ(live, (std::vector<std::string>{"memory: preallocating 1 GiB (2 MiB pages, 2 threads)",
                                            "memory: guest memory ready after 0.4 s", "vm: started"}));
  store::EventFilter filter;
  filter.vm_id = id.text();
  filter.component_id = "memory";
  auto stored = manager_->history(filter);
  ASSERT_TRUE(stored) << stored.error().to_string();
  ASSERT_EQ(stored->size(), 2u);
  EXPECT_EQ((*stored)[1].reason, "guest memory ready after 0.4 s");
  EXPECT_EQ((*stored)[1].state, VmState::kCreated);  // not running yet when it was said
}

}  // namespace
}  // namespace feos::core
