// reconcile() after a daemon restart: which rows stay, which devices go back, what is reported.
// (A crash at every write of prepare and release is part of fault_matrix_test.cc.)
#include <gtest/gtest.h>

#include "hostdev_fixture.h"

namespace feos::hostdev {
namespace {

using store::AssignmentStep;
using test::Fault;
using test::Op;
using testing::gpus_at;

class ReconcileTest : public testing::HostdevTest {};

// After a restart: the running VM keeps its devices, the others' go back.
TEST_F(ReconcileTest, KeepsDevicesOfRunningVmsOnly) {
  start(test::without_nvswitches(test::hgx_h100_host()));
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
  start(test::without_nvswitches(test::hgx_h100_host()));
  ASSERT_TRUE(host_->prepare("vm-1", gpus_at({"0000:18:00.0", "0000:2a:00.0"})));
  ASSERT_TRUE(db_->ledger().set_step("vm-1", test::pci_address("0000:18:00.0"), AssignmentStep::kReleasing, 1));
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
  test::HostBuilder b = test::without_nvswitches(test::hgx_h100_host());
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
  start(test::without_nvswitches(test::hgx_h100_host()));
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
