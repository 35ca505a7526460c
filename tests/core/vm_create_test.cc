// CreateVm in two phases (vm_create.cc) with GPUs on the fake kernel: the answer comes with the VM
// creating and its GPUs claimed; binding them follows in the background. A slow write (a delay
// fault) holds the background part so the tests see it in progress.
#include <cerrno>
#include <chrono>
#include <thread>

#include "gpu_fixture.h"

namespace feos::core {
namespace {

using namespace std::chrono_literals;

class VmCreateTest : public VmManagerGpuTest {
 protected:
  Result<model::VmId> create_no_wait(const std::string& address) {
    model::VmSpec spec;
    spec.boot.kernel = "/boot/vmlinuz";
    spec.gpus.push_back(model::GpuSpec{.address = test::pci_address(address)});
    return manager_->create(spec, std::nullopt);
  }
};

TEST_F(VmCreateTest, AnswersCreatingWithTheGpuClaimedThenCreatedWhenBound) {
  kernel_->inject({.op = test::Op::kDriversProbe, .fault = test::Fault::delay(400ms)});
  auto id = create_no_wait("0000:18:00.0");
  ASSERT_TRUE(id) << id.error().to_string();
  EXPECT_EQ(state(*id), VmState::kCreating);
  // Recorded creating (a restart finds it) with its GPU held in the ledger, not yet bound.
  auto stored = db_->vms().get(id->text());
  ASSERT_TRUE(stored) << stored.error().to_string();
  EXPECT_EQ(stored->state, VmState::kCreating);
  EXPECT_FALSE(db_->ledger().list(id->text())->empty());
  // Requests other than delete get the table's answer in FeOS's words, not "busy".
  auto start = manager_->start(*id);
  ASSERT_FALSE(start);
  EXPECT_EQ(start.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(start.error().message, "vm " + id->text() +
                                       ": Invalid VM state for operation: Cannot start VM in Creating state. "
                                       "Must be in Created or Stopped.");
  EXPECT_EQ(manager_->pause(*id).error().code, Code::kFailedPrecondition);
  // Another VM asking for the same GPU is refused at once: the claim holds it.
  auto other = create_no_wait("0000:18:00.0");
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, Code::kFailedPrecondition);

  EXPECT_EQ(wait_created(*manager_, *id), VmState::kCreated);
  EXPECT_EQ(driver("0000:18:00.0"), "vfio-pci");
  EXPECT_EQ(last_events(*id, 4), (std::vector<std::string>{"vm creating: creating",
                                                           "gpus creating: binding GPUs to vfio-pci: 0000:18:00.0",
                                                           "gpus creating: GPUs bound to vfio-pci",
                                                           "vm created: created"}));
  ASSERT_TRUE(manager_->start(*id));
  ASSERT_TRUE(manager_->remove(*id));
  EXPECT_EQ(kernel_->snapshot(), before_);
}

TEST_F(VmCreateTest, AFailedBindCrashesTheVmWithTheReasonAndReturnsItsGpus) {
  kernel_->inject({.op = test::Op::kDriversProbe, .bdf = "0000:18:00.0", .fault = test::Fault::error(EIO)});
  auto id = create_no_wait("0000:18:00.0");
  ASSERT_TRUE(id) << id.error().to_string();
  EXPECT_EQ(wait_created(*manager_, *id), VmState::kCrashed);
  const std::string reason = manager_->get(*id)->state_reason;
  EXPECT_TRUE(reason.starts_with("create failed: GPUs not bound to vfio-pci: ")) << reason;
  EXPECT_NE(reason.find("0000:18:00.0"), std::string::npos) << reason;
  EXPECT_EQ(kernel_->snapshot(), before_);
  EXPECT_TRUE(db_->ledger().list(std::nullopt)->empty());
  // The GPUs are back before the VM is crashed: a client that sees crashed may reuse them.
  auto events = last_events(*id, 2);
  EXPECT_EQ(events.at(0), "gpus creating: GPUs returned to the host: 0000:18:00.0");
  EXPECT_EQ(events.at(1), "vm crashed: " + reason);
  // Crashed is final: the VM is deleted to be replaced.
  EXPECT_EQ(manager_->start(*id).error().code, Code::kFailedPrecondition);
  ASSERT_TRUE(manager_->remove(*id));
  EXPECT_EQ(hv_.starts, 0);
}

TEST_F(VmCreateTest, DeleteWhileCreatingStopsTheBindAndRollsBack) {
  kernel_->inject({.op = test::Op::kDriversProbe, .fault = test::Fault::delay(500ms)});
  auto id = create_no_wait("0000:18:00.0");
  ASSERT_TRUE(id) << id.error().to_string();
  ASSERT_EQ(state(*id), VmState::kCreating);
  ASSERT_TRUE(manager_->remove(*id));
  EXPECT_EQ(manager_->get(*id).error().code, Code::kNotFound);
  EXPECT_FALSE(db_->vms().get(id->text()));
  EXPECT_TRUE(db_->ledger().list(std::nullopt)->empty());
  EXPECT_EQ(kernel_->snapshot(), before_);
  // The GPU is free for the next VM.
  kernel_->clear_faults();
  auto next = create({"0000:18:00.0"});
  ASSERT_TRUE(next) << next.error().to_string();
  EXPECT_EQ(state(*next), VmState::kCreated);
}

// Decided: a create that a daemon restart cut short is failed, not resumed (vm_recovery.cc).
TEST_F(VmCreateTest, ARestartWhileCreatingFailsTheVmAndReturnsItsGpus) {
  kernel_->inject({.op = test::Op::kDriversProbe, .fault = test::Fault::delay(300ms)});
  auto id = create_no_wait("0000:18:00.0");
  ASSERT_TRUE(id) << id.error().to_string();
  reopen();  // the manager's end stops the create; the VM stays recorded creating
  EXPECT_EQ(state(*id), VmState::kCrashed);
  EXPECT_EQ(manager_->get(*id)->state_reason,
            "create failed: feosd restarted before the VM was created (image pull or GPU binding cut short); "
            "delete it and create it again");
  EXPECT_EQ(kernel_->snapshot(), before_);
  EXPECT_TRUE(db_->ledger().list(std::nullopt)->empty());
  EXPECT_EQ(manager_->start(*id).error().code, Code::kFailedPrecondition);
  ASSERT_TRUE(manager_->remove(*id));
}

}  // namespace
}  // namespace feos::core
