#include "core/vm_config.h"

#include <gtest/gtest.h>

#include <set>

namespace feos::core {
namespace {

TEST(VmConfigTest, VmIds) {
  EXPECT_TRUE(validate_vm_id("123e4567-e89b-12d3-a456-426614174000"));
  EXPECT_TRUE(validate_vm_id("123E4567-E89B-12D3-A456-426614174000"));
  for (const char* bad : {"", "abc", "../../etc/passwd", "123e4567-e89b-12d3-a456-42661417400",
                          "123e4567-e89b-12d3-a456-4266141740000", "123e4567xe89b-12d3-a456-426614174000",
                          "123e4567-e89b-12d3-a456-42661417400/", "g23e4567-e89b-12d3-a456-426614174000"}) {
    auto result = validate_vm_id(bad);
    ASSERT_FALSE(result) << bad;
    EXPECT_EQ(result.error().code, Code::kInvalidArgument);
  }
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    auto id = new_vm_id();
    EXPECT_TRUE(validate_vm_id(id)) << id;
    EXPECT_EQ(id[14], '4');
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 100u);
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

TEST(VmConfigTest, NothingToBoot) {
  model::VmSpec spec;
  auto r = normalize_spec(spec);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  spec.boot.kernel = "/boot/vmlinuz";
  EXPECT_TRUE(normalize_spec(spec));
  spec.boot.kernel.clear();
  spec.image_ref = "file:///img.raw";
  EXPECT_EQ(normalize_spec(spec)->image_path, "/img.raw");
}

}  // namespace
}  // namespace feos::core
