// Crash safety: the daemon "dies" at every sysfs write of a prepare or release (the fake kernel's
// crash fault: that write and all later ones never reach the kernel), HostDevices and the database
// are rebuilt on the same kernel and SQLite file, and reconcile() leaves nothing stranded.
#include <gtest/gtest.h>

#include "hostdev_fixture.h"

namespace feos::hostdev {
namespace {

using store::AssignmentStep;
using test::Fault;
using test::Op;
using testing::gpus_at;

struct CrashCase {
  const char* host;  // "consumer" or "hgx-h100"
  std::vector<std::string> gpus;
  size_t writes;  // sysfs writes of a successful prepare (and of a release)
};

const CrashCase kConsumer{"consumer", {"0000:01:00.0"}, 12};          // 4 functions x 3 writes
const CrashCase kTwoH100{"hgx-h100", {"0000:18:00.0", "0000:db:00.0"}, 6};  // 2 GPUs x 3 writes

class CrashTest : public testing::HostdevTest,
                  public ::testing::WithParamInterface<std::tuple<CrashCase, size_t>> {
 protected:
  void start_case(const CrashCase& c) {
    auto builder = test::host_by_name(c.host);
    ASSERT_TRUE(builder);
    start(*builder);
  }
  // Restart after the crash and reconcile with no VM keeping devices.
  void restart_and_reconcile(const std::string& where) {
    restart();  // HostDevices and the database connection are gone and rebuilt
    kernel_->revive();
    auto report = host_->reconcile({});
    ASSERT_TRUE(report) << report.error().to_string();
    EXPECT_TRUE(report->failed.empty()) << where << ": " << report->failed.front();
    EXPECT_TRUE(report->kept.empty()) << where;
    expect_host_as_before(where);
    // Everything can be prepared again.
    ASSERT_TRUE(host_->prepare("vm-again", gpus_at(std::get<0>(GetParam()).gpus))) << where;
    ASSERT_TRUE(host_->release("vm-again")) << where;
    expect_host_as_before(where + ", after another cycle");
  }
};

TEST_P(CrashTest, CrashDuringPrepare) {
  const auto& [c, k] = GetParam();
  if (k >= c.writes) GTEST_SKIP() << "no such write";
  start_case(c);
  kernel_->inject({.op = Op::kAny, .skip = static_cast<int>(k), .fault = Fault::crash()});
  auto prepared = host_->prepare("vm-1", gpus_at(c.gpus));
  ASSERT_FALSE(prepared);
  EXPECT_EQ(prepared.error().code, Code::kUnavailable) << prepared.error().to_string();
  EXPECT_TRUE(kernel_->crashed());
  EXPECT_EQ(kernel_->write_count(), k) << "writes that reached the kernel before the crash";
  restart_and_reconcile(std::string(c.host) + " prepare, crash at write " + std::to_string(k));
}

TEST_P(CrashTest, CrashDuringRelease) {
  const auto& [c, k] = GetParam();
  if (k >= c.writes) GTEST_SKIP() << "no such write";
  start_case(c);
  ASSERT_TRUE(host_->prepare("vm-1", gpus_at(c.gpus)));
  kernel_->clear_writes();
  kernel_->inject({.op = Op::kAny, .skip = static_cast<int>(k), .fault = Fault::crash()});
  auto released = host_->release("vm-1");
  ASSERT_FALSE(released);
  EXPECT_EQ(released.error().code, Code::kUnavailable) << released.error().to_string();
  restart_and_reconcile(std::string(c.host) + " release, crash at write " + std::to_string(k));
}

INSTANTIATE_TEST_SUITE_P(EveryWrite, CrashTest,
                         ::testing::Combine(::testing::Values(kConsumer, kTwoH100),
                                            ::testing::Range<size_t>(0, 12)),
                         [](const ::testing::TestParamInfo<std::tuple<CrashCase, size_t>>& info) {
                           std::string host = std::get<0>(info.param).host;
                           for (char& ch : host) {
                             if (ch == '-') ch = '_';
                           }
                           return host + "_write" + std::to_string(std::get<1>(info.param));
                         });

// The counts above are what a successful prepare and release write.
TEST(CrashCaseTest, WriteCountsMatch) {
  for (const CrashCase& c : {kConsumer, kTwoH100}) {
    class Probe : public testing::HostdevTest {
     public:
      void TestBody() override {}
      size_t run(const CrashCase& c, bool release) {
        start(*test::host_by_name(c.host));
        EXPECT_TRUE(host_->prepare("vm-1", gpus_at(c.gpus)));
        if (!release) return kernel_->write_count();
        kernel_->clear_writes();
        EXPECT_TRUE(host_->release("vm-1"));
        return kernel_->write_count();
      }
    };
    EXPECT_EQ(Probe().run(c, false), c.writes) << c.host;
    EXPECT_EQ(Probe().run(c, true), c.writes) << c.host;
  }
}

class ReconcileTest : public testing::HostdevTest {};

// After a restart: the running VM keeps its devices, the others' go back.
TEST_F(ReconcileTest, KeepsDevicesOfRunningVmsOnly) {
  start(test::hgx_h100_host());
  ASSERT_TRUE(host_->prepare("vm-running", gpus_at({"0000:18:00.0", "0000:2a:00.0"})));
  ASSERT_TRUE(host_->prepare("vm-stopped", gpus_at({"0000:3a:00.0"})));
  ASSERT_TRUE(host_->prepare("vm-unknown", gpus_at({"0000:5d:00.0"})));
  restart();
  auto report = host_->reconcile({"vm-running", "vm-not-holding-anything"});
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_EQ(report->kept, (std::vector<std::string>{"0000:18:00.0 (vm vm-running)",
                                                     "0000:2a:00.0 (vm vm-running)"}));
  ASSERT_EQ(report->released.size(), 2u);
  EXPECT_EQ(report->released[0],
            "0000:3a:00.0 (vm vm-stopped): returned to nvidia (was at step bound)");
  EXPECT_EQ(report->released[1],
            "0000:5d:00.0 (vm vm-unknown): returned to nvidia (was at step bound)");
  EXPECT_TRUE(report->failed.empty());
  auto now = kernel_->snapshot();
  EXPECT_EQ(now.at("0000:18:00.0").driver, "vfio-pci");
  EXPECT_EQ(now.at("0000:2a:00.0").driver, "vfio-pci");
  EXPECT_EQ(now.at("0000:3a:00.0"), before_.at("0000:3a:00.0"));
  EXPECT_EQ(now.at("0000:5d:00.0"), before_.at("0000:5d:00.0"));
  auto rows = ledger();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].vm_id, "vm-running");
  // Reconciling again changes nothing.
  const size_t writes = kernel_->write_count();
  auto again = host_->reconcile({"vm-running"});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->kept.size(), 2u);
  EXPECT_TRUE(again->released.empty());
  EXPECT_EQ(kernel_->write_count(), writes);
  ASSERT_TRUE(host_->release("vm-running"));
  expect_host_as_before("after release");
}

