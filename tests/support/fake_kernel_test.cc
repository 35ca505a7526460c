// FakeKernel: the PCI core's reactions to sysfs writes, fault injection, and its log/snapshot.
#include "support/fake_kernel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "pci/sysfs.h"
#include "support/fake_host.h"
#include "sysfs_tree.h"

namespace feos::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class KernelTest : public ::testing::Test {
 protected:
  void use(const HostBuilder& b) {
    auto t = b.build(dir_.path());
    ASSERT_TRUE(t) << t.error().to_string();
    tree_ = *t;
    kernel_ = std::make_unique<FakeKernel>(tree_);
  }
  const sys::HostPaths& p() const { return tree_.paths; }
  Status write(const std::string& path, std::string_view value) { return kernel_->write_file(path, value); }
  Status set_override(const std::string& bdf, std::string_view v) {
    return write(p().pci_device(bdf) + "/driver_override", v);
  }
  Status unbind(const std::string& driver, const std::string& bdf) { return write(p().pci_driver(driver) + "/unbind", bdf); }
  Status bind(const std::string& driver, const std::string& bdf) { return write(p().pci_driver(driver) + "/bind", bdf); }
  Status probe(const std::string& bdf) { return write(p().pci_drivers_probe(), bdf); }
  Binding binding(const std::string& bdf) const { return kernel_->snapshot().at(bdf); }
  // The hostdev sequence: override, unbind from the current driver, probe.
  void to_vfio(const std::string& bdf) {
    const std::string driver = binding(bdf).driver;
    ASSERT_TRUE(set_override(bdf, "vfio-pci"));
    if (!driver.empty()) {
      ASSERT_TRUE(unbind(driver, bdf));
    }
    ASSERT_TRUE(probe(bdf));
  }
  void back_to_host(const std::string& bdf) {
    ASSERT_TRUE(set_override(bdf, "\n"));
    ASSERT_TRUE(unbind("vfio-pci", bdf));
    ASSERT_TRUE(probe(bdf));
  }

  TempDir dir_ = TempDir::for_trees();
  HostTree tree_;
  std::unique_ptr<FakeKernel> kernel_;
};

const std::vector<std::string> kCard = {"0000:01:00.0", "0000:01:00.1", "0000:01:00.2", "0000:01:00.3"};
const std::vector<std::string> kHgxGpus = {"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
                                           "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0"};

TEST_F(KernelTest, PassThroughAndBackRestoresTheHostExactly) {
  use(consumer_gpu_host());
  const BindingSnapshot before = kernel_->snapshot();
  EXPECT_EQ(before.at("0000:01:00.0"), (Binding{"nvidia", ""}));
  EXPECT_EQ(before.at("0000:01:00.1"), (Binding{"snd_hda_intel", ""}));
  EXPECT_TRUE(kernel_->vfio_groups().empty());

  for (const auto& bdf : kCard) to_vfio(bdf);
  for (const auto& bdf : kCard) EXPECT_EQ(binding(bdf), (Binding{"vfio-pci", "vfio-pci"})) << bdf;
  EXPECT_EQ(kernel_->vfio_groups(), std::vector<std::string>{"2"});
  EXPECT_TRUE(fs::exists(p().vfio_group("2")));
  // nvidia-drm's nodes went with the driver.
  EXPECT_FALSE(fs::exists(p().pci_device("0000:01:00.0") + "/drm"));
  EXPECT_FALSE(fs::exists(p().dev_root + "/dri/card1"));
  EXPECT_TRUE(fs::exists(p().dev_root + "/dri/card0"));  // the iGPU's stays
  // src/pci sees it through the fake.
  pci::PciSysfs pci(*kernel_, p());
  auto d = pci.read(*pci::Address::parse("0000:01:00.0"));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->driver, "vfio-pci");
  EXPECT_EQ(d->driver_override, "vfio-pci");
  EXPECT_EQ(d->enable_count, 0);
  EXPECT_FALSE(fs::exists(p().pci_driver("nvidia") + "/0000:01:00.0"));
  EXPECT_TRUE(fs::is_symlink(p().pci_driver("vfio-pci") + "/0000:01:00.0"));

  // The group node stays until the last member leaves vfio-pci.
  for (size_t i = 0; i < kCard.size(); ++i) {
    EXPECT_TRUE(fs::exists(p().vfio_group("2"))) << i;
    back_to_host(kCard[i]);
  }
  EXPECT_FALSE(fs::exists(p().vfio_group("2")));
  EXPECT_EQ(kernel_->snapshot(), before);
  EXPECT_TRUE(fs::exists(p().dev_root + "/dri/card1"));
  EXPECT_TRUE(fs::exists(p().pci_device("0000:01:00.0") + "/drm/card1"));
  EXPECT_EQ(*kernel_->read_file(p().pci_device("0000:01:00.0") + "/enable"), "1\n");
}

