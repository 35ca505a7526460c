// prepare() in two calls (create's two phases): claim() holds the devices in the ledger without a
// sysfs write; bind() binds what was claimed and stops between devices when cancelled; what it
// left goes back with release().
#include <atomic>
#include <chrono>
#include <thread>

#include "hostdev_fixture.h"

namespace feos::hostdev {
namespace {

using namespace std::chrono_literals;
using store::AssignmentStep;
using testing::gpus_at;

class ClaimBindTest : public testing::HostdevTest {};

TEST_F(ClaimBindTest, ClaimWritesNothingToSysfsAndBindBindsWhatWasClaimed) {
  start(test::consumer_gpu_host());
  auto claimed = host_->claim("vm-1", gpus_at({"0000:01:00.0"}));
  ASSERT_TRUE(claimed) << claimed.error().to_string();
  ASSERT_EQ((*claimed)[0].functions.size(), 4u);
  EXPECT_EQ(kernel_->write_count(), 0u);
  EXPECT_EQ(kernel_->snapshot(), before_);
  auto rows = ledger();
  ASSERT_EQ(rows.size(), 4u);
  for (const auto& row : rows) EXPECT_EQ(row.step, AssignmentStep::kClaimed);
  // The claim holds the card: another VM is refused, naming the holder.
  auto other = host_->claim("vm-2", gpus_at({"0000:01:00.0"}));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, Code::kFailedPrecondition);
  EXPECT_NE(other.error().message.find("vm-1"), std::string::npos) << other.error().message;

  ASSERT_TRUE(host_->bind("vm-1"));
  for (const char* bdf : {"0000:01:00.0", "0000:01:00.1", "0000:01:00.2", "0000:01:00.3"})
    EXPECT_EQ(kernel_->snapshot().at(bdf), (test::Binding{"vfio-pci", "vfio-pci"})) << bdf;
  for (const auto& row : ledger()) EXPECT_EQ(row.step, AssignmentStep::kBound);
  // A claim is bound once.
  EXPECT_EQ(host_->bind("vm-1").error().code, Code::kFailedPrecondition);
  ASSERT_TRUE(host_->release("vm-1"));
  expect_host_as_before("after release");
}

TEST_F(ClaimBindTest, ReleaseGivesAClaimBackUnbound) {
  start(test::consumer_gpu_host());
  ASSERT_TRUE(host_->claim("vm-1", gpus_at({"0000:01:00.0"})));
  ASSERT_TRUE(host_->release("vm-1"));
  expect_host_as_before("after release of a claim");
  EXPECT_EQ(host_->bind("vm-1").error().code, Code::kFailedPrecondition);  // nothing left to bind
}

TEST_F(ClaimBindTest, ACancelledBindStopsBetweenDevicesAndReleaseReturnsWhatItBound) {
  start(test::consumer_gpu_host());
  ASSERT_TRUE(host_->claim("vm-1", gpus_at({"0000:01:00.0"})));
  // The first function's probe is slow; the cancel comes meanwhile.
  kernel_->inject({.op = test::Op::kDriversProbe, .bdf = "0000:01:00.0", .fault = test::Fault::delay(300ms)});
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(100ms);
    cancel = true;
  });
  Status bound = host_->bind("vm-1", &cancel);
  canceller.join();
  ASSERT_FALSE(bound);
  EXPECT_EQ(bound.error().code, Code::kCancelled) << bound.error().to_string();
  EXPECT_NE(bound.error().message.find("0000:01:00.1: not bound: cancelled"), std::string::npos)
      << bound.error().message;
  // The other three functions were never written to.
  for (const auto& write : kernel_->writes()) {
    if (!write.bdf.empty()) {
      EXPECT_EQ(write.bdf, "0000:01:00.0") << write.path;
    }
  }
  // The devices stay the VM's until release(): the caller stops showing them first.
  EXPECT_EQ(ledger().size(), 4u);
  EXPECT_EQ(kernel_->snapshot().at("0000:01:00.0").driver, "vfio-pci");
  ASSERT_TRUE(host_->release("vm-1"));
  expect_host_as_before("after a cancelled bind and the release");
}

}  // namespace
}  // namespace feos::hostdev