// A kept VM's row whose device is no longer on vfio-pci is released (the VM cannot be using it),
// and a kept VM's row left at another step is set back to bound.
TEST_F(ReconcileTest, KeptVmRowsFollowTheKernel) {
  start(test::hgx_h100_host());
  ASSERT_TRUE(host_->prepare("vm-1", gpus_at({"0000:18:00.0", "0000:2a:00.0"})));
  ASSERT_TRUE(db_->set_device_step("vm-1", "0000:18:00.0", AssignmentStep::kReleasing, 1));
  // Someone took 2a:00.0 off vfio-pci behind our back.
  ASSERT_TRUE(kernel_->write_file(paths().pci_driver("vfio-pci") + "/unbind", "0000:2a:00.0"));
  restart();
  auto report = host_->reconcile({"vm-1"});
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_EQ(report->kept, std::vector<std::string>{"0000:18:00.0 (vm vm-1)"});
  ASSERT_EQ(report->released.size(), 1u);
  EXPECT_EQ(report->released[0].substr(0, 12), "0000:2a:00.0");
  auto rows = ledger();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].step, AssignmentStep::kBound);
  EXPECT_EQ(kernel_->snapshot().at("0000:2a:00.0"), before_.at("0000:2a:00.0"));
}

// Devices on vfio-pci that nobody recorded (the operator bound them) are reported, not touched.
TEST_F(ReconcileTest, UnownedVfioDevicesAreReportedOnly) {
  test::HostBuilder b = test::hgx_h100_host();
  b.function("0000:19:00.0").bound_to("vfio-pci").override_driver("vfio-pci");
  start(b);
  auto report = host_->reconcile({});
  ASSERT_TRUE(report);
  EXPECT_EQ(report->unowned_vfio, std::vector<std::string>{"0000:19:00.0"});
  EXPECT_EQ(kernel_->write_count(), 0u);
  EXPECT_EQ(kernel_->snapshot(), before_);
}

// A device that cannot be returned during reconcile is listed; its row stays for the next try.
TEST_F(ReconcileTest, FailuresAreReportedAndRetried) {
  start(test::hgx_h100_host());
  ASSERT_TRUE(host_->prepare("vm-1", gpus_at({"0000:18:00.0", "0000:2a:00.0"})));
  restart();
  auto fault = kernel_->inject(
      {.op = Op::kUnbind, .bdf = "0000:2a:00.0", .driver = "vfio-pci", .fault = Fault::busy(-1)});
  auto report = host_->reconcile({});
  ASSERT_TRUE(report);
  ASSERT_EQ(report->failed.size(), 1u);
  EXPECT_NE(report->failed[0].find("vm vm-1: 0000:2a:00.0: unbind from vfio-pci"),
            std::string::npos)
      << report->failed[0];
  ASSERT_EQ(report->released.size(), 1u);
  EXPECT_EQ(ledger().size(), 1u);
  kernel_->remove_fault(fault);
  report = host_->reconcile({});
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->failed.empty());
  expect_host_as_before("after the second reconcile");
}

}  // namespace
}  // namespace feos::hostdev