TEST_F(KernelTest, DriverOverrideSetAndClear) {
  use(consumer_gpu_host());
  const std::string path = p().pci_device("0000:01:00.0") + "/driver_override";
  ASSERT_TRUE(write(path, "vfio-pci"));
  EXPECT_EQ(*kernel_->read_file(path), "vfio-pci\n");
  EXPECT_EQ(binding("0000:01:00.0"), (Binding{"nvidia", "vfio-pci"}));  // setting it binds nothing
  ASSERT_TRUE(write(path, "\n"));
  EXPECT_EQ(*kernel_->read_file(path), "(null)\n");
  ASSERT_TRUE(write(path, "vfio-pci\n"));
  EXPECT_EQ(*kernel_->read_file(path), "vfio-pci\n");
  ASSERT_TRUE(write(path, ""));
  EXPECT_EQ(*kernel_->read_file(path), "(null)\n");
  // Through the canonical device directory too.
  ASSERT_TRUE(write(fs::canonical(p().pci_device("0000:01:00.1")).string() + "/driver_override", "vfio-pci"));
  EXPECT_EQ(binding("0000:01:00.1").override_driver, "vfio-pci");
  auto too_long = write(path, std::string(5000, 'x'));
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().code, Code::kInvalidArgument);
}

TEST_F(KernelTest, UnbindRequiresThatDriver) {
  use(consumer_gpu_host());
  const auto before = kernel_->snapshot();
  auto wrong = unbind("vfio-pci", "0000:01:00.0");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, Code::kNotFound);
  EXPECT_NE(wrong.error().message.find("No such device"), std::string::npos);
  EXPECT_NE(wrong.error().message.find("0000:01:00.0"), std::string::npos);
  EXPECT_EQ(unbind("nvidia", "0000:09:00.0").error().code, Code::kNotFound);
  EXPECT_EQ(kernel_->snapshot(), before);
  // Through the device's driver link, with the newline echo adds.
  ASSERT_TRUE(write(p().pci_device("0000:01:00.0") + "/driver/unbind", "0000:01:00.0\n"));
  EXPECT_EQ(binding("0000:01:00.0").driver, "");
  EXPECT_EQ(*kernel_->read_file(p().pci_device("0000:01:00.0") + "/enable"), "0\n");
  // Now there is no driver link to write through.
  EXPECT_EQ(write(p().pci_device("0000:01:00.0") + "/driver/unbind", "0000:01:00.0").error().code, Code::kNotFound);
  EXPECT_EQ(unbind("nvidia", "0000:01:00.0").error().code, Code::kNotFound);
}

TEST_F(KernelTest, BindMatchesLikeThePciCore) {
  use(consumer_gpu_host());
  const std::string gpu = "0000:01:00.0";
  // vfio-pci has no id for it and no override names it.
  EXPECT_EQ(bind("vfio-pci", gpu).error().code, Code::kNotFound);
  ASSERT_TRUE(set_override(gpu, "vfio-pci"));
  auto busy = bind("vfio-pci", gpu);
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, Code::kFailedPrecondition);  // EBUSY: still bound to nvidia
  ASSERT_TRUE(unbind("nvidia", gpu));
  // The override isolates it: its own native driver may not take it back.
  EXPECT_EQ(bind("nvidia", gpu).error().code, Code::kNotFound);
  ASSERT_TRUE(probe(gpu));
  EXPECT_EQ(binding(gpu), (Binding{"vfio-pci", "vfio-pci"}));
  // Without an override the native driver matches again.
  ASSERT_TRUE(set_override(gpu, ""));
  ASSERT_TRUE(unbind("vfio-pci", gpu));
  ASSERT_TRUE(bind("nvidia", gpu));
  EXPECT_EQ(binding(gpu), (Binding{"nvidia", ""}));
  EXPECT_EQ(bind("nvidia", gpu).error().code, Code::kFailedPrecondition);
}

