// OciImageStore against a real registry (Debian's docker-registry) on localhost with a
// self-signed certificate; images pushed by the test (test_registry.h). Skipped when the
// registry binary is missing (scripts/install-deps.sh installs it).
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "image/registry_fixture.h"
#include "image/sha256.h"

namespace feos::image {
namespace {

TEST_F(RegistryTest, PullsFeosImageThenHitsCache) {
  const std::string disk = test::random_bytes(64 << 20, 1);
  const std::string manifest = push_feos_image("feos/disk", "v1", disk);
  auto store = open_store(store_options());

  auto start = std::chrono::steady_clock::now();
  auto first = store->pull(ref("feos/disk:v1"));
  double pull_s = seconds_since(start);
  ASSERT_TRUE(first) << first.error().to_string();
  EXPECT_EQ(first->bytes_pulled, disk.size());
  EXPECT_EQ(first->bytes_total, disk.size());
  EXPECT_EQ(first->manifest_digest, manifest);
  EXPECT_EQ(first->registry_url, registry_->url());
  EXPECT_TRUE(read(first->disk_path) == disk) << "the cached disk differs from the pushed layer";

  start = std::chrono::steady_clock::now();
  auto second = store->pull(ref("feos/disk:v1"));
  double hit_s = seconds_since(start);
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ(second->bytes_pulled, 0u);
  EXPECT_EQ(second->disk_path, first->disk_path);
  std::printf("pull of a 64 MiB image over TLS from localhost: %.3f s (%.1f MiB/s); cache hit (tag -> manifest "
              "request only): %.1f ms\n",
              pull_s, 64 / pull_s, hit_s * 1000);

  // By digest with the registry gone: manifest and disk come from the cache alone.
  registry_->stop();
  start = std::chrono::steady_clock::now();
  auto pinned = store->pull(ref("feos/disk@" + manifest));
  ASSERT_TRUE(pinned) << pinned.error().to_string();
  EXPECT_EQ(pinned->bytes_pulled, 0u);
  std::printf("cache hit by digest, registry stopped: %.2f ms\n", seconds_since(start) * 1000);
}

TEST_F(RegistryTest, UnknownDigestIsNotFound) {
  push_feos_image("feos/disk", "v1", "disk bytes");
  auto store = open_store(store_options());
  const std::string wrong = "sha256:" + std::string(64, 'a');
  auto pulled = store->pull(ref("feos/disk@" + wrong));
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code, Code::kNotFound) << pulled.error().to_string();  // the registry knows no such manifest
}

TEST_F(RegistryTest, TamperedBlobIsRefusedAndNothingCached) {
  const std::string disk = test::random_bytes(1 << 20, 2);
  push_feos_image("feos/disk", "v1", disk);
  // Corrupt the registry's copy of the layer on disk (same size): it serves what it stores.
  const std::string digest = Sha256::of(disk);
  const std::string hex = digest.substr(7);
  const std::string data = dir_ / "storage" + "/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" + hex + "/data";
  {
    std::fstream f(data, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f) << data;
    f.seekp(4096);
    f.write("tampered", 8);
  }
  auto store = open_store(store_options());
  auto pulled = store->pull(ref("feos/disk:v1"));
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code, Code::kFailedPrecondition);
  EXPECT_NE(pulled.error().message.find("digest mismatch"), std::string::npos) << pulled.error().message;
  EXPECT_NE(pulled.error().message.find(registry_->url()), std::string::npos) << pulled.error().message;
  EXPECT_NE(pulled.error().message.find("feos/disk:v1"), std::string::npos) << pulled.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "cache" + "/blobs/sha256/" + hex));
  EXPECT_EQ(count_files(dir_ / "cache/tmp"), 0u);
}

TEST_F(RegistryTest, UnknownMediaTypesAndMissingLayerAreRefused) {
  const std::string other = registry_->push_blob("feos/odd", "x");
  push_feos_image("feos/odd", "layer", "disk", {{"application/vnd.example.unknown", other, 1}});
  push_feos_image("feos/odd", "container", "disk", {}, "application/vnd.oci.image.config.v1+json");
  const std::string config = registry_->push_blob("feos/odd", "{}");
  registry_->push_manifest("feos/odd", "nodisk", kOciManifest,
                           test::image_manifest(kLegacyConfig, config,
                                                {{"application/vnd.ironcore.image.squashfs.v1alpha1.squashfs", other, 1}}));
  auto store = open_store(store_options());
  auto layer = store->pull(ref("feos/odd:layer"));
  ASSERT_FALSE(layer);
  EXPECT_EQ(layer.error().code, Code::kFailedPrecondition);
  EXPECT_NE(layer.error().message.find("unknown media type 'application/vnd.example.unknown'"), std::string::npos)
      << layer.error().message;
  auto container = store->pull(ref("feos/odd:container"));
  ASSERT_FALSE(container);
  EXPECT_NE(container.error().message.find("unknown config media type"), std::string::npos) << container.error().message;
  auto nodisk = store->pull(ref("feos/odd:nodisk"));
  ASSERT_FALSE(nodisk);
  EXPECT_EQ(nodisk.error().code, Code::kFailedPrecondition);
  EXPECT_NE(nodisk.error().message.find("missing layer"), std::string::npos) << nodisk.error().message;
}

