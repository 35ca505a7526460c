// A full state directory (issue 17, item 7): the database on a small tmpfs of its own, filled up.
// Creates fail with RESOURCE_EXHAUSTED naming the directory; DeleteVm still works (the store gives
// up its reserve for it), nothing recorded is lost, and once there is room again everything works.
// Needs root (mount); skipped otherwise.
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "core/vm_manager.h"
#include "fake_hypervisor.h"
#include "wait_created.h"
#include "support/temp_dir.h"

namespace feos::core {
namespace {

using model::VmState;

class FullDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=4m,mode=0700") != 0)
      GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
    mounted_ = true;
    std::filesystem::create_directories(dir_ + "/vms");
    store::DatabaseOptions options;
    options.reserve_bytes = 1 << 20;
    auto db = store::Database::open(dir_ + "/feosd.db", options);
    ASSERT_TRUE(db) << db.error().to_string();
    db_ = std::move(*db);
    manager_ = std::make_unique<VmManager>(*db_, hv_, nullptr, bus_, dir_ + "/vms");
    ASSERT_TRUE(manager_->recover());
  }
  void TearDown() override {
    manager_.reset();
    db_.reset();
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  model::VmSpec spec(size_t ignition_bytes = 0) {
    model::VmSpec s;
    s.boot.kernel = "/boot/vmlinuz";
    if (ignition_bytes) s.ignition = std::string(ignition_bytes, 'i');
    return s;
  }
  // Writes a file until the filesystem refuses: the disk is full.
  void fill() {
    std::ofstream filler(dir_ + "/filler", std::ios::binary);
    std::string block(4096, 'f');
    while (filler.write(block.data(), block.size()) && filler.flush()) {
    }
  }

  test::TempDir temp_;  // removed after TearDown() unmounts the tmpfs on it
  std::string dir_ = temp_.path();
  bool mounted_ = false;
  FakeHypervisor hv_;
  EventBus bus_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<VmManager> manager_;
};

// A ShutdownVm the full store cannot record still presses the button and still ends the VM
// when the grace is over: the client is told, and the guest is not left running with no deadline.
TEST_F(FullDiskTest, AnUnrecordedShutdownStillEndsTheVmAfterItsGrace) {
  auto a = manager_->create(spec(), std::nullopt);
  ASSERT_TRUE(a);
  ASSERT_EQ(wait_created(*manager_, *a), model::VmState::kCreated);
  ASSERT_TRUE(manager_->start(*a));
  // Use up the reserve too, so the request's state change cannot be written.
  std::filesystem::remove(dir_ + "/feosd.db.reserve");
  fill();
  Status asked = manager_->shutdown(*a, std::chrono::seconds(1));
  ASSERT_FALSE(asked);
  EXPECT_NE(asked.error().message.find("shutdown requested but not recorded"), std::string::npos)
      << asked.error().to_string();
  EXPECT_EQ(hv_.shutdown_requests.load(), 1);
  for (int i = 0; i < 100 && hv_.stops.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(hv_.stops.load(), 1) << "the grace ended the VM";
}

TEST_F(FullDiskTest, CreateIsResourceExhaustedAndDeleteStillWorks) {
  ASSERT_TRUE(std::filesystem::exists(dir_ + "/feosd.db.reserve"));
  auto a = manager_->create(spec(), std::nullopt);
  auto b = manager_->create(spec(), std::nullopt);
  ASSERT_TRUE(a && b);
  ASSERT_EQ(wait_created(*manager_, *a), model::VmState::kCreated);
  ASSERT_EQ(wait_created(*manager_, *b), model::VmState::kCreated);
  ASSERT_TRUE(manager_->start(*a));
  fill();

  auto refused = manager_->create(spec(200 * 1024), std::nullopt);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kResourceExhausted) << refused.error().to_string();
  EXPECT_NE(refused.error().message.find("the state directory " + dir_ + " is full"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(manager_->list().size(), 2u);

  // The operator deletes to make room: both deletes work on the full disk.
  ASSERT_TRUE(manager_->remove(*a)) << "delete of a running VM on a full disk";
  ASSERT_TRUE(manager_->remove(*b)) << "delete of a created VM on a full disk";
  EXPECT_TRUE(manager_->list().empty());

  // Room again: creates work and the reserve comes back with the next delete.
  std::filesystem::remove(dir_ + "/filler");
  auto c = manager_->create(spec(), std::nullopt);
  ASSERT_TRUE(c) << c.error().to_string();
  ASSERT_EQ(wait_created(*manager_, *c), model::VmState::kCreated);
  ASSERT_TRUE(manager_->remove(*c));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/feosd.db.reserve"));

  // Nothing recorded was lost or damaged: a reopened store agrees.
  manager_.reset();
  db_.reset();
  auto db = store::Database::open(dir_ + "/feosd.db");
  ASSERT_TRUE(db) << db.error().to_string();
  auto vms = (*db)->vms().list();
  ASSERT_TRUE(vms);
  EXPECT_TRUE(vms->empty());
}

}  // namespace
}  // namespace feos::core
