#include "image/layout.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "image/sha256.h"

namespace feos::image {
namespace {

using nlohmann::json;

// A distinct valid digest per letter.
std::string digest(char c) { return Sha256::of(std::string(1, c)); }

std::string manifest(const std::string& config, const std::vector<std::pair<std::string, char>>& layers) {
  json m = {{"schemaVersion", 2},
            {"config", {{"mediaType", config}, {"digest", digest('c')}, {"size", 2}}},
            {"layers", json::array()}};
  for (const auto& [type, c] : layers) m["layers"].push_back({{"mediaType", type}, {"digest", digest(c)}, {"size", 7}});
  return m.dump();
}

constexpr const char* kOci = "application/vnd.oci.image.manifest.v1+json";

TEST(LayoutTest, FeosLayoutGivesTheRootfsLayer) {
  auto step = read_manifest(kOci,
                            manifest("application/vnd.ironcore.image.config.v1alpha1+json",
                                     {{"application/vnd.ironcore.image.vmlinuz.v1alpha1.vmlinuz", 'k'},
                                      {"application/vnd.ironcore.image.rootfs.v1alpha1.rootfs", 'r'},
                                      {"application/vnd.ironcore.image.initramfs.v1alpha1.initramfs", 'i'}}),
                            "amd64");
  ASSERT_TRUE(step) << step.error().to_string();
  EXPECT_FALSE(step->is_index);
  EXPECT_EQ(step->next.digest, digest('r'));
  EXPECT_EQ(step->next.size, 7u);
}

TEST(LayoutTest, NewerIronCoreRootfsWinsOverLegacy) {
  for (const char* type : {kOci, "application/vnd.ironcore.image.artifacts.v1+json", ""}) {
    auto step = read_manifest(type,
                              manifest("application/vnd.ironcore.image.config.v1+json",
                                       {{"application/vnd.ironcore.image.rootfs", 'n'},
                                        {"application/vnd.ironcore.image.rootfs.v1alpha1.rootfs", 'l'},
                                        {"application/vnd.ironcore.image.uki", 'u'}}),
                              "amd64");
    ASSERT_TRUE(step) << step.error().to_string();
    EXPECT_EQ(step->next.digest, digest('n')) << type;
  }
}

TEST(LayoutTest, RefusesUnknownTypesAndMissingRootfs) {
  auto refused = [](const std::string& type, const std::string& body, const std::string& words) {
    auto step = read_manifest(type, body, "amd64");
    ASSERT_FALSE(step) << body;
    EXPECT_EQ(step.error().code, Code::kFailedPrecondition);
    EXPECT_NE(step.error().message.find(words), std::string::npos) << step.error().message;
  };
  refused(kOci, manifest("application/vnd.ironcore.image.config.v1+json", {{"text/plain", 'x'}}),
          "unknown media type 'text/plain'");
  refused(kOci, manifest("application/vnd.oci.image.config.v1+json", {{"application/vnd.ironcore.image.rootfs", 'r'}}),
          "unknown config media type");
  refused("application/vnd.example+json", manifest("application/vnd.ironcore.image.config.v1+json", {}),
          "unknown manifest media type");
  refused(kOci, manifest("application/vnd.ironcore.image.config.v1+json", {{"application/vnd.ironcore.image.kernel", 'k'}}),
          "missing layer");
  refused(kOci, "[1, 2]", "not a JSON object");
}

TEST(LayoutTest, IndexPicksArchitectureAndPrefersVirtualization) {
  json index = {{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.index.v1+json"}, {"manifests", json::array()}};
  auto entry = [&](char c, const char* arch, const char* variant) {
    json e = {{"mediaType", "application/vnd.ironcore.image.artifacts.v1+json"}, {"digest", digest(c)}, {"size", 10},
              {"platform", {{"architecture", arch}, {"os", "linux"}}}};
    if (variant) e["annotations"] = {{"variant", variant}};
    index["manifests"].push_back(e);
  };
  entry('a', "arm64", nullptr);
  entry('m', "amd64", "metal");
  entry('v', "amd64", "virtualization");
  auto step = read_manifest("application/vnd.oci.image.index.v1+json", index.dump(), "amd64");
  ASSERT_TRUE(step) << step.error().to_string();
  EXPECT_TRUE(step->is_index);
  EXPECT_EQ(step->next.digest, digest('v'));
  step = read_manifest("", index.dump(), "arm64");
  ASSERT_TRUE(step);
  EXPECT_EQ(step->next.digest, digest('a'));
  auto none = read_manifest("", index.dump(), "riscv64");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("no entry for linux/riscv64"), std::string::npos);
}

}  // namespace
}  // namespace feos::image