TEST_F(KernelTest, ProbeIsANoOpWhenBoundOrWhenNothingMatches) {
  use(consumer_gpu_host());
  const auto before = kernel_->snapshot();
  ASSERT_TRUE(probe("0000:01:00.0"));
  EXPECT_EQ(kernel_->snapshot(), before);
  EXPECT_EQ(probe("0000:0f:00.0").error().code, Code::kNotFound);
  // Override names a driver that is not loaded: stays unbound, the write succeeds.
  ASSERT_TRUE(set_override("0000:01:00.1", "pci-stub"));
  ASSERT_TRUE(unbind("snd_hda_intel", "0000:01:00.1"));
  ASSERT_TRUE(probe("0000:01:00.1"));
  EXPECT_EQ(binding("0000:01:00.1"), (Binding{"", "pci-stub"}));
}

TEST_F(KernelTest, VfioPciOnlyWhenItsModuleIsLoaded) {
  HostBuilder b = consumer_gpu_host();
  b.module("vfio_pci", false);
  use(b);
  EXPECT_FALSE(fs::exists(p().pci_driver("vfio-pci")));
  EXPECT_FALSE(kernel_->module_loaded("vfio_pci"));
  EXPECT_FALSE(fs::exists(p().dev_root + "/vfio/vfio"));
  EXPECT_EQ(bind("vfio-pci", "0000:01:00.0").error().code, Code::kNotFound);  // no such file
  ASSERT_TRUE(set_override("0000:01:00.0", "vfio-pci"));
  ASSERT_TRUE(unbind("nvidia", "0000:01:00.0"));
  ASSERT_TRUE(probe("0000:01:00.0"));
  EXPECT_EQ(binding("0000:01:00.0").driver, "");
  // modprobe vfio-pci: the driver registers and takes the devices whose override names it.
  ASSERT_TRUE(kernel_->load_module("vfio_pci"));
  EXPECT_TRUE(kernel_->module_loaded("vfio_pci"));
  EXPECT_TRUE(fs::exists(p().pci_driver("vfio-pci") + "/bind"));
  EXPECT_TRUE(fs::exists(p().dev_root + "/vfio/vfio"));
  EXPECT_EQ(binding("0000:01:00.0").driver, "vfio-pci");
  EXPECT_EQ(binding("0000:01:00.1").driver, "snd_hda_intel");
  EXPECT_EQ(kernel_->vfio_groups(), std::vector<std::string>{"2"});
  // rmmod: its devices are released.
  ASSERT_TRUE(kernel_->unload_module("vfio_pci"));
  EXPECT_EQ(binding("0000:01:00.0").driver, "");
  EXPECT_FALSE(fs::exists(p().pci_driver("vfio-pci")));
  EXPECT_TRUE(kernel_->vfio_groups().empty());
}

TEST_F(KernelTest, UnloadingAHostDriverReleasesItsDevices) {
  use(hgx_h100_host());
  ASSERT_TRUE(kernel_->unload_module("nvidia"));
  for (const auto& g : kHgxGpus) EXPECT_EQ(binding(g).driver, "") << g;
  EXPECT_EQ(binding("0000:05:00.0").driver, "");  // nvidia-nvswitch is part of nvidia.ko
  EXPECT_FALSE(fs::exists(p().pci_driver("nvidia")));
  ASSERT_TRUE(kernel_->load_module("nvidia"));
  for (const auto& g : kHgxGpus) EXPECT_EQ(binding(g).driver, "nvidia") << g;
  EXPECT_EQ(binding("0000:05:00.0").driver, "nvidia-nvswitch");
}

