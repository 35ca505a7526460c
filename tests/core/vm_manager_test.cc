#include "core/vm_manager.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "fake_hypervisor.h"

namespace feos::core {
namespace {

using model::VmState;

class VmManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("vm_manager_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "vms");
    reopen();
  }
  void TearDown() override {
    manager_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Simulates a daemon restart: a new store connection and manager on the same file.
  void reopen() {
    manager_.reset();
    db_.reset();
    auto db = store::Database::open((dir_ / "feosd.db").string());
    ASSERT_TRUE(db) << db.error().to_string();
    db_ = std::move(*db);
    manager_ = std::make_unique<VmManager>(*db_, hv_, nullptr, bus_, (dir_ / "vms").string());
    ASSERT_TRUE(manager_->recover());
  }
  model::VmSpec spec() {
    model::VmSpec s;
    s.boot.kernel = "/boot/vmlinuz";
    return s;
  }
  std::string create() {
    auto id = manager_->create(spec(), std::nullopt);
    EXPECT_TRUE(id) << id.error().to_string();
    return *id;
  }
  VmState state(const std::string& id) { return manager_->get(id)->state; }
  std::vector<VmState> event_states(const std::string& id) {
    store::EventFilter f;
    f.vm_id = id;
    auto events = manager_->history(f);
    EXPECT_TRUE(events) << events.error().to_string();
    std::vector<VmState> out;
    for (const auto& e : *events) out.push_back(e.state);
    return out;
  }

  std::filesystem::path dir_;
  FakeHypervisor hv_;
  EventBus bus_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<VmManager> manager_;
};

TEST_F(VmManagerTest, LifecycleWithEvents) {
  std::vector<model::VmEvent> live;
  int token = bus_.subscribe([&](const model::VmEvent& e) { live.push_back(e); });
  std::string id = create();
  EXPECT_EQ(state(id), VmState::kCreated);
  ASSERT_TRUE(manager_->start(id));
  EXPECT_EQ(state(id), VmState::kRunning);
  EXPECT_EQ(manager_->get(id)->pid, 1000);
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "vms" / id));
  ASSERT_TRUE(manager_->pause(id));
  EXPECT_EQ(state(id), VmState::kPaused);
  ASSERT_TRUE(manager_->resume(id));
  ASSERT_TRUE(manager_->shutdown(id));
  EXPECT_EQ(hv_.shutdown_requests, 1);
  EXPECT_EQ(state(id), VmState::kRunning);  // until the guest powers off
  hv_.exit(id, true, "guest powered off");
  EXPECT_EQ(state(id), VmState::kStopped);
  EXPECT_EQ(manager_->get(id)->state_reason, "guest powered off");
  EXPECT_EQ(manager_->get(id)->pid, 0);
  EXPECT_EQ(event_states(id), (std::vector<VmState>{VmState::kCreated, VmState::kRunning, VmState::kPaused,
                                                    VmState::kRunning, VmState::kStopped}));
  ASSERT_EQ(live.size(), 5u);
  EXPECT_LT(live[0].id, live[4].id);
  bus_.unsubscribe(token);
  ASSERT_TRUE(manager_->remove(id));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "vms" / id));
  EXPECT_EQ(manager_->get(id).error().code, Code::kNotFound);
}

TEST_F(VmManagerTest, CrashIsReportedWithReason) {
  std::string id = create();
  ASSERT_TRUE(manager_->start(id));
  hv_.exit(id, false, "qemu killed by signal 9 (Killed)");
  EXPECT_EQ(state(id), VmState::kCrashed);
  EXPECT_EQ(manager_->get(id)->state_reason, "qemu killed by signal 9 (Killed)");
  ASSERT_TRUE(manager_->start(id));  // a crashed VM can start again
  EXPECT_EQ(state(id), VmState::kRunning);
}

TEST_F(VmManagerTest, IllegalTransitionsChangeNothing) {
  std::string id = create();
  for (auto result : {manager_->pause(id), manager_->resume(id), manager_->shutdown(id)}) {
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, Code::kFailedPrecondition);
    EXPECT_NE(result.error().message.find(id), std::string::npos);
  }
  EXPECT_EQ(manager_->ping(id).error().code, Code::kFailedPrecondition);
  EXPECT_EQ(state(id), VmState::kCreated);
  EXPECT_EQ(event_states(id).size(), 1u);
  EXPECT_EQ(manager_->start("123e4567-e89b-12d3-a456-426614174000").error().code, Code::kNotFound);
}

TEST_F(VmManagerTest, CreateValidates) {
  auto dup = manager_->create(spec(), "123e4567-e89b-12d3-a456-426614174000");
  ASSERT_TRUE(dup);
  EXPECT_EQ(manager_->create(spec(), *dup).error().code, Code::kAlreadyExists);
  EXPECT_EQ(manager_->create(spec(), "../x").error().code, Code::kInvalidArgument);
  model::VmSpec missing = spec();
  missing.boot.kernel = "/missing";
  auto r = manager_->create(missing, std::nullopt);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kNotFound);
  EXPECT_EQ(manager_->list().size(), 1u);
}

TEST_F(VmManagerTest, FailedStartKeepsStateAndSaysWhy) {
  std::string id = create();
  hv_.fail_start = true;
  auto r = manager_->start(id);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("could not open kernel"), std::string::npos);
  EXPECT_EQ(state(id), VmState::kCreated);
  EXPECT_NE(manager_->get(id)->state_reason.find("start failed"), std::string::npos);
}

TEST_F(VmManagerTest, OverlappingOperationsAreRefused) {
  std::string id = create();
  hv_.hold(true);
  std::thread starter([&] { EXPECT_TRUE(manager_->start(id)); });
  while (hv_.starts == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto second = manager_->start(id);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("busy"), std::string::npos);
  EXPECT_EQ(manager_->remove(id).error().code, Code::kFailedPrecondition);
  hv_.hold(false);
  starter.join();
  EXPECT_EQ(state(id), VmState::kRunning);
}

TEST_F(VmManagerTest, ExitDuringOperationIsAppliedAfterIt) {
  std::string id = create();
  ASSERT_TRUE(manager_->start(id));
  // The process dies while a pause is in flight: the manager must not lose the exit.
  hv_.hold(true);
  std::thread pauser([&] { (void)manager_->pause(id); });
  while (hv_.pauses == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  hv_.exit(id, false, "qemu exited with status 1");
  EXPECT_EQ(state(id), VmState::kRunning);  // held back while the pause runs
  hv_.hold(false);
  pauser.join();
  EXPECT_EQ(state(id), VmState::kCrashed);
  EXPECT_EQ(manager_->get(id)->state_reason, "qemu exited with status 1");
  ASSERT_TRUE(manager_->start(id));
  EXPECT_EQ(state(id), VmState::kRunning);
}

TEST_F(VmManagerTest, RestartAdoptsLiveAndReportsGone) {
  std::string live = create(), gone = create(), asked = create(), idle = create();
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
  hv_.exit(live, true, "guest powered off");
  EXPECT_EQ(state(live), VmState::kStopped);
}

TEST_F(VmManagerTest, AdoptedPausedStateIsTakenFromHypervisor) {
  std::string id = create();
  ASSERT_TRUE(manager_->start(id));
  hv_.alive_after_restart = {manager_->get(id)->pid};
  hv_.adopted_state = VmState::kPaused;
  reopen();
  EXPECT_EQ(state(id), VmState::kPaused);
}

}  // namespace
}  // namespace feos::core
