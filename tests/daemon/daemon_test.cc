// daemon::Daemon, feosd's wiring, on a fake host: the state directory's lock, the refusal of an
// emptied database, its steps' error prefixes, and that what it wires works together.
#include "daemon/daemon.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/fake_hypervisor.h"
#include "hostdev/inventory.h"
#include "store/database.h"
#include "support/fake_host.h"
#include "support/temp_dir.h"

namespace feos::daemon {
namespace {

namespace fs = std::filesystem;

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto host = test::FakeHost::create(test::hgx_h100_host());
    ASSERT_TRUE(host) << host.error().to_string();
    host_ = std::move(*host);
  }

  DaemonOptions options() {
    DaemonOptions o;
    o.state_dir = state_.path();
    o.paths = host_->paths();
    o.filesystem = &host_->kernel();
    o.hypervisor = &hypervisor_;
    o.build_version = "daemon-test";
    return o;
  }

  std::unique_ptr<test::FakeHost> host_;
  test::TempDir state_;
  core::FakeHypervisor hypervisor_;
};

TEST_F(DaemonTest, WiresTheStateDirectoryDatabaseAndDevices) {
  auto daemon = Daemon::open(options());
  ASSERT_TRUE(daemon) << daemon.error().to_string();
  EXPECT_TRUE(fs::is_directory(state_ / "vms"));
  EXPECT_TRUE(fs::exists(state_ / "feosd.db"));
  EXPECT_EQ(fs::file_size(state_ / "feosd.db.reserve"), kStateReserveBytes);
  EXPECT_TRUE((*daemon)->manager().list().empty());
  EXPECT_EQ(&(*daemon)->hypervisor(), &hypervisor_);
  // The inventory reads the fake host through the injected filesystem.
  auto inventory = (*daemon)->inventory().inventory();
  ASSERT_TRUE(inventory) << inventory.error().to_string();
}

TEST_F(DaemonTest, ASecondDaemonOnTheSameStateDirectoryIsRefusedUntilTheFirstEnds) {
  auto first = Daemon::open(options());
  ASSERT_TRUE(first) << first.error().to_string();
  auto second = Daemon::open(options());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(second.error().message, "another feosd (pid " + std::to_string(::getpid()) + ") holds " +
                                        (state_ / "feosd.lock") + "; refusing to share state dir " +
                                        state_.path());
  first->reset();
  auto third = Daemon::open(options());
  EXPECT_TRUE(third) << third.error().to_string();
}

TEST_F(DaemonTest, AnEmptiedDatabaseIsRefusedUnlessTheVmsAreDiscarded) {
  std::ofstream(state_ / "feosd.db").flush();
  std::ofstream(state_ / "feosd.db-wal") << "the lost database's log";
  auto refused = Daemon::open(options());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_NE(refused.error().message.find("database " + (state_ / "feosd.db") + " is empty (0 bytes)"),
            std::string::npos)
      << refused.error().message;
  EXPECT_TRUE(fs::exists(state_ / "feosd.db-wal"));

  DaemonOptions discard = options();
  discard.discard_unknown_vms = true;
  auto started_over = Daemon::open(discard);
  ASSERT_TRUE(started_over) << started_over.error().to_string();
  // The lost database's write-ahead log is set aside, not replayed into the new database.
  int set_aside = 0;
  for (const auto& entry : fs::directory_iterator(state_ / "vms.discarded"))
    set_aside += entry.path().filename().string().starts_with("feosd.db-wal-") ? 1 : 0;
  EXPECT_EQ(set_aside, 1);
}

TEST_F(DaemonTest, AFailedStepIsNamedInTheMessage) {
  DaemonOptions o = options();
  o.device_policy_file = state_ / "no-such-policy.json";
  auto failed = Daemon::open(o);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, Code::kNotFound);
  EXPECT_EQ(failed.error().message.rfind("device policy: NOT_FOUND: ", 0), 0u) << failed.error().message;
}

// Requests may not name the state directory's files, so an image root inside it is refused at
// startup; one beside it (a name that only starts like it) is not.
TEST_F(DaemonTest, AnImageRootInsideTheStateDirectoryIsRefused) {
  for (const std::string& root : {state_ / "images-local", state_.path(), state_ / "vms/../local"}) {
    DaemonOptions o = options();
    o.qemu.image_roots = {root};
    auto failed = Daemon::open(o);
    ASSERT_FALSE(failed) << root;
    EXPECT_EQ(failed.error().code, Code::kInvalidArgument);
    EXPECT_EQ(failed.error().message,
              "--image-root " + root + " lies inside the state directory " + state_.path() +
                  ", whose files no request may name (the database, the VMs' runtime files, the image cache): "
                  "keep VM images outside it");
  }
  DaemonOptions beside = options();
  beside.qemu.image_roots = {state_.path() + "-images"};
  EXPECT_TRUE(Daemon::open(beside)) << "a root beside the state directory";
}

// A registry with credentials must be reached over TLS: credentials for an --insecure-registry
// host stop the daemon at startup, saying why.
TEST_F(DaemonTest, CredentialsForAPlainHttpRegistryAreRefused) {
  DaemonOptions o = options();
  const std::string file = state_ / "credentials.json";
  std::ofstream(file) << R"({"registries": {"registry.lan:5000": {"username": "u", "password": "p"}}})";
  o.images.credentials_file = file;
  o.images.insecure_registries = {"registry.lan:5000"};
  auto failed = Daemon::open(o);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, Code::kInvalidArgument);
  EXPECT_NE(failed.error().message.find("credentials for registry.lan:5000, which --insecure-registry reaches over "
                                        "plain HTTP: feosd sends credentials only over TLS"),
            std::string::npos)
      << failed.error().message;
  o.images.insecure_registries = {"other.lan:5000"};
  EXPECT_TRUE(Daemon::open(o)) << "credentials for a TLS registry";
}

}  // namespace
}  // namespace feos::daemon
