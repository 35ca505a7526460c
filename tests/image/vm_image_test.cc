// VmManager with a registry image: the real OciImageStore against a real registry
// (test_registry.h), the fake hypervisor of the core tests. Create gives each VM its own overlay
// over the one cached image and says in an event how many bytes came from the registry; delete
// removes the overlay and leaves the image to the cache.
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "core/fake_hypervisor.h"
#include "core/vm_manager.h"
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
    image::ImageStoreOptions options;
    options.cache_dir = temp_ / "images";
    options.registry.ca_file = registry_->ca_file();
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
  Result<model::VmId> create(const std::string& image_ref) {
    model::VmSpec spec;
    spec.image_ref = image_ref;
    return manager_->create(spec, std::nullopt);
  }
  std::string image_event(const model::VmId& id) {
    store::EventFilter filter;
    filter.vm_id = id.text();
    auto events = manager_->history(filter);
    EXPECT_TRUE(events);
    for (const auto& e : *events)
      if (e.component_id == "image") return e.reason;
    return "";
  }

  test::TempDir temp_;
  std::string dir_ = temp_.path();
  std::string disk_ = test::random_bytes(1 << 20, 7);
  std::unique_ptr<test::TestRegistry> registry_;
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

TEST_F(VmImageTest, FailedPullRecordsNothing) {
  auto missing = create(registry_->host() + "/feos/disk:v2");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_EQ(missing.error().message.rfind("config.image_ref: image '", 0), 0u) << missing.error().message;
  auto malformed = create("no-registry-here");
  ASSERT_FALSE(malformed);
  EXPECT_EQ(malformed.error().code, Code::kInvalidArgument);
  EXPECT_TRUE(manager_->list().empty());
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/images/vms"));
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
