#include "image/reference.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace feos::image {
namespace {

const std::string kDigest = "sha256:" + std::string(64, 'a');

TEST(ReferenceTest, ParsesTagsDigestsAndPorts) {
  auto r = parse_reference("ghcr.io/ironcore-dev/os-images/gardenlinux:1877.0");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->registry, "ghcr.io");
  EXPECT_EQ(r->repository, "ironcore-dev/os-images/gardenlinux");
  EXPECT_EQ(r->tag, "1877.0");
  EXPECT_EQ(r->manifest_key(), "1877.0");

  r = parse_reference("localhost:5000/feos/disk@" + kDigest);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->registry, "localhost:5000");
  EXPECT_EQ(r->repository, "feos/disk");
  EXPECT_EQ(r->tag, "");
  EXPECT_EQ(r->manifest_key(), kDigest);
  EXPECT_EQ(r->text(), "localhost:5000/feos/disk@" + kDigest);

  r = parse_reference("127.0.0.1:5000/a/b_c__d.e-f:v1.2@" + kDigest);  // tag and digest: the digest decides
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->tag, "v1.2");
  EXPECT_EQ(r->manifest_key(), kDigest);

  r = parse_reference("registry.example.com/os");  // no tag: latest
  ASSERT_TRUE(r);
  EXPECT_EQ(r->tag, "latest");
  EXPECT_EQ(r->text(), "registry.example.com/os:latest");
}

TEST(ReferenceTest, RefusesWhatIsNotAReference) {
  for (const std::string& bad : std::vector<std::string>{
           "ubuntu:22.04",                            // no registry
           "registry.example.com/",                   // no repository
           "registry.example.com/Upper:1",            // upper case repository
           "registry.example.com/a//b:1",             // empty component
           "registry.example.com/a-:1",               // component ends in a separator
           "registry.example.com/a:",                 // empty tag
           "registry.example.com/a:-x",               // tag starts with '-'
           "registry.example.com/a:" + std::string(129, 'x'),
           "registry.example.com/a@sha256:abc",       // short digest
           "registry.example.com/a@sha512:" + std::string(128, 'a'),
           "registry.example.com/a@" + std::string("sha256:") + std::string(64, 'A'),
           "registry.example.com:0/a:1",              // port 0
           "registry.example.com:70000/a:1",
           "registry.example.com:/a:1",
           "-bad.example.com/a:1",
           "reg istry/a:1",
           std::string("registry.example.com/a\0b:1", 26),
       }) {
    auto r = parse_reference(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Code::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace feos::image
