#pragma once
// The fixture of the tests against a real registry (registry_test.cc, pull_concurrency_test.cc):
// docker-registry over TLS on localhost (test_registry.h), a fresh cache per test, and FeOS
// images pushed by the test. Skips when the registry binary is missing.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "image/oci_image_store.h"
#include "image/test_registry.h"
#include "support/temp_dir.h"

namespace feos::image {

using test::Layer;
using test::TestRegistry;

inline constexpr const char* kLegacyConfig = "application/vnd.ironcore.image.config.v1alpha1+json";
inline constexpr const char* kLegacyRootfs = "application/vnd.ironcore.image.rootfs.v1alpha1.rootfs";
inline constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";

inline std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline size_t count_files(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(test::kRegistryBinary, X_OK) != 0) GTEST_SKIP() << test::kRegistryBinary << " missing (docker-registry)";
    std::filesystem::create_directories(dir_ / "registry");
    registry_ = std::make_unique<TestRegistry>(dir_ / "registry", dir_ / "storage", /*tls=*/true);
  }

  ImageStoreOptions store_options() {
    ImageStoreOptions options;
    options.cache_dir = dir_ / "cache";
    options.registry.ca_file = registry_->ca_file();
    return options;
  }
  std::unique_ptr<OciImageStore> open_store(ImageStoreOptions options) {
    auto store = OciImageStore::open(std::move(options));
    EXPECT_TRUE(store) << store.error().to_string();
    return std::move(*store);
  }

  // Pushes a FeOS image (legacy media types) with `disk` as its rootfs; returns the manifest digest.
  std::string push_feos_image(const std::string& repo, const std::string& tag, const std::string& disk,
                              std::vector<Layer> extra = {}, const std::string& config_type = kLegacyConfig) {
    std::string config = registry_->push_blob(repo, "{}");
    std::vector<Layer> layers = {{kLegacyRootfs, registry_->push_blob(repo, disk), disk.size()}};
    for (auto& layer : extra) layers.push_back(layer);
    return registry_->push_manifest(repo, tag, kOciManifest, test::image_manifest(config_type, config, layers));
  }

  std::string ref(const std::string& rest) const { return registry_->host() + "/" + rest; }

  test::TempDir dir_;
  std::unique_ptr<TestRegistry> registry_;
};

}  // namespace feos::image
