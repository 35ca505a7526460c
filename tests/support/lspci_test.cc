// pciutils' lspci, pointed at a built tree with its linux-sysfs method, sees the host we described.
// Skipped (with a message) where lspci is not installed.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>

#include "support/fake_host.h"
#include "support/host_builder.h"

namespace feos::test {
namespace {

std::string find_lspci() {
  for (const char* p : {"/usr/bin/lspci", "/usr/sbin/lspci", "/bin/lspci", "/sbin/lspci"})
    if (FILE* f = std::fopen(p, "r")) {
      std::fclose(f);
      return p;
    }
  return {};
}

// Runs lspci on the tree; returns its stdout, and its exit status in `rc`.
std::string lspci(const HostTree& tree, const std::string& args, int& rc) {
  const std::string cmd = find_lspci() + " -A linux-sysfs -O sysfs.path=" + tree.paths.sysfs_root + "/bus/pci " +
                          args + " 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(cmd.c_str(), "r"), ::pclose);
  std::string out;
  if (!pipe) {
    rc = -1;
    return out;
  }
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe.get())) > 0) out.append(buf.data(), n);
  rc = ::pclose(pipe.release());
  return out;
}

class LspciTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (find_lspci().empty()) GTEST_SKIP() << "lspci not installed (Debian package pciutils): skipping";
  }
  HostTree build(const HostBuilder& b) {
    auto t = b.build(dir_.path());
    if (!t) throw std::runtime_error(t.error().to_string());
    return *t;
  }
  TempDir dir_ = TempDir::for_trees();
};

TEST_F(LspciTest, ListsTheConsumerCardsFourFunctions) {
  auto tree = build(consumer_gpu_host());
  int rc = 0;
  const std::string out = lspci(tree, "-nn", rc);
  ASSERT_EQ(rc, 0) << out;
  // Class codes and ids in brackets do not depend on the pci.ids database.
  for (const char* expected : {"01:00.0 VGA compatible controller [0300]: ", "[10de:2684] (rev a1)",
                               "01:00.1 Audio device [0403]: ", "[10de:22ba] (rev a1)",
                               "01:00.2 USB controller [0c03]: ", "[10de:1ad8] (rev a1)",
                               "01:00.3 Serial bus controller [0c80]: ", "[10de:1ad9] (rev a1)",
                               "00:02.0 VGA compatible controller [0300]: ", "[8086:a780]",
                               "00:01.0 PCI bridge [0604]: "})
    EXPECT_NE(out.find(expected), std::string::npos) << expected << "\n" << out;
  size_t lines = 0;
  for (char c : out) lines += c == '\n';
  EXPECT_EQ(lines, 12u) << out;
}

TEST_F(LspciTest, ReadsBarsDriversAndTopology) {
  auto tree = build(hgx_h100_host());
  int rc = 0;
  const std::string gpu = lspci(tree, "-nn -v -s 18:00.0", rc);
  ASSERT_EQ(rc, 0) << gpu;
  EXPECT_NE(gpu.find("3D controller [0302]"), std::string::npos) << gpu;
  EXPECT_NE(gpu.find("[10de:2330]"), std::string::npos) << gpu;
  EXPECT_NE(gpu.find("(64-bit, prefetchable) [size=128G]"), std::string::npos) << gpu;
  EXPECT_NE(gpu.find("(32-bit, non-prefetchable) [size=16M]"), std::string::npos) << gpu;
  EXPECT_NE(gpu.find("IOMMU group 59"), std::string::npos) << gpu;
  EXPECT_NE(gpu.find("Kernel driver in use: nvidia"), std::string::npos) << gpu;
  EXPECT_NE(gpu.find("NUMA node 0"), std::string::npos) << gpu;
  const std::string tree_view = lspci(tree, "-t", rc);
  ASSERT_EQ(rc, 0) << tree_view;
  // Root port 15:01.0 -> switch 16:00.0 -> downstream port 17:00.0 -> GPU 18:00.0.
  EXPECT_NE(tree_view.find("[0000:15]---01.0-[16-1a]----00.0-[17-1a]--+-00.0-[18]----00.0"), std::string::npos)
      << tree_view;
}

}  // namespace
}  // namespace feos::test
