#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "support/temp_dir.h"
#include "sys/filesystem.h"

namespace feos::sys {
namespace {

TEST(PosixFilesystemTest, ReadWriteListLink) {
  test::TempDir temp;
  std::filesystem::path dir = temp.path();
  std::filesystem::create_directories(dir / "sub");
  std::ofstream(dir / "attr") << "0x10de\n";
  std::filesystem::create_symlink("../../drivers/nvidia", dir / "driver");
  auto fs = make_posix_filesystem();

  auto text = fs->read_file((dir / "attr").string());
  ASSERT_TRUE(text) << text.error().to_string();
  EXPECT_EQ(trim(*text), "0x10de");
  ASSERT_TRUE(fs->write_file((dir / "attr").string(), "vfio-pci"));
  EXPECT_EQ(*fs->read_file((dir / "attr").string()), "vfio-pci");
  EXPECT_EQ(*fs->list_dir(dir.string()), (std::vector<std::string>{"attr", "driver", "sub"}));
  EXPECT_EQ(basename_of(*fs->read_link((dir / "driver").string())), "nvidia");

  auto missing = fs->read_file((dir / "nope").string());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_NE(missing.error().message.find("nope"), std::string::npos);
}

}  // namespace
}  // namespace feos::sys
