// VmManager with a registry image: the real OciImageStore against a real registry
// (test_registry.h), the fake hypervisor of the core tests. Create gives each VM its own overlay
// over the one cached image and says in an event how many bytes came from the registry; delete
// removes the overlay and leaves the image to the cache.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "core/fake_hypervisor.h"
#include "core/vm_manager.h"
#include "core/wait_created.h"
#include "image/oci_image_store.h"
#include "image/test_registry.h"
#include "support/temp_dir.h"

namespace feos::core {
namespace {

class VmImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(test::kRegistryBinary, X_OK) != 0) GTEST_SKIP() << test::kRegistryBinary << " missing (docker-registry)";
    std::filesystem::create_directories(temp_ / "registry");
    std::filesystem::create_directories(temp_ / "vms");
    registry_ = std::make_unique<test::TestRegistry>(temp_ / "registry", temp_ / "storage", true);
    const std::string repo = "feos/disk";
    const std::string config = registry_->push_blob(repo, "{}");
    const std::string layer = registry_->push_blob(repo, disk_);
    registry_->push_manifest(repo, "v1", "application/vnd.oci.image.manifest.v1+json",
                             test::image_manifest("application/vnd.ironcore.image.config.v1alpha1+json", config,
                                                  {{"application/vnd.ironcore.image.rootfs.v1alpha1.rootfs", layer,
                                                    disk_.size()}}));
    // The same registry behind a link of 4 MiB/s (tests/image/throttle_proxy.py): a pull in
    // flight long enough for another VM to wait for it.
    std::filesystem::create_directories(temp_ / "proxy");
    proxy_ = std::make_unique<test::ThrottleProxy>(temp_ / "proxy", *registry_, 4 << 20);
    image::ImageStoreOptions options;
    options.cache_dir = temp_ / "images";
    options.registry.ca_file = registry_->ca_file();
    options.registry.insecure_registries = {proxy_->host()};
    auto store = image::OciImageStore::open(options);
    ASSERT_TRUE(store) << store.error().to_string();
    store_ = std::move(*store);
    auto db = store::Database::open(temp_ / "feosd.db");
    ASSERT_TRUE(db) << db.error().to_string();
    db_ = std::move(*db);
    manager_ = std::make_unique<VmManager>(*db_, hv_, nullptr, bus_, temp_ / "vms", VmLimits{}, ShutdownOptions{}, store_.get());
    ASSERT_TRUE(manager_->recover());
  }
  void TearDown() override {
    manager_.reset();
    db_.reset();
  }
  // CreateVm's answer (the VM creating); the pull runs in the background.
  Result<model::VmId> create_no_wait(const std::string& image_ref) {
    model::VmSpec spec;
    spec.image_ref = image_ref;
    return manager_->create(spec, std::nullopt);
  }
  // ... and until the VM left creating.
  Result<model::VmId> create(const std::string& image_ref) {
    auto id = create_no_wait(image_ref);
    if (id) (void)wait_created(*manager_, *id);
    return id;
  }
  std::vector<std::string> events(const model::VmId& id) {
    auto got = manager_->history({.vm_id = id.text()});
    EXPECT_TRUE(got);
    std::vector<std::string> out;
    for (const auto& e : got ? *got : std::vector<model::VmEvent>{})
      out.push_back(e.component_id + " " + std::string(model::state_name(e.state)) + ": " + e.reason);
    return out;
  }
  // The last "image" event: what the pull brought.
  std::string image_event(const model::VmId& id) {
    std::string last;
    auto events = manager_->history({.vm_id = id.text()});
    EXPECT_TRUE(events);
    for (const auto& e : events ? *events : std::vector<model::VmEvent>{})
      if (e.component_id == "image") last = e.reason;
    return last;
  }

  test::TempDir temp_;
  std::string dir_ = temp_.path();
  std::string disk_ = test::random_bytes(1 << 20, 7);
  std::unique_ptr<test::TestRegistry> registry_;
  std::unique_ptr<test::ThrottleProxy> proxy_;
  std::unique_ptr<image::OciImageStore> store_;
  FakeHypervisor hv_;
  EventBus bus_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<VmManager> manager_;
};