TEST_F(KernelTest, NewIdBindsUnboundMatchingDevices) {
  use(hgx_h100_host());
  ASSERT_TRUE(unbind("nvidia", "0000:18:00.0"));
  ASSERT_TRUE(write(p().pci_driver("vfio-pci") + "/new_id", "10de 2330"));
  EXPECT_EQ(kernel_->dynamic_ids(), std::vector<std::string>{"vfio-pci 10de:2330"});
  EXPECT_EQ(binding("0000:18:00.0").driver, "vfio-pci");
  EXPECT_EQ(binding("0000:2a:00.0").driver, "nvidia");  // bound devices are left alone
  EXPECT_EQ(kernel_->vfio_groups(), std::vector<std::string>{"59"});
  EXPECT_EQ(write(p().pci_driver("vfio-pci") + "/new_id", "10de 2330").error().code, Code::kInternal);  // EEXIST
  EXPECT_EQ(write(p().pci_driver("vfio-pci") + "/new_id", "zz").error().code, Code::kInvalidArgument);
  ASSERT_TRUE(write(p().pci_driver("vfio-pci") + "/remove_id", "10de 2330"));
  EXPECT_TRUE(kernel_->dynamic_ids().empty());
  EXPECT_EQ(write(p().pci_driver("vfio-pci") + "/remove_id", "10de 2330").error().code, Code::kNotFound);
}

TEST_F(KernelTest, OtherWrites) {
  use(consumer_gpu_host());
  auto ro = write(p().pci_device("0000:01:00.0") + "/vendor", "0x1234");
  ASSERT_FALSE(ro);
  EXPECT_EQ(ro.error().code, Code::kPermissionDenied);
  EXPECT_EQ(*kernel_->read_file(p().pci_device("0000:01:00.0") + "/vendor"), "0x10de\n");
  EXPECT_EQ(write(p().pci_device("0000:01:00.0") + "/nonexistent", "1").error().code, Code::kNotFound);
  EXPECT_EQ(write(p().pci_device("0000:01:00.0") + "/remove", "1").error().code, Code::kUnimplemented);
  ASSERT_TRUE(write(p().pci_device("0000:01:00.0") + "/reset", "1"));
  EXPECT_EQ(write(p().pci_device("0000:00:00.0") + "/reset", "1").error().code, Code::kNotFound);  // no reset file
  // Outside sysfs: a real write.
  const std::string f = dir_.path() + "/plain.txt";
  ASSERT_TRUE(write(f + "x", "a").error().code == Code::kNotFound);
  { std::ofstream(f) << ""; }
  ASSERT_TRUE(write(f, "hello"));
  EXPECT_EQ(*kernel_->read_file(f), "hello");
}

TEST_F(KernelTest, WriteLogAndCount) {
  use(consumer_gpu_host());
  to_vfio("0000:01:00.1");
  (void)unbind("nvidia", "0000:01:00.1");
  const auto w = kernel_->writes();
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(kernel_->write_count(), 4u);
  EXPECT_EQ(w[0], (WriteRecord{p().pci_device("0000:01:00.1") + "/driver_override", "vfio-pci", Op::kDriverOverride,
                               "0000:01:00.1", Code::kOk}));
  EXPECT_EQ(w[1], (WriteRecord{p().pci_driver("snd_hda_intel") + "/unbind", "0000:01:00.1", Op::kUnbind,
                               "0000:01:00.1", Code::kOk}));
  EXPECT_EQ(w[2], (WriteRecord{p().pci_drivers_probe(), "0000:01:00.1", Op::kDriversProbe, "0000:01:00.1", Code::kOk}));
  EXPECT_EQ(w[3].result, Code::kNotFound);
  kernel_->clear_writes();
  EXPECT_EQ(kernel_->write_count(), 0u);
}

