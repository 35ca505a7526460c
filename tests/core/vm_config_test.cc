#include "core/vm_config.h"

#include <gtest/gtest.h>


#include "model/limits.h"

namespace feos::core {
namespace {

// What VmManager hands to its ImageStore: everything that is neither a path nor a URL.
TEST(VmConfigTest, NamesRegistryImage) {
  EXPECT_TRUE(model::names_registry_image("ghcr.io/ironcore-dev/os-images/gardenlinux:1877.0"));
  EXPECT_TRUE(model::names_registry_image("ubuntu"));  // then refused by the store's parser
  EXPECT_FALSE(model::names_registry_image(""));
  EXPECT_FALSE(model::names_registry_image("/var/lib/images/a.raw"));
  EXPECT_FALSE(model::names_registry_image("file:///a.raw"));
  EXPECT_FALSE(model::names_registry_image("https://ghcr.io/x"));
}

TEST(VmConfigTest, ImageRefs) {
  EXPECT_EQ(*resolve_image_ref(""), "");
  EXPECT_EQ(*resolve_image_ref("/var/lib/images/a.qcow2"), "/var/lib/images/a.qcow2");
  EXPECT_EQ(*resolve_image_ref("file:///var/lib/images/a.raw"), "/var/lib/images/a.raw");
  auto oci = resolve_image_ref("ghcr.io/ironcore-dev/os-images/gardenlinux:1877.0");
  ASSERT_FALSE(oci);
  EXPECT_EQ(oci.error().code, Code::kUnimplemented);
  EXPECT_NE(oci.error().message.find("ghcr.io/ironcore-dev"), std::string::npos);
  for (const char* bad : {"http://x/y.img", "file://relative/x", "/a/../etc/shadow", "/a/.."}) {
    auto r = resolve_image_ref(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Code::kInvalidArgument) << bad;
  }
}

// image_ref is bounded before it is parsed: the limit of model/limits.h, in bytes as given.
TEST(VmConfigTest, ImageRefLimit) {
  const std::string prefix = "file:///";
  std::string at_limit = prefix + std::string(model::kMaxImageRef - prefix.size(), 'a');
  EXPECT_EQ(*resolve_image_ref(at_limit), at_limit.substr(7));
  auto over = resolve_image_ref(at_limit + "a");
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, Code::kInvalidArgument);
  EXPECT_EQ(over.error().message, "config.image_ref: 4097 bytes is longer than the limit of 4096");
  // Not an OCI reference (UNIMPLEMENTED) when it is too long or holds a NUL.
  EXPECT_EQ(resolve_image_ref(std::string(model::kMaxImageRef + 1, 'a')).error().code, Code::kInvalidArgument);
  auto nul = resolve_image_ref(std::string("registry/x\0y", 12));
  ASSERT_FALSE(nul);
  EXPECT_EQ(nul.error().message, "config.image_ref: contains a NUL byte");
}

// normalize_spec() only resolves the image; whether there is something to boot is
// model::validate()'s.
TEST(VmConfigTest, NormalizeFillsTheImagePath) {
  model::VmSpec spec;
  spec.image_ref = "file:///img.raw";
  EXPECT_EQ(normalize_spec(spec)->image_path, "/img.raw");
  spec.image_ref.clear();
  EXPECT_EQ(normalize_spec(spec)->image_path, "");
  spec.image_ref = "http://x/y.img";
  EXPECT_EQ(normalize_spec(spec).error().message,
            "config.image_ref: 'http://x/y.img': only file:// URLs and absolute paths are supported");
}

}  // namespace
}  // namespace feos::core