TEST_F(VmImageTest, EachVmGetsItsOwnDiskOverOneCachedImage) {
  const std::string ref = registry_->host() + "/feos/disk:v1";
  auto first = create(ref);
  ASSERT_TRUE(first) << first.error().to_string();
  auto record = manager_->get(*first);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->spec.image_ref, ref);
  EXPECT_EQ(record->spec.image_path, dir_ + "/images/vms/" + first->text() + "/disk.qcow2");
  EXPECT_EQ(record->spec.image_format, model::DiskFormat::kQcow2);
  EXPECT_TRUE(std::filesystem::exists(record->spec.image_path));
  EXPECT_NE(image_event(*first).find(std::to_string(disk_.size()) + " bytes pulled from " + registry_->url()),
            std::string::npos)
      << image_event(*first);

  auto second = create(ref);
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_NE(image_event(*second).find("from the cache, 0 bytes pulled"), std::string::npos) << image_event(*second);
  EXPECT_NE(manager_->get(*second)->spec.image_path, record->spec.image_path);

  ASSERT_TRUE(manager_->remove(*first));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/images/vms/" + first->text()));
  EXPECT_TRUE(std::filesystem::exists(manager_->get(*second)->spec.image_path));
}

// As FeOS when its image pull fails: the VM is crashed, its reason says what failed.
TEST_F(VmImageTest, AFailedPullCrashesTheVmWithTheReason) {
  const std::string ref = registry_->host() + "/feos/disk:v2";
  auto missing = create(ref);
  ASSERT_TRUE(missing) << missing.error().to_string();
  auto record = manager_->get(*missing);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->state, model::VmState::kCrashed);
  EXPECT_EQ(record->state_reason.rfind("create failed: image pull failed: config.image_ref: image '", 0), 0u)
      << record->state_reason;
  EXPECT_NE(record->state_reason.find(registry_->url()), std::string::npos) << record->state_reason;
  EXPECT_EQ(events(*missing), (std::vector<std::string>{"vm creating: creating", "image creating: pulling image " + ref,
                                                        "vm crashed: " + record->state_reason}));
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/images/vms"));
  ASSERT_TRUE(manager_->remove(*missing));
  // A malformed reference is refused before the answer: nothing recorded.
  auto malformed = create_no_wait("no-registry-here");
  ASSERT_FALSE(malformed);
  EXPECT_EQ(malformed.error().code, Code::kInvalidArgument);
  EXPECT_TRUE(manager_->list().empty());
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/images/vms"));
}

// A registry that accepts the connection and never answers: DeleteVm cancels the pull at once
// (the stall and connect timeouts are 30 s and 10 s) and the VM goes with nothing left behind.
TEST_F(VmImageTest, DeleteDuringAStalledPullCancelsItAndRollsBack) {
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string ref = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/feos/disk:v1";

  auto id = create_no_wait(ref);
  ASSERT_TRUE(id) << id.error().to_string();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(manager_->get(*id)->state, model::VmState::kCreating);
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(manager_->remove(*id));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
  EXPECT_EQ(manager_->get(*id).error().code, Code::kNotFound);
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/images/vms"));
  ::close(listener);
}