TEST_F(KernelTest, BusyAndNoDeviceFaultsCountDown) {
  use(consumer_gpu_host());
  kernel_->inject({.op = Op::kUnbind, .bdf = "0000:01:00.0", .fault = Fault::busy(2)});
  const auto before = kernel_->snapshot();
  auto first = unbind("nvidia", "0000:01:00.0");
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code, Code::kFailedPrecondition);
  EXPECT_NE(first.error().message.find("Device or resource busy"), std::string::npos);
  EXPECT_EQ(unbind("nvidia", "0000:01:00.0").error().code, Code::kFailedPrecondition);
  EXPECT_EQ(kernel_->snapshot(), before);  // failed writes change nothing
  ASSERT_TRUE(unbind("snd_hda_intel", "0000:01:00.1"));  // other devices are not affected
  ASSERT_TRUE(unbind("nvidia", "0000:01:00.0"));  // the third succeeds
  EXPECT_EQ(binding("0000:01:00.0").driver, "");

  // skip: the first matching write passes, the next fails; any-op rules; driver filter.
  kernel_->inject({.op = Op::kDriversProbe, .skip = 1, .fault = Fault::no_device()});
  ASSERT_TRUE(probe("0000:01:00.0"));
  ASSERT_TRUE(unbind("nvidia", "0000:01:00.0"));
  EXPECT_EQ(probe("0000:01:00.0").error().code, Code::kNotFound);
  ASSERT_TRUE(probe("0000:01:00.0"));
  kernel_->inject({.op = Op::kBind, .driver = "nvidia", .fault = Fault::error(EIO)});
  ASSERT_TRUE(unbind("nvidia", "0000:01:00.0"));
  ASSERT_TRUE(bind("snd_hda_intel", "0000:01:00.1"));  // another driver: not matched by the rule
  auto io = bind("nvidia", "0000:01:00.0");
  ASSERT_FALSE(io);
  EXPECT_EQ(io.error().code, Code::kInternal);
  EXPECT_NE(io.error().message.find("Input/output error"), std::string::npos);
}

TEST_F(KernelTest, RemoveAndClearFaults) {
  use(consumer_gpu_host());
  auto id = kernel_->inject({.op = Op::kAny, .fault = Fault::busy(-1)});
  EXPECT_FALSE(set_override("0000:01:00.0", "vfio-pci"));
  EXPECT_FALSE(probe("0000:01:00.0"));
  kernel_->remove_fault(id);
  EXPECT_TRUE(set_override("0000:01:00.0", "vfio-pci"));
  kernel_->inject({.fault = Fault::no_device(-1)});
  EXPECT_FALSE(set_override("0000:01:00.0", ""));
  kernel_->clear_faults();
  EXPECT_TRUE(set_override("0000:01:00.0", ""));
}

TEST_F(KernelTest, ParallelDelayedUnbindsOverlap) {
  use(hgx_h100_host());
  kernel_->inject({.op = Op::kUnbind, .fault = Fault::delay(200ms)});
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::future<Status>> jobs;
  for (const auto& g : kHgxGpus) jobs.push_back(std::async(std::launch::async, [&, g] { return unbind("nvidia", g); }));
  for (auto& j : jobs) EXPECT_TRUE(j.get());
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 600ms) << "8 unbinds of 200 ms each must overlap";
  for (const auto& g : kHgxGpus) EXPECT_EQ(binding(g).driver, "") << g;
  EXPECT_EQ(kernel_->write_count(), 8u);
}

TEST_F(KernelTest, SerialDelaysAddUp) {
  use(hgx_h100_host());
  kernel_->inject({.op = Op::kUnbind, .bdf = "0000:18:00.0", .fault = Fault::delay(100ms)});
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(unbind("nvidia", "0000:18:00.0"));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms);
  const auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(unbind("nvidia", "0000:2a:00.0"));  // another device: no delay
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 50ms);
}

