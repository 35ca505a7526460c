// The feos-fake-sysfs binary: writes a readable tree, prints the daemon flags, rejects bad input.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "pci/sysfs.h"
#include "support/fake_host.h"

namespace feos::test {
namespace {

struct CliResult {
  int rc = -1;
  std::string out;  // stdout and stderr
};

CliResult run_cli(const std::string& args) {
  const std::string cmd = std::string(FEOS_FAKE_SYSFS_BINARY) + " " + args + " 2>&1";
  CliResult r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  int status = ::pclose(pipe);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(FakeSysfsCli, WritesTheHostAndPrintsDaemonFlags) {
  TempDir dir = TempDir::for_trees();
  const std::string out = dir.path() + "/host";
  CliResult r = run_cli("--host shared-group " + out);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("--sysfs-root " + out + "/sys --dev-root " + out + "/dev --proc-root " + out + "/proc"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("10 PCI functions"), std::string::npos) << r.out;
  auto fs = sys::make_posix_filesystem();
  sys::HostPaths paths{out + "/sys", out + "/dev", out + "/proc"};
  pci::PciSysfs pci(*fs, paths);
  auto members = pci.iommu_group_members(pci::IommuGroup(20));
  ASSERT_TRUE(members) << members.error().to_string();
  EXPECT_EQ(members->size(), 6u);
  EXPECT_TRUE(fs->exists(paths.pci_driver("vfio-pci")));

  // Not into a non-empty directory.
  CliResult again = run_cli("--host consumer " + out);
  EXPECT_EQ(again.rc, 1) << again.out;
  EXPECT_NE(again.out.find("not an empty directory"), std::string::npos) << again.out;
}

TEST(FakeSysfsCli, WithoutVfioPciAndLarge) {
  TempDir dir = TempDir::for_trees();
  CliResult r = run_cli("--host=large:200 --no-vfio-pci " + dir.path() + "/l");
  ASSERT_EQ(r.rc, 0) << r.out;
  auto fs = sys::make_posix_filesystem();
  sys::HostPaths paths{dir.path() + "/l/sys", dir.path() + "/l/dev", dir.path() + "/l/proc"};
  EXPECT_FALSE(fs->exists(paths.pci_driver("vfio-pci")));
  EXPECT_FALSE(fs->exists(paths.kernel_module("vfio_pci")));
  auto list = pci::PciSysfs(*fs, paths).list();
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 200u);
}

TEST(FakeSysfsCli, UsageErrors) {
  TempDir dir = TempDir::for_trees();
  for (const std::string& args : {std::string(""), std::string("--host consumer"), "--host nope " + dir.path() + "/x",
                                  "--host large:0 " + dir.path() + "/x", "--bogus " + dir.path() + "/x",
                                  std::string("--host consumer a b")}) {
    CliResult r = run_cli(args);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.out;
    EXPECT_NE(r.out.find("usage: feos-fake-sysfs"), std::string::npos) << args;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/x"));
  CliResult help = run_cli("--help");
  EXPECT_EQ(help.rc, 0);
  EXPECT_NE(help.out.find("hgx-h100"), std::string::npos);
}

}  // namespace
}  // namespace feos::test
