// VfioBinder on the fake kernel: each step of the driver protocol writes the file the kernel
// expects, errors name the device and the step, and a write that hangs leaves the device in
// doubt until it returns, then reports its VM.
#include "hostdev/vfio_binder.h"

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "hostdev_fixture.h"

namespace feos::hostdev {
namespace {

using namespace std::chrono_literals;
using test::Fault;
using test::Op;

constexpr const char* kAudio = "0000:01:00.1";  // the consumer card's HDMI audio: snd_hda_intel

// The VMs the binder reported through its release callback.
class Reports {
 public:
  // The callback: records `vm_id`; answers "not yet" `refusals` times first.
  InDoubtWrites::ReleaseVm callback(int refusals = 0) {
    refusals_ = refusals;
    return [this](const std::string& vm_id) {
      std::lock_guard lock(mu_);
      calls_.push_back(vm_id);
      cv_.notify_all();
      return refusals_-- <= 0;
    };
  }
  // Waits until the callback ran `n` times; its calls so far.
  std::vector<std::string> wait_for(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 5s, [&] { return calls_.size() >= n; });
    return calls_;
  }
  std::vector<std::string> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> calls_;
  int refusals_ = 0;  // guarded by mu_
};

class VfioBinderTest : public testing::HostdevTest {
 protected:
  void SetUp() override { start(test::consumer_gpu_host()); }

  static BinderTarget target(const std::string& bdf, const std::string& vm = "vm-1") {
    return BinderTarget{*pci::Address::parse(bdf), bdf, vm, "vm " + vm + ": " + bdf + ": "};
  }
  std::unique_ptr<VfioBinder> binder(Reports& reports, Options options = test_options(),
                                     int refusals = 0) {
    return std::make_unique<VfioBinder>(*kernel_, paths(), options, reports.callback(refusals));
  }
  // The kernel's log of writes: "<op> <value>" each.
  std::vector<std::string> writes() const {
    std::vector<std::string> out;
    for (const auto& w : kernel_->writes()) {
      out.push_back(std::string(test::op_name(w.op)) + " " + (w.value == "\n" ? "\\n" : w.value));
    }
    return out;
  }
};

TEST_F(VfioBinderTest, BindsToVfioAndReturnsToTheHostDriver) {
  Reports reports;
  auto b = binder(reports);
  const BinderTarget audio = target(kAudio);
  EXPECT_EQ(b->driver(audio.address).value(), "snd_hda_intel");
  EXPECT_EQ(b->driver_override(audio.address).value(), "");

  // prepare's order: override, unbind, probe, verify, group node.
  ASSERT_TRUE(b->set_override(audio, "vfio-pci"));
  EXPECT_EQ(b->driver_override(audio.address).value(), "vfio-pci");
  ASSERT_TRUE(b->unbind(audio, "snd_hda_intel"));
  EXPECT_EQ(b->driver(audio.address).value(), "");
  ASSERT_TRUE(b->probe(audio));
  ASSERT_TRUE(b->wait_for_driver(audio, "vfio-pci", "bind to vfio-pci"));
  ASSERT_TRUE(b->wait_for_group_node(pci::IommuGroup(2), audio));
  EXPECT_EQ(b->bound_to_vfio().value(), std::vector<pci::Address>{audio.address});

  // release's order: unbind from vfio-pci, clear the override, bind the original driver.
  ASSERT_TRUE(b->unbind(audio, "vfio-pci"));
  ASSERT_TRUE(b->restore_override(audio, ""));
  EXPECT_EQ(b->driver_override(audio.address).value(), "");
  ASSERT_TRUE(b->bind(audio, "snd_hda_intel"));
  ASSERT_TRUE(b->wait_for_driver(audio, "snd_hda_intel", "return to snd_hda_intel"));

  EXPECT_EQ(writes(), (std::vector<std::string>{
                          "driver_override vfio-pci", "unbind 0000:01:00.1",
                          "drivers_probe 0000:01:00.1", "unbind 0000:01:00.1",
                          "driver_override \\n", "bind 0000:01:00.1"}));
  const auto log = kernel_->writes();
  EXPECT_EQ(log[0].path, paths().pci_device_attr(kAudio, "driver_override"));
  EXPECT_EQ(log[1].path, paths().pci_driver_file("snd_hda_intel", "unbind"));
  EXPECT_EQ(log[2].path, paths().pci_drivers_probe());
  EXPECT_EQ(log[3].path, paths().pci_driver_file("vfio-pci", "unbind"));
  EXPECT_EQ(log[5].path, paths().pci_driver_file("snd_hda_intel", "bind"));
  EXPECT_EQ(kernel_->snapshot(), before_);
  EXPECT_TRUE(kernel_->vfio_groups().empty());
  EXPECT_TRUE(reports.calls().empty());
}

TEST_F(VfioBinderTest, RestoresANamedOverride) {
  Reports reports;
  auto b = binder(reports);
  const BinderTarget audio = target(kAudio);
  ASSERT_TRUE(b->restore_override(audio, "snd_hda_intel"));
  EXPECT_EQ(b->driver_override(audio.address).value(), "snd_hda_intel");
  EXPECT_EQ(writes(), std::vector<std::string>{"driver_override snd_hda_intel"});
}

TEST_F(VfioBinderTest, WriteErrorsNameDeviceAndStep) {
  Reports reports;
  auto b = binder(reports);
  const BinderTarget audio = target(kAudio);
  kernel_->inject({.op = Op::kUnbind, .bdf = kAudio, .fault = Fault::busy()});
  auto busy = b->unbind(audio, "snd_hda_intel");
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(busy.error().message.rfind("vm vm-1: 0000:01:00.1: unbind from snd_hda_intel: ", 0), 0u)
      << busy.error().message;

  kernel_->inject({.op = Op::kDriversProbe, .bdf = kAudio, .fault = Fault::error(EIO)});
  auto io = b->probe(audio);
  ASSERT_FALSE(io);
  EXPECT_EQ(io.error().code, Code::kInternal);
  EXPECT_EQ(io.error().message.rfind("vm vm-1: 0000:01:00.1: drivers_probe: ", 0), 0u)
      << io.error().message;

  // A driver that is not registered: nothing is written.
  const size_t before = kernel_->write_count();
  auto missing = b->bind(audio, "nouveau");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_EQ(missing.error().message, "driver nouveau is not loaded");
  EXPECT_EQ(kernel_->write_count(), before);
  EXPECT_EQ(kernel_->snapshot(), before_);
}

TEST_F(VfioBinderTest, ReadsOfAGoneDeviceAreNotFound) {
  Reports reports;
  auto b = binder(reports);
  auto gone = b->driver(*pci::Address::parse("0000:01:00.7"));
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Code::kNotFound);
  EXPECT_EQ(gone.error().message,
            "PCI device 0000:01:00.7 is gone (no " + paths().pci_device("0000:01:00.7") + ")");
  EXPECT_EQ(b->driver_override(*pci::Address::parse("0000:01:00.7")).error().code,
            Code::kNotFound);
}