TEST_F(RegistryTest, IronCoreIndexPicksThisArchitecture) {
  const std::string repo = "ironcore/os";
  const std::string disk = "ironcore disk for amd64";
  const std::string config = registry_->push_blob(repo, "{}");
  auto manifest_of = [&](const std::string& bytes) {
    return test::image_manifest("application/vnd.ironcore.image.config.v1+json", config,
                                {{"application/vnd.ironcore.image.rootfs", registry_->push_blob(repo, bytes), bytes.size()}});
  };
  const std::string amd64_body = manifest_of(disk), arm64_body = manifest_of("ironcore disk for arm64");
  const std::string amd64 = registry_->push_manifest(repo, "amd64", kOciManifest, amd64_body);
  const std::string arm64 = registry_->push_manifest(repo, "arm64", kOciManifest, arm64_body);
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", "application/vnd.oci.image.index.v1+json"},
                          {"manifests", nlohmann::json::array()}};
  for (const auto& [digest, size, arch] : {std::tuple{arm64, arm64_body.size(), "arm64"},
                                           std::tuple{amd64, amd64_body.size(), "amd64"}})
    index["manifests"].push_back({{"mediaType", kOciManifest}, {"digest", digest}, {"size", size},
                                  {"platform", {{"architecture", arch}, {"os", "linux"}}}});
  registry_->push_manifest(repo, "1.0", "application/vnd.oci.image.index.v1+json", index.dump());
  ImageStoreOptions options = store_options();
  options.architecture = "amd64";
  auto store = open_store(options);
  auto pulled = store->pull(ref(repo + ":1.0"));
  ASSERT_TRUE(pulled) << pulled.error().to_string();
  EXPECT_EQ(read(pulled->disk_path), disk);
  EXPECT_EQ(pulled->manifest_digest, amd64);
}

TEST_F(RegistryTest, MissingTagOrRepositoryIsNotFound) {
  push_feos_image("feos/disk", "v1", "disk");
  auto store = open_store(store_options());
  for (const char* missing : {"feos/disk:v2", "feos/nothing:v1"}) {
    auto pulled = store->pull(ref(missing));
    ASSERT_FALSE(pulled) << missing;
    EXPECT_EQ(pulled.error().code, Code::kNotFound) << pulled.error().to_string();
    EXPECT_NE(pulled.error().message.find(registry_->url()), std::string::npos) << pulled.error().message;
  }
  auto malformed = store->pull(ref("Feos/Disk:v1"));
  ASSERT_FALSE(malformed);
  EXPECT_EQ(malformed.error().code, Code::kInvalidArgument);
}

TEST_F(RegistryTest, BlobOverTheLimitIsRefusedBeforeDownload) {
  push_feos_image("feos/disk", "v1", test::random_bytes(2 << 20, 3));
  ImageStoreOptions options = store_options();
  options.max_blob_bytes = 1 << 20;
  auto store = open_store(options);
  auto pulled = store->pull(ref("feos/disk:v1"));
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code, Code::kResourceExhausted) << pulled.error().to_string();
  EXPECT_NE(pulled.error().message.find("--image-max-blob-size"), std::string::npos);
}

TEST_F(RegistryTest, UntrustedCertificateAndUnreachableRegistryAreUnavailable) {
  push_feos_image("feos/disk", "v1", "disk");
  ImageStoreOptions options = store_options();
  options.registry.ca_file.clear();  // only the system's CAs: the test's certificate is unknown to them
  auto store = open_store(options);
  auto untrusted = store->pull(ref("feos/disk:v1"));
  ASSERT_FALSE(untrusted);
  EXPECT_EQ(untrusted.error().code, Code::kUnavailable) << untrusted.error().to_string();

  const std::string closed = "127.0.0.1:" + std::to_string(TestRegistry::free_port());
  auto unreachable = open_store(store_options())->pull(closed + "/feos/disk:v1");
  ASSERT_FALSE(unreachable);
  EXPECT_EQ(unreachable.error().code, Code::kUnavailable) << unreachable.error().to_string();
  EXPECT_NE(unreachable.error().message.find("https://" + closed), std::string::npos) << unreachable.error().message;
}