TEST_F(KernelTest, HangBlocksUntilReleasedThenTakesEffect) {
  use(hgx_h100_host());
  kernel_->inject({.op = Op::kUnbind, .bdf = "0000:18:00.0", .fault = Fault::hang()});
  auto hung = std::async(std::launch::async, [&] { return unbind("nvidia", "0000:18:00.0"); });
  ASSERT_TRUE(kernel_->wait_for_hung_writes(1, 2s));
  EXPECT_EQ(kernel_->hung_writes(), 1u);
  EXPECT_EQ(hung.wait_for(100ms), std::future_status::timeout);
  // Other writes go on meanwhile.
  ASSERT_TRUE(unbind("nvidia", "0000:2a:00.0"));
  EXPECT_EQ(binding("0000:18:00.0").driver, "nvidia");
  kernel_->release_hangs();
  ASSERT_EQ(hung.wait_for(2s), std::future_status::ready);
  EXPECT_TRUE(hung.get());
  EXPECT_EQ(binding("0000:18:00.0").driver, "");
  EXPECT_EQ(kernel_->hung_writes(), 0u);
  // The rule is gone: the next write does not hang.
  ASSERT_TRUE(bind("nvidia", "0000:18:00.0"));
  ASSERT_TRUE(unbind("nvidia", "0000:18:00.0"));
}

TEST_F(KernelTest, DestroyingTheKernelFailsHungWrites) {
  use(hgx_h100_host());
  kernel_->inject({.op = Op::kUnbind, .fault = Fault::hang()});
  auto hung = std::async(std::launch::async, [&] { return unbind("nvidia", "0000:18:00.0"); });
  ASSERT_TRUE(kernel_->wait_for_hung_writes(1, 2s));
  kernel_.reset();  // waits for the blocked write to leave
  auto st = hung.get();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Code::kUnavailable);
  // Without effect on the tree.
  FakeKernel again(tree_);
  EXPECT_EQ(again.snapshot().at("0000:18:00.0").driver, "nvidia");
}

TEST_F(KernelTest, CrashLosesEveryWriteUntilRevive) {
  use(consumer_gpu_host());
  const auto before = kernel_->snapshot();
  kernel_->inject({.op = Op::kUnbind, .bdf = "0000:01:00.1", .fault = Fault::crash()});
  ASSERT_TRUE(set_override("0000:01:00.0", "vfio-pci"));
  ASSERT_TRUE(unbind("nvidia", "0000:01:00.0"));
  auto crash = unbind("snd_hda_intel", "0000:01:00.1");
  ASSERT_FALSE(crash);
  EXPECT_EQ(crash.error().code, Code::kUnavailable);
  EXPECT_TRUE(kernel_->crashed());
  EXPECT_EQ(probe("0000:01:00.0").error().code, Code::kUnavailable);
  EXPECT_EQ(set_override("0000:01:00.0", "").error().code, Code::kUnavailable);
  EXPECT_EQ(kernel_->write_count(), 2u);
  EXPECT_EQ(kernel_->lost_write_count(), 3u);
  // What reached the kernel before the crash stays: the host is half-prepared.
  EXPECT_EQ(binding("0000:01:00.0"), (Binding{"", "vfio-pci"}));
  EXPECT_EQ(binding("0000:01:00.1"), (Binding{"snd_hda_intel", ""}));
  kernel_->revive();
  EXPECT_FALSE(kernel_->crashed());
  ASSERT_TRUE(set_override("0000:01:00.0", ""));
  ASSERT_TRUE(probe("0000:01:00.0"));
  EXPECT_EQ(kernel_->snapshot(), before);
}

TEST_F(KernelTest, ConcurrentBindUnbindCyclesStayConsistent) {
  use(hgx_h100_host());
  const auto before = kernel_->snapshot();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (const auto& g : kHgxGpus)
    threads.emplace_back([&, g] {
      for (int i = 0; i < 20; ++i) {
        if (!set_override(g, "vfio-pci") || !unbind("nvidia", g) || !probe(g)) ++failures;
        if (!set_override(g, "") || !unbind("vfio-pci", g) || !probe(g)) ++failures;
      }
    });
  std::thread reader([&] {
    for (int i = 0; i < 200; ++i) {
      auto snap = kernel_->snapshot();
      if (snap.size() != before.size()) ++failures;
    }
  });
  for (auto& t : threads) t.join();
  reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(kernel_->snapshot(), before);
  EXPECT_TRUE(kernel_->vfio_groups().empty());
  EXPECT_EQ(kernel_->write_count(), 8u * 20u * 6u);
}

