// Request files on a real filesystem: roots, symlinks, file types, recorded formats, qcow2
// backing files.
#include "vmm/qemu/request_files.h"

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "temp_dir.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

void write(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

// A qcow2 header (version 3) naming `backing` (may be empty), padded to 512 bytes.
std::string qcow2_header(const std::string& backing) {
  std::string h(512, '\0');
  h.replace(0, 4, "QFI\xfb");
  h[7] = 3;
  if (!backing.empty()) {
    const uint64_t offset = 256;
    for (int i = 0; i < 8; ++i) h[8 + i] = static_cast<char>((offset >> (56 - 8 * i)) & 0xff);
    const uint32_t size = static_cast<uint32_t>(backing.size());
    for (int i = 0; i < 4; ++i) h[16 + i] = static_cast<char>((size >> (24 - 8 * i)) & 0xff);
    h.replace(offset, backing.size(), backing);
  }
  return h;
}

class RequestFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    images_ = dir_ / "images";
    write(images_ + "/root.raw", std::string(4096, 'x'));
    write(dir_ / "elsewhere/secret", "host secret");
  }
  TempDir dir_;
  std::string images_;
};

TEST_F(RequestFilesTest, RegularFilesInsideRootsPass) {
  EXPECT_TRUE(check_request_file(images_ + "/root.raw", "image_ref", {images_}));
  EXPECT_TRUE(check_request_file(images_ + "/root.raw", "image_ref", {}));
}

TEST_F(RequestFilesTest, MissingIsNotFound) {
  auto missing = check_request_file(images_ + "/nope", "disks[0].path", {images_});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_EQ(missing.error().message, "disks[0].path: " + images_ + "/nope not found");
}

TEST_F(RequestFilesTest, OutsideTheRootsIsRefused) {
  auto outside = check_request_file(dir_ / "elsewhere/secret", "boot.kernel", {images_});
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().code, Code::kPermissionDenied);
  EXPECT_THAT(outside.error().message, HasSubstr("is outside the directories VMs may use (" + images_ + ")"));
}

TEST_F(RequestFilesTest, SymlinkOutOfTheRootIsRefusedNamingItsTarget) {
  std::filesystem::create_symlink(dir_ / "elsewhere/secret", images_ + "/innocent.raw");
  auto escaped = check_request_file(images_ + "/innocent.raw", "image_ref", {images_});
  ASSERT_FALSE(escaped);
  EXPECT_EQ(escaped.error().code, Code::kPermissionDenied);
  EXPECT_THAT(escaped.error().message, HasSubstr("resolves to " + dir_ / "elsewhere/secret"));
  // A root that is itself a symlink is resolved too.
  std::filesystem::create_symlink(images_, dir_ / "images-link");
  EXPECT_TRUE(check_request_file(images_ + "/root.raw", "image_ref", {dir_ / "images-link"}));
}

TEST_F(RequestFilesTest, DirectoriesAndDevicesAreRefused) {
  auto directory = check_request_file(images_, "image_ref", {});
  ASSERT_FALSE(directory);
  EXPECT_EQ(directory.error().code, Code::kInvalidArgument);
  EXPECT_THAT(directory.error().message, HasSubstr("is not a regular file"));
  auto device = check_request_file("/dev/null", "disks[0].path", {});
  ASSERT_FALSE(device);
  EXPECT_EQ(device.error().code, Code::kInvalidArgument);
}

TEST_F(RequestFilesTest, FormatsAreRecordedOnceAndKept) {
  write(images_ + "/data.qcow2", qcow2_header(""));
  model::VmSpec spec;
  spec.image_path = images_ + "/root.raw";
  spec.disks.push_back({.device_id = "data", .path = images_ + "/data.qcow2"});
  auto admitted = check_spec_files(spec, {images_});
  ASSERT_TRUE(admitted) << admitted.error().to_string();
  EXPECT_EQ(admitted->image_format, model::DiskFormat::kRaw);
  EXPECT_EQ(admitted->disks[0].format, model::DiskFormat::kQcow2);
  // The guest writes a qcow2 header onto its raw disk: the recorded format still says raw.
  write(images_ + "/root.raw", qcow2_header(dir_ / "elsewhere/secret"));
  auto restarted = check_spec_files(*admitted, {});
  ASSERT_TRUE(restarted) << restarted.error().to_string();
  EXPECT_EQ(restarted->image_format, model::DiskFormat::kRaw);
}

TEST_F(RequestFilesTest, BackingFilesFollowTheSameRules) {
  write(images_ + "/base.raw", std::string(512, 'b'));
  write(images_ + "/overlay.qcow2", qcow2_header("base.raw"));  // relative to the image
  EXPECT_EQ(*check_disk_image(images_ + "/overlay.qcow2", "image_ref", {images_}),
            model::DiskFormat::kQcow2);

  write(images_ + "/sneaky.qcow2", qcow2_header(dir_ / "elsewhere/secret"));
  auto sneaky = check_disk_image(images_ + "/sneaky.qcow2", "image_ref", {images_});
  ASSERT_FALSE(sneaky);
  EXPECT_EQ(sneaky.error().code, Code::kPermissionDenied);
  EXPECT_THAT(sneaky.error().message,
              HasSubstr("image_ref (backing file of " + images_ + "/sneaky.qcow2)"));

  write(images_ + "/loop.qcow2", qcow2_header("loop.qcow2"));
  auto loop = check_disk_image(images_ + "/loop.qcow2", "image_ref", {images_});
  ASSERT_FALSE(loop);
  EXPECT_EQ(loop.error().code, Code::kInvalidArgument);
  EXPECT_THAT(loop.error().message, HasSubstr("backing chain longer than 16"));

  write(images_ + "/truncated.qcow2", qcow2_header("x").substr(0, 100));
  auto truncated = check_disk_image(images_ + "/truncated.qcow2", "image_ref", {images_});
  ASSERT_FALSE(truncated);
  EXPECT_THAT(truncated.error().message, HasSubstr("beyond the end of the file"));
}

}  // namespace
}  // namespace feos::vmm::qemu