TEST_F(RegistryTest, PlainHttpOnlyForListedRegistries) {
  push_feos_image("feos/disk", "v1", "plain disk");
  std::filesystem::create_directories(dir_ / "plain");
  TestRegistry plain(dir_ / "plain", dir_ / "storage", /*tls=*/false);
  auto refused = open_store(store_options())->pull(plain.host() + "/feos/disk:v1");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kUnavailable) << refused.error().to_string();
  EXPECT_NE(refused.error().message.find("--insecure-registry"), std::string::npos) << refused.error().message;

  ImageStoreOptions options = store_options();
  options.cache_dir = dir_ / "cache-plain";
  options.registry.insecure_registries = {plain.host()};
  auto pulled = open_store(options)->pull(plain.host() + "/feos/disk:v1");
  ASSERT_TRUE(pulled) << pulled.error().to_string();
  EXPECT_EQ(read(pulled->disk_path), "plain disk");
  EXPECT_EQ(pulled->registry_url, "http://" + plain.host());
}

TEST_F(RegistryTest, BasicAuthOverTls) {
  push_feos_image("feos/private", "v1", "private disk");
  std::filesystem::create_directories(dir_ / "basic");
  TestRegistry guarded(dir_ / "basic", dir_ / "storage", /*tls=*/true, {test::RegistryAuth::kBasic});
  const std::string image = guarded.host() + "/feos/private:v1";
  ImageStoreOptions options = store_options();
  options.registry.ca_file = guarded.ca_file();
  auto anonymous = open_store(options)->pull(image);
  ASSERT_FALSE(anonymous);
  EXPECT_EQ(anonymous.error().code, Code::kUnauthenticated) << anonymous.error().to_string();
  EXPECT_NE(anonymous.error().message.find("none are configured"), std::string::npos) << anonymous.error().message;

  options.registry.credentials[guarded.host()] = {"feos", "wrong"};
  auto wrong = open_store(options)->pull(image);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, Code::kUnauthenticated) << wrong.error().to_string();

  options.registry.credentials[guarded.host()] = {"feos", "s3cret"};
  auto pulled = open_store(options)->pull(image);
  ASSERT_TRUE(pulled) << pulled.error().to_string();
  EXPECT_EQ(read(pulled->disk_path), "private disk");
}

TEST_F(RegistryTest, BearerTokenAuth) {
  push_feos_image("feos/private", "v1", "token disk");
  std::filesystem::create_directories(dir_ / "token");
  TestRegistry guarded(dir_ / "token", dir_ / "storage", /*tls=*/true, {test::RegistryAuth::kToken});
  const std::string image = guarded.host() + "/feos/private:v1";
  ImageStoreOptions options = store_options();
  options.registry.ca_file = guarded.ca_file();
  auto anonymous = open_store(options)->pull(image);
  ASSERT_FALSE(anonymous);
  EXPECT_EQ(anonymous.error().code, Code::kUnauthenticated) << anonymous.error().to_string();
  EXPECT_NE(anonymous.error().message.find("token endpoint"), std::string::npos) << anonymous.error().message;

  options.registry.credentials[guarded.host()] = {"feos", "s3cret"};
  auto pulled = open_store(options)->pull(image);
  ASSERT_TRUE(pulled) << pulled.error().to_string();
  EXPECT_EQ(read(pulled->disk_path), "token disk");
}

TEST_F(RegistryTest, VmDiskIsAnOverlayPinnedUntilReleased) {
  const std::string disk = test::random_bytes(1 << 20, 4);
  push_feos_image("feos/disk", "v1", disk);
  ImageStoreOptions options = store_options();
  auto store = open_store(options);
  auto pulled = store->pull(ref("feos/disk:v1"));
  ASSERT_TRUE(pulled) << pulled.error().to_string();
  const std::string vm = "0b9d3f0e-5a43-4a55-9c47-2f0e6f7e1a10";
  auto overlay = store->attach(vm, *pulled);
  ASSERT_TRUE(overlay) << overlay.error().to_string();
  EXPECT_EQ(*overlay, options.cache_dir + "/vms/" + vm + "/disk.qcow2");
  // qemu-img itself reads the overlay: qcow2 over the cached raw image.
  std::string info_cmd = "/usr/bin/qemu-img info --output=json " + *overlay;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(info_cmd.c_str(), "r"), ::pclose);
  std::string info;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe.get())) info.append(buffer, n);
  auto json = nlohmann::json::parse(info);
  EXPECT_EQ(json["format"], "qcow2");
  EXPECT_EQ(json["backing-filename"], pulled->disk_path);
  EXPECT_EQ(json["backing-filename-format"], "raw");
  EXPECT_EQ(json["virtual-size"], disk.size());
  EXPECT_TRUE(store->release(vm));
  EXPECT_FALSE(std::filesystem::exists(options.cache_dir + "/vms/" + vm));
  EXPECT_TRUE(std::filesystem::exists(pulled->disk_path));
}

}  // namespace
}  // namespace feos::image
