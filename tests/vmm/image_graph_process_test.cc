// Real qemu-img images and real qemu: the image graph feosd hands qemu (block_graph.h). Images
// that name files outside the image root (an external data file; a VMDK backing file whose extent
// lies outside) are refused at create and again at start; an accepted graph boots, and qemu holds
// exactly the files feosd checked (/proc/<pid>/fd). The refusals need only qemu-img; the boot
// needs the test guest (FEOS_TEST_GUEST_DIR, tests/guest/build-guest.sh).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "support/temp_dir.h"
#include "vmm/qemu/qemu_hypervisor.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::feos::test::TempDir;
using namespace std::chrono_literals;

// Runs a command line built from this test's own paths; true when it exits 0 (its stderr shows).
bool sh(const std::string& command) { return std::system(command.c_str()) == 0; }

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The files under `dir` that process `pid` has open.
std::set<std::string> open_files_under(int pid, const std::string& dir) {
  std::set<std::string> out;
  for (const auto& fd :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code error;
    std::string target = std::filesystem::read_symlink(fd.path(), error).string();
    if (!error && target.rfind(dir + "/", 0) == 0) out.insert(target);
  }
  return out;
}

std::string describe(const std::set<std::string>& files) {
  std::string out;
  for (const auto& file : files) out += (out.empty() ? "" : " ") + file;
  return "{" + out + "}";
}

class ImageGraphProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!sh("qemu-img --version >/dev/null")) GTEST_SKIP() << "qemu-img is not installed";
    images_ = std::filesystem::canonical(images_dir_.path());
    outside_ = std::filesystem::canonical(outside_dir_.path());
    std::ofstream(images_ + "/vmlinuz") << "never booted";
  }
  std::unique_ptr<QemuHypervisor> make(FileRoots roots) {
    QemuConfig config;
    config.accel = "auto";
    config.start_timeout = 60s;
    config.stop_grace = 10s;
    config.image_roots = std::move(roots);
    auto hv = QemuHypervisor::create(*launcher_, *fs_, sys::HostPaths{}, config);
    EXPECT_TRUE(hv) << hv.error().to_string();
    return hv ? std::move(*hv) : nullptr;
  }
  model::VmSpec spec_with_disk(const std::string& path) {
    model::VmSpec spec;
    spec.boot.kernel = images_ + "/vmlinuz";
    spec.disks = {{"data", path, false}};
    return spec;
  }
  // A monolithicFlat VMDK: the descriptor in the root at `descriptor`, its extent outside.
  void vmdk_with_extent_outside(const std::string& descriptor) {
    ASSERT_TRUE(sh("qemu-img create -q -f vmdk -o subformat=monolithicFlat " + outside_ +
                   "/inner.vmdk 1M"));
    std::string text = read(outside_ + "/inner.vmdk");
    const std::string extent = "\"inner-flat.vmdk\"";
    ASSERT_NE(text.find(extent), std::string::npos) << text;
    text.replace(text.find(extent), extent.size(), "\"" + outside_ + "/inner-flat.vmdk\"");
    std::ofstream(descriptor) << text;
  }
  std::string quoted(const std::string& path) { return quote_for_message(path); }
  std::string outside_message(const std::string& field, const std::string& path) {
    return field + ": " + quoted(path) + " is not a file inside the image roots (" + images_ + ")";
  }

  TempDir images_dir_, outside_dir_, run_;
  std::string images_, outside_;
  std::unique_ptr<sys::ProcessLauncher> launcher_ = sys::make_posix_process_launcher();
  std::unique_ptr<sys::Filesystem> fs_ = sys::make_posix_filesystem();
};

// The probe: CreateVm and StartVm answered OK, and qemu opened the outside file read-write.
TEST_F(ImageGraphProcessTest, ExternalDataFileOutsideTheRootIsRefused) {
  ASSERT_TRUE(sh("qemu-img create -q -f qcow2 -o data_file=" + outside_ + "/secret.data " +
                 images_ + "/escape.qcow2 16M"));
  auto hv = make({images_});
  auto spec = spec_with_disk(images_ + "/escape.qcow2");
  auto admitted = hv->admit(spec);
  ASSERT_FALSE(admitted) << "a qcow2 with its data file outside the root was admitted";
  EXPECT_EQ(admitted.error().code, Code::kPermissionDenied);
  EXPECT_EQ(admitted.error().message, outside_message("config.disks[0].path (data file of " +
                                                          quoted(images_ + "/escape.qcow2") + ")",
                                                      outside_ + "/secret.data"));
  auto started = hv->start("vm-escape", spec, {}, run_.path());
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, Code::kPermissionDenied);
  EXPECT_FALSE(std::filesystem::exists(run_ / "qemu.pid")) << "qemu ran";
}

// The probe's second image: qemu opened the extent the VMDK descriptor names.
TEST_F(ImageGraphProcessTest, VmdkBackingFileIsRefused) {
  vmdk_with_extent_outside(images_ + "/inner.vmdk");
  ASSERT_TRUE(sh("qemu-img create -q -f qcow2 -b " + images_ + "/inner.vmdk -F vmdk " + images_ +
                 "/top.qcow2"));
  auto hv = make({images_});
  auto admitted = hv->admit(spec_with_disk(images_ + "/top.qcow2"));
  ASSERT_FALSE(admitted) << "a qcow2 over a VMDK backing file was admitted";
  EXPECT_EQ(admitted.error().code, Code::kInvalidArgument);
  EXPECT_EQ(admitted.error().message,
            "config.disks[0].path: " + quoted(images_ + "/top.qcow2") +
                ": qcow2 backing format 'vmdk': only raw and qcow2 backing files are supported");
}