TEST_F(VfioBinderTest, WaitsTimeOutNamingWhatTheyWaitedFor) {
  Reports reports;
  Options options = test_options();
  options.step_timeout = 50ms;
  options.vfio_node_timeout = 50ms;
  auto b = binder(reports, options);
  const BinderTarget audio = target(kAudio);
  auto driver = b->wait_for_driver(audio, "vfio-pci", "bind to vfio-pci");
  ASSERT_FALSE(driver);
  EXPECT_EQ(driver.error().code, Code::kInternal);
  EXPECT_EQ(driver.error().message,
            "vm vm-1: 0000:01:00.1: bind to vfio-pci: 0000:01:00.1 is bound to snd_hda_intel, not "
            "vfio-pci (after waiting 50 ms)");
  auto node = b->wait_for_group_node(pci::IommuGroup(2), audio);
  ASSERT_FALSE(node);
  EXPECT_EQ(node.error().code, Code::kDeadlineExceeded);
  EXPECT_EQ(node.error().message, "vm vm-1: IOMMU group 2: " + paths().vfio_group("2") +
                                      " did not appear within 50 ms after binding 0000:01:00.1 "
                                      "to vfio-pci");
  EXPECT_EQ(kernel_->write_count(), 0u);
}

// A write that outlives step_timeout: the device is in doubt until it returns; then its VM is
// reported, again every 20 ms while the callback answers "not yet".
TEST_F(VfioBinderTest, HungWriteLeavesTheDeviceInDoubtUntilItReturns) {
  Reports reports;
  Options options = test_options();
  options.step_timeout = 100ms;
  auto b = binder(reports, options, /*refusals=*/2);
  const BinderTarget audio = target(kAudio, "vm-7");
  kernel_->inject({.op = Op::kUnbind, .bdf = kAudio, .fault = Fault::hang()});
  auto hung = b->unbind(audio, "snd_hda_intel");
  ASSERT_FALSE(hung);
  EXPECT_EQ(hung.error().code, Code::kDeadlineExceeded);
  EXPECT_EQ(hung.error().message.rfind("vm vm-7: 0000:01:00.1: unbind from snd_hda_intel: write of ", 0), 0u)
      << hung.error().message;
  EXPECT_TRUE(b->in_doubt(kAudio));
  EXPECT_FALSE(b->in_doubt("0000:01:00.0"));
  EXPECT_TRUE(reports.calls().empty());

  kernel_->release_hangs();  // the late unbind lands
  EXPECT_EQ(reports.wait_for(3), (std::vector<std::string>{"vm-7", "vm-7", "vm-7"}));
  EXPECT_FALSE(b->in_doubt(kAudio));
  EXPECT_EQ(b->driver(audio.address).value(), "");  // it took effect
  std::this_thread::sleep_for(60ms);
  EXPECT_EQ(reports.calls().size(), 3u) << "reported again after the callback accepted";
}

}  // namespace
}  // namespace feos::hostdev
