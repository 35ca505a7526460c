// The fault matrix: at every sysfs write of a prepare and of a release, each fault of
//   EBUSY    the write fails FAILED_PRECONDITION, without effect
//   ENODEV   the write fails NOT_FOUND, without effect
//   timeout  the write hangs past Options::step_timeout, then lands late (it takes effect)
//   crash    the daemon dies at that write (it and every later write never reach the kernel)
// and what must hold afterwards:
//   prepare  fails with the fault's code naming the device; the host is exactly as before: at once
//            for EBUSY/ENODEV, by itself once a hung write returns, after restart + reconcile for
//            a crash; meanwhile every ledger row belongs to the VM and one of its devices.
//   release  fails naming the device (or, where a fallback exists - a refused bind to the original
//            driver is followed by drivers_probe - succeeds); the VM's remaining rows are its own;
//            the host is fully released: by a second release() (what DeleteVm's retry does) for
//            EBUSY/ENODEV, by itself once a hung write returns, after restart + reconcile for a
//            crash.
// Then the same devices are prepared and released once more. No ledger row is ever left behind.
// Hosts: a consumer card (4 functions in one IOMMU group: 12 writes) and two H100s behind their own
// root ports (two groups prepared in parallel: 6 writes).
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "hostdev_fixture.h"

namespace feos::hostdev {
namespace {

using namespace std::chrono_literals;
using test::Fault;
using test::Op;
using testing::gpus_at;

struct HostCase {
  const char* host;  // test::host_by_name()
  std::vector<std::string> gpus;
  std::vector<std::string> devices;  // every function the request takes
  size_t writes;  // sysfs writes of a successful prepare (and of a release)
};

const HostCase kConsumer{"consumer",
                         {"0000:01:00.0"},
                         {"0000:01:00.0", "0000:01:00.1", "0000:01:00.2", "0000:01:00.3"},
                         12};
const HostCase kTwoH100{"two-h100",
                        {"0000:18:00.0", "0000:db:00.0"},
                        {"0000:18:00.0", "0000:db:00.0"},
                        6};

// Two H100s in their own IOMMU groups: the parallel path of prepare on a host small enough to be
// built 72 times quickly (the full HGX host is what the other hostdev tests use).
test::HostBuilder two_h100_host() {
  test::HostBuilder b;
  int group = 0;
  for (int bus : {0x18, 0xdb}) {
    char port[16], gpu[16];
    std::snprintf(port, sizeof port, "0000:%02x:01.0", bus - 1);
    std::snprintf(gpu, sizeof gpu, "0000:%02x:00.0", bus);
    b.bridge(port, 0x8086, 0x352a, static_cast<uint8_t>(bus)).group(group++).link(32, 16);
    b.device(gpu, 0x10de, 0x2330, 0x030200)
        .driver("nvidia")
        .subsystem(0x10de, 0x16c1)
        .group(group++)
        .link(32, 16)
        .bar(0, 16 * test::kMiB, test::BarType::kMem32)
        .bar(1, 128 * test::kGiB, test::BarType::kMem64Prefetch);
  }
  b.module("vfio_pci");
  return b;
}

test::HostBuilder host_for(const HostCase& c) {
  return std::string_view(c.host) == "two-h100" ? two_h100_host() : *test::host_by_name(c.host);
}

enum class FaultKind { kBusy, kNoDevice, kTimeout, kCrash };
constexpr FaultKind kFaults[] = {FaultKind::kBusy, FaultKind::kNoDevice, FaultKind::kTimeout,
                                 FaultKind::kCrash};

const char* fault_name(FaultKind f) {
  switch (f) {
    case FaultKind::kBusy: return "EBUSY";
    case FaultKind::kNoDevice: return "ENODEV";
    case FaultKind::kTimeout: return "timeout";
    case FaultKind::kCrash: return "crash";
  }
  return "?";
}

Code fault_code(FaultKind f) {
  switch (f) {
    case FaultKind::kBusy: return Code::kFailedPrecondition;
    case FaultKind::kNoDevice: return Code::kNotFound;
    case FaultKind::kTimeout: return Code::kDeadlineExceeded;
    case FaultKind::kCrash: return Code::kUnavailable;
  }
  return Code::kOk;
}

Fault make_fault(FaultKind f) {
  switch (f) {
    case FaultKind::kBusy: return Fault::busy(1);
    case FaultKind::kNoDevice: return Fault::no_device(1);
    case FaultKind::kTimeout: return Fault::hang(1);
    case FaultKind::kCrash: return Fault::crash();
  }
  return Fault::busy(1);
}

// One scenario on a fresh host, kernel and ledger. Collects what did not hold instead of failing
// at once, so the matrix can count.
class Scenario : public testing::HostdevTest {
 public:
  void TestBody() override {}

  // Whether the operation succeeded despite the fault (a release's fallback).
  bool absorbed() const { return absorbed_; }