// Two VMs of one image: the second waits for the first one's download (the registry serves the
// disk once). DeleteVm of the waiting VM ends its wait at once and leaves the download to the
// first VM, which is created with the whole disk.
TEST_F(VmImageTest, DeletingAVmThatWaitsForAnotherVmsPullLeavesThatPull) {
  const std::string disk = test::random_bytes(8 << 20, 8);  // 2 s through the proxy
  const std::string config = registry_->push_blob("feos/big", "{}");
  const std::string layer = registry_->push_blob("feos/big", disk);
  registry_->push_manifest("feos/big", "v1", "application/vnd.oci.image.manifest.v1+json",
                           test::image_manifest("application/vnd.ironcore.image.config.v1alpha1+json", config,
                                                {{"application/vnd.ironcore.image.rootfs.v1alpha1.rootfs", layer,
                                                  disk.size()}}));
  const std::string ref = proxy_->host() + "/feos/big:v1";
  const std::string blob_get = "GET /v2/feos/big/blobs/" + layer;
  auto first = create_no_wait(ref);
  ASSERT_TRUE(first) << first.error().to_string();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (proxy_->count(blob_get) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(proxy_->count(blob_get), 1u);
  auto second = create_no_wait(ref);
  ASSERT_TRUE(second) << second.error().to_string();
  // Its manifest came (the first VM's and its own), so it waits for the disk.
  while (proxy_->count("END /v2/feos/big/manifests/v1") < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(manager_->remove(*second));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(1200));
  EXPECT_EQ(manager_->get(*first)->state, model::VmState::kCreating) << "the download goes on for the first VM";
  EXPECT_EQ(wait_created(*manager_, *first), model::VmState::kCreated);
  EXPECT_NE(image_event(*first).find(std::to_string(disk.size()) + " bytes pulled from http://" + proxy_->host()),
            std::string::npos)
      << image_event(*first);
  EXPECT_EQ(proxy_->count(blob_get), 1u);
  EXPECT_EQ(proxy_->count("END /v2/feos/big/blobs/" + layer + " " + std::to_string(disk.size())), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/images/vms/" + second->text()));
}

// A dry run checks the reference and pulls nothing: the create after it pulls every byte.
TEST_F(VmImageTest, ADryRunPullsNothing) {
  const std::string ref = registry_->host() + "/feos/disk:v1";
  model::VmSpec spec;
  spec.image_ref = ref;
  auto plan = manager_->plan_create(spec, std::nullopt);
  ASSERT_TRUE(plan) << plan.error().to_string();
  ASSERT_FALSE(plan->decisions.empty());
  EXPECT_NE(plan->decisions.front().find("a dry run does not"), std::string::npos) << plan->decisions.front();
  spec.image_ref = "no-registry-here";
  EXPECT_EQ(manager_->plan_create(spec, std::nullopt).error().code, Code::kInvalidArgument);
  auto id = create(ref);
  ASSERT_TRUE(id) << id.error().to_string();
  EXPECT_NE(image_event(*id).find(std::to_string(disk_.size()) + " bytes pulled from " + registry_->url()),
            std::string::npos)
      << image_event(*id);
}

// A crash between the VM's disk (attach) and its record leaves vms/<id>, which would pin the image
// forever: the next start removes it. A VM discarded with --discard-unknown-vms (its guest ran:
// a runtime directory) has its disk moved aside, unpinned. Recorded VMs keep theirs.
TEST_F(VmImageTest, DisksOfVmsTheDatabaseDoesNotKnowGoAtStart) {
  const std::string ref = registry_->host() + "/feos/disk:v1";
  auto kept = create(ref);
  ASSERT_TRUE(kept) << kept.error().to_string();
  auto pulled = store_->pull(ref);
  ASSERT_TRUE(pulled) << pulled.error().to_string();
  const std::string cut_short = model::VmId::random().canonical().text();
  const std::string discarded = model::VmId::random().canonical().text();
  ASSERT_TRUE(store_->attach(cut_short, *pulled));
  ASSERT_TRUE(store_->attach(discarded, *pulled));
  std::filesystem::create_directories(dir_ + "/vms/" + discarded);  // its runtime directory: it ran

  // Restart: a new manager over the same database and cache.
  manager_ = std::make_unique<VmManager>(*db_, hv_, nullptr, bus_, temp_ / "vms", VmLimits{}, ShutdownOptions{}, store_.get());
  auto refused = manager_->recover();  // the unknown runtime directory needs the operator's word
  ASSERT_FALSE(refused);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/images/vms/" + cut_short)) << "nothing changes on a refused start";
  manager_ = std::make_unique<VmManager>(*db_, hv_, nullptr, bus_, temp_ / "vms", VmLimits{}, ShutdownOptions{}, store_.get());
  auto recovered = manager_->recover({.discard_unknown_vms = true});
  ASSERT_TRUE(recovered) << recovered.error().to_string();

  EXPECT_FALSE(std::filesystem::exists(dir_ + "/images/vms/" + cut_short));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/images/vms/" + discarded));
  size_t aside = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/images/vms.discarded")) {
    EXPECT_EQ(entry.path().filename().string().rfind(discarded + "-", 0), 0u) << entry.path();
    EXPECT_TRUE(std::filesystem::exists(entry.path() / "disk.qcow2"));
    ++aside;
  }
  EXPECT_EQ(aside, 1u);
  auto record = manager_->get(*kept);
  ASSERT_TRUE(record);
  EXPECT_TRUE(std::filesystem::exists(record->spec.image_path));
  size_t disks = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/images/vms")) {
    EXPECT_EQ(entry.path().filename().string(), kept->text());
    ++disks;
  }
  EXPECT_EQ(disks, 1u);
  // Once the recorded VM goes, nothing pins the image any more.
  ASSERT_TRUE(manager_->remove(*kept));
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/images/vms"));
}

}  // namespace
}  // namespace feos::core