TEST_F(KernelTest, VfioPciRefusesBridges) {
  use(consumer_gpu_host());
  ASSERT_TRUE(set_override("0000:00:01.0", "vfio-pci"));
  ASSERT_TRUE(unbind("pcieport", "0000:00:01.0"));
  ASSERT_TRUE(probe("0000:00:01.0"));  // the probe fails inside the kernel; the write does not
  EXPECT_EQ(binding("0000:00:01.0"), (Binding{"", "vfio-pci"}));
  auto st = bind("vfio-pci", "0000:00:01.0");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Code::kInvalidArgument);
  EXPECT_TRUE(kernel_->vfio_groups().empty());
}

TEST_F(KernelTest, VfioNodeAppearsLateWithAUdevDelay) {
  use(hgx_h100_host());
  kernel_->set_vfio_node_delay(150ms);
  const auto t0 = std::chrono::steady_clock::now();
  to_vfio("0000:18:00.0");
  EXPECT_EQ(binding("0000:18:00.0").driver, "vfio-pci");  // bound at once
  EXPECT_FALSE(fs::exists(p().vfio_group("59")));  // the node comes later
  while (!fs::exists(p().vfio_group("59")) && std::chrono::steady_clock::now() - t0 < 3s)
    std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(fs::exists(p().vfio_group("59")));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
  // Detaching removes it at once; a detach before the delay cancels the pending node.
  back_to_host("0000:18:00.0");
  EXPECT_FALSE(fs::exists(p().vfio_group("59")));
  to_vfio("0000:2a:00.0");
  back_to_host("0000:2a:00.0");
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(fs::exists(p().vfio_group("50")));
  to_vfio("0000:3a:00.0");  // still pending when the kernel goes away: destruction must not hang
}

// The real capture (a guest: no IOMMU groups, no vfio-pci) works with the fake kernel too.
TEST(KernelOnCapture, H100Guest) {
  TempDir dir;
  ASSERT_TRUE(materialize_sysfs_capture(fixtures_dir() + "/sysfs/h100-guest", dir.path()));
  sys::HostPaths paths;
  paths.sysfs_root = dir.path();
  paths.dev_root = dir.path() + "/dev";
  FakeKernel kernel(paths);
  EXPECT_EQ(*kernel.native_driver("0000:00:06.0"), "nvidia");
  EXPECT_EQ(kernel.native_driver("0000:00:09.0").error().code, Code::kNotFound);
  const auto before = kernel.snapshot();
  EXPECT_EQ(before.size(), 7u);
  EXPECT_EQ(before.at("0000:00:06.0"), (Binding{"nvidia", ""}));
  ASSERT_TRUE(kernel.write_file(paths.pci_driver("nvidia") + "/unbind", "0000:00:06.0"));
  EXPECT_EQ(kernel.snapshot().at("0000:00:06.0").driver, "");
  ASSERT_TRUE(kernel.write_file(paths.pci_drivers_probe(), "0000:00:06.0"));
  EXPECT_EQ(kernel.snapshot(), before);
  EXPECT_FALSE(kernel.module_loaded("vfio_pci"));
  // Without an IOMMU, vfio-pci cannot take the GPU.
  ASSERT_TRUE(kernel.load_module("vfio_pci"));
  ASSERT_TRUE(kernel.write_file(paths.pci_device("0000:00:06.0") + "/driver_override", "vfio-pci"));
  ASSERT_TRUE(kernel.write_file(paths.pci_driver("nvidia") + "/unbind", "0000:00:06.0"));
  ASSERT_TRUE(kernel.write_file(paths.pci_drivers_probe(), "0000:00:06.0"));
  EXPECT_EQ(kernel.snapshot().at("0000:00:06.0"), (Binding{"", "vfio-pci"}));
  EXPECT_EQ(kernel.write_file(paths.pci_driver("vfio-pci") + "/bind", "0000:00:06.0").error().code,
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace feos::test