  std::vector<std::string> run(const HostCase& c, bool during_release, size_t k, FaultKind f) {
    Options options = test_options();
    options.step_timeout = 100ms;  // the hung write's deadline
    start(host_for(c), {}, options);
    if (::testing::Test::HasFatalFailure()) return {"could not build the host"};
    if (during_release) {
      if (auto prepared = host_->prepare("vm-1", gpus_at(c.gpus)); !prepared)
        return {"setup prepare failed: " + prepared.error().to_string()};
      kernel_->clear_writes();
    }
    kernel_->inject({.op = Op::kAny, .skip = static_cast<int>(k), .fault = make_fault(f)});

    Status outcome = ok();
    if (during_release) {
      outcome = host_->release("vm-1");
    } else if (auto prepared = host_->prepare("vm-1", gpus_at(c.gpus)); !prepared) {
      outcome = fail(prepared.error());
    }
    if (outcome) {
      absorbed_ = true;
      if (!during_release || f == FaultKind::kCrash) problems_.push_back("succeeded despite the fault");
    } else {
      if (outcome.error().code != fault_code(f))
        problems_.push_back("code " + std::string(code_name(outcome.error().code)) + ", expected " +
                            std::string(code_name(fault_code(f))) + ": " + outcome.error().message);
      if (!names_a_device(c, outcome.error().message))
        problems_.push_back("error names no device: " + outcome.error().message);
    }
    check_rows_are_the_vms(c, "right after the fault");

    switch (f) {
      case FaultKind::kBusy:
      case FaultKind::kNoDevice:
        if (during_release) {
          if (Status again = host_->release("vm-1"); !again)
            problems_.push_back("second release failed: " + again.error().to_string());
        }
        break;
      case FaultKind::kTimeout:
        // The hung write lands late; the device in doubt is returned by itself.
        if (!kernel_->wait_for_hung_writes(1, 2000ms)) problems_.push_back("no write hung");
        kernel_->release_hangs();
        wait_for_empty_ledger(3000ms);
        break;
      case FaultKind::kCrash: {
        restart();
        kernel_->revive();
        auto report = host_->reconcile({});
        if (!report) {
          problems_.push_back("reconcile: " + report.error().to_string());
        } else if (!report->failed.empty()) {
          problems_.push_back("reconcile failed: " + report->failed.front());
        }
        break;
      }
    }
    check_host_as_before("after recovery");
    // The same devices work again.
    if (auto again = host_->prepare("vm-again", gpus_at(c.gpus)); !again)
      problems_.push_back("prepare afterwards: " + again.error().to_string());
    else if (Status released = host_->release("vm-again"); !released)
      problems_.push_back("release afterwards: " + released.error().to_string());
    check_host_as_before("after another cycle");
    return problems_;
  }

 private:
  static bool names_a_device(const HostCase& c, const std::string& message) {
    for (const auto& bdf : c.devices) {
      if (message.find(bdf) != std::string::npos) return true;
    }
    return false;
  }

  // Every ledger row belongs to vm-1 and one of its devices (nothing dangling, nothing foreign).
  void check_rows_are_the_vms(const HostCase& c, const std::string& when) {
    const std::set<std::string> devices(c.devices.begin(), c.devices.end());
    for (const auto& row : ledger()) {
      if (row.vm_id != "vm-1" || devices.count(row.bdf.to_string()) == 0)
        problems_.push_back(when + ": stray ledger row " + row.bdf.to_string() + " of vm " + row.vm_id);
    }
  }

  void wait_for_empty_ledger(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!ledger().empty() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
  }

  void check_host_as_before(const std::string& when) {
    const auto now = kernel_->snapshot();
    for (const auto& [bdf, binding] : before_) {
      auto it = now.find(bdf);
      if (it == now.end() || !(it->second == binding))
        problems_.push_back(when + ": " + bdf + " is on '" +
                            (it == now.end() ? std::string("?") : it->second.driver) +
                            "' override '" +
                            (it == now.end() ? std::string("?") : it->second.override_driver) +
                            "', was on '" + binding.driver + "' override '" +
                            binding.override_driver + "'");
    }
    if (!kernel_->vfio_groups().empty())
      problems_.push_back(when + ": VFIO group node " + kernel_->vfio_groups().front() + " left");
    for (const auto& row : ledger())
      problems_.push_back(when + ": ledger row " + row.bdf.to_string() + " (vm " + row.vm_id + ") left");
  }

  std::vector<std::string> problems_;
  bool absorbed_ = false;
};

TEST(FaultMatrixTest, EveryFaultAtEveryWriteOfPrepareAndRelease) {
  std::map<std::string, int> run_by_fault;
  int run = 0;
  int held = 0;
  int absorbed = 0;
  for (const HostCase& c : {kConsumer, kTwoH100}) {
    for (bool during_release : {false, true}) {
      for (size_t k = 0; k < c.writes; ++k) {
        for (FaultKind f : kFaults) {
          const std::string name = std::string(c.host) + (during_release ? " release" : " prepare") +
                                   ", " + fault_name(f) + " at write " + std::to_string(k);
          Scenario scenario;
          auto problems = scenario.run(c, during_release, k, f);
          if (scenario.absorbed()) ++absorbed;
          ++run;
          ++run_by_fault[fault_name(f)];
          if (problems.empty()) {
            ++held;
          } else {
            for (const auto& p : problems) ADD_FAILURE() << name << ": " << p;
          }
        }
      }
    }
  }
  EXPECT_EQ(run, 2 * 4 * static_cast<int>(kConsumer.writes + kTwoH100.writes));
  std::printf("fault matrix: %d scenarios run, %d held (EBUSY %d, ENODEV %d, timeout %d, crash %d; "
              "prepare and release, every write of a consumer card and of two H100s; %d release "
              "faults absorbed by the drivers_probe fallback)\n",
              run, held, run_by_fault["EBUSY"], run_by_fault["ENODEV"], run_by_fault["timeout"],
              run_by_fault["crash"], absorbed);
  EXPECT_EQ(held, run);
}

// The write counts above are what a successful prepare and release write.
TEST(FaultMatrixTest, WriteCountsMatch) {
  for (const HostCase& c : {kConsumer, kTwoH100}) {
    class Probe : public testing::HostdevTest {
     public:
      void TestBody() override {}
      size_t run(const HostCase& c, bool release) {
        start(host_for(c));
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

}  // namespace
}  // namespace feos::hostdev