// Files may change between create and start: start() resolves the graph again.
TEST_F(ImageGraphProcessTest, AnImageChangedAfterCreateIsCheckedAgainAtStart) {
  ASSERT_TRUE(sh("qemu-img create -q -f qcow2 " + images_ + "/data.qcow2 16M"));
  auto hv = make({images_});
  auto admitted = hv->admit(spec_with_disk(images_ + "/data.qcow2"));
  ASSERT_TRUE(admitted) << admitted.error().to_string();
  EXPECT_EQ(admitted->disks[0].format, model::DiskFormat::kQcow2);
  ASSERT_TRUE(sh("qemu-img create -q -f qcow2 -o data_file=" + outside_ + "/later.data " + images_ +
                 "/data.qcow2 16M"));
  auto started = hv->start("vm-later", *admitted, {}, run_.path());
  ASSERT_FALSE(started) << "started over a data file outside the root";
  EXPECT_EQ(started.error().code, Code::kPermissionDenied);
  EXPECT_EQ(started.error().message,
            "vm vm-later: " + outside_message("config.disks[0].path (data file of " +
                                                  quoted(images_ + "/data.qcow2") + ")",
                                              outside_ + "/later.data"));
}

// An accepted graph: a qcow2 -> qcow2 -> raw chain named through a symlink, a qcow2 with an
// external data file, and a VMDK descriptor given as a raw disk (opened as raw: its extent
// outside the root is never followed). qemu boots and holds exactly the checked files.
TEST_F(ImageGraphProcessTest, QemuOpensExactlyTheFilesFeosdChecked) {
  const char* guest = std::getenv("FEOS_TEST_GUEST_DIR");
  if (guest == nullptr || *guest == '\0')
    GTEST_SKIP() << "FEOS_TEST_GUEST_DIR is not set: build the test guest with "
                    "tests/guest/build-guest.sh DIR and export FEOS_TEST_GUEST_DIR=DIR";
  const std::string guest_dir = std::filesystem::canonical(guest);
  const std::string& i = images_;
  ASSERT_TRUE(sh("qemu-img create -q -f raw " + i + "/base.raw 16M"));
  ASSERT_TRUE(sh("qemu-img create -q -f qcow2 -b base.raw -F raw " + i + "/mid.qcow2"));
  ASSERT_TRUE(sh("qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 " + i + "/top.qcow2"));
  std::filesystem::create_symlink(i + "/top.qcow2", i + "/vm.qcow2");
  ASSERT_TRUE(
      sh("qemu-img create -q -f qcow2 -o data_file=" + i + "/dq.data " + i + "/dq.qcow2 16M"));
  vmdk_with_extent_outside(i + "/seed.vmdk");

  const FileRoots roots{images_, guest_dir};
  auto hv = make(roots);
  model::VmSpec spec;
  spec.cpus = {1, 1};
  spec.memory.size_mib = 256;
  spec.boot.kernel = guest_dir + "/vmlinuz";
  spec.boot.initramfs = guest_dir + "/initramfs.cpio";
  spec.boot.cmdline = "console=ttyS0 quiet panic=-1";
  spec.disks = {{"chain", i + "/vm.qcow2", false},
                {"data", i + "/dq.qcow2", false},
                {"seed", i + "/seed.vmdk", true}};
  auto admitted = hv->admit(spec);
  ASSERT_TRUE(admitted) << admitted.error().to_string();
  EXPECT_EQ(admitted->disks[0].format, model::DiskFormat::kQcow2);
  EXPECT_EQ(admitted->disks[1].format, model::DiskFormat::kQcow2);
  EXPECT_EQ(admitted->disks[2].format, model::DiskFormat::kRaw);

  auto checked = check_spec_files(*admitted, roots);
  ASSERT_TRUE(checked) << checked.error().to_string();
  std::set<std::string> checked_files;
  for (const auto& chain : checked->images.disks)
    for (const auto& image : chain) {
      checked_files.insert(image.path);
      if (!image.data_file.empty()) checked_files.insert(image.data_file);
    }
  EXPECT_EQ(checked_files,
            (std::set<std::string>{i + "/top.qcow2", i + "/mid.qcow2", i + "/base.raw",
                                   i + "/dq.qcow2", i + "/dq.data", i + "/seed.vmdk"}));

  auto t0 = std::chrono::steady_clock::now();
  auto pid = hv->start("vm-graph", *admitted, {}, run_.path());
  ASSERT_TRUE(pid) << pid.error().to_string();
  double start_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto held = open_files_under(*pid, images_);
  EXPECT_EQ(held, checked_files) << "qemu holds " << describe(held);
  EXPECT_EQ(open_files_under(*pid, outside_), std::set<std::string>{});
  // The resolved path is on the command line, not the symlink the spec names.
  std::string cmdline = read("/proc/" + std::to_string(*pid) + "/cmdline");
  EXPECT_THAT(cmdline, HasSubstr("filename=" + i + "/top.qcow2"));
  EXPECT_THAT(cmdline, Not(HasSubstr("vm.qcow2")));
  ASSERT_TRUE(hv->stop("vm-graph"));
  std::printf(
      "image graph: qemu holds %zu image files, the %zu feosd checked; start->running %.2f s\n",
      held.size(), checked_files.size(), start_s);
}

}  // namespace
}  // namespace feos::vmm::qemu
