// Request files on a real filesystem: roots and the one answer for paths outside them, symlinks,
// file types, recorded formats, and the image graph (backing chains, external data files).
#include "vmm/qemu/request_files.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "qcow2_bytes.h"
#include "support/temp_dir.h"

namespace feos::vmm::qemu {
namespace {

using model::DiskFormat;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::Qcow2Bytes;
using ::feos::test::TempDir;

void write(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string qcow2(const std::string& backing = "", const std::string& backing_format = "") {
  return Qcow2Bytes{}.backing(backing, backing_format).bytes();
}

std::string qcow2_with_data_file(const std::string& data_file) {
  return Qcow2Bytes{}.data_file(data_file).bytes();
}

class RequestFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    images_ = dir_ / "images";
    write(images_ + "/root.raw", std::string(4096, 'x'));
    write(dir_ / "elsewhere/secret", "host secret");
  }
  // The one answer for a path outside the roots.
  std::string outside(const std::string& field, const std::string& path) const {
    return field + ": " + quote_for_message(path) + " is not a file inside the image roots (" +
           images_ + ")";
  }
  Result<ImageChain> chain(const std::string& path, DiskFormat format = DiskFormat::kUnknown) {
    return resolve_image_chain(path, format, "image_ref", {images_});
  }
  TempDir dir_;
  std::string images_;
};

TEST_F(RequestFilesTest, RegularFilesInsideRootsPassResolved) {
  EXPECT_EQ(*check_request_file(images_ + "/root.raw", "image_ref", {images_}),
            images_ + "/root.raw");
  EXPECT_EQ(*check_request_file(images_ + "/root.raw", "image_ref", {}), images_ + "/root.raw");
  std::filesystem::create_symlink(images_ + "/root.raw", images_ + "/link.raw");
  EXPECT_EQ(*check_request_file(images_ + "/link.raw", "image_ref", {images_}),
            images_ + "/root.raw");
  // A root that is itself a symlink is resolved too.
  std::filesystem::create_symlink(images_, dir_ / "images-link");
  EXPECT_TRUE(check_request_file(images_ + "/root.raw", "image_ref", {dir_ / "images-link"}));
}

TEST_F(RequestFilesTest, MissingInsideTheRootsIsNotFound) {
  std::filesystem::create_symlink(images_ + "/gone.raw", images_ + "/dangling.raw");
  for (const std::string& path : {images_ + "/nope", images_ + "/sub/dir/nope",
                                  images_ + "/dangling.raw", images_ + "/root.raw/nope"}) {
    auto missing = check_request_file(path, "disks[0].path", {images_});
    ASSERT_FALSE(missing) << path;
    EXPECT_EQ(missing.error().code, Code::kNotFound) << missing.error().message;
    EXPECT_EQ(missing.error().message, "disks[0].path: " + quote_for_message(path) + " not found");
  }
}

// With roots, whatever lies outside them gets one answer naming only the path as requested:
// existing or not, file or not, reached directly or through a symlink in a root.
TEST_F(RequestFilesTest, OutsideTheRootsIsOneAnswer) {
  std::filesystem::create_symlink(dir_ / "elsewhere/secret", images_ + "/innocent.raw");
  std::filesystem::create_symlink(dir_ / "elsewhere/missing", images_ + "/dangling.raw");
  std::filesystem::create_symlink(dir_ / "elsewhere", images_ + "/door");
  std::filesystem::create_symlink("../elsewhere/missing", images_ + "/relative.raw");
  for (const std::string& path :
       {dir_ / "elsewhere/secret", dir_ / "elsewhere/missing", dir_ / "elsewhere",
        dir_ / "no/such/dir/file", std::string("/proc/self/mem"), std::string("/dev/null"),
        std::string("/etc/shadow"), std::string("/nonexistent"), images_ + "/innocent.raw",
        images_ + "/dangling.raw", images_ + "/door/secret", images_ + "/door/missing",
        images_ + "/relative.raw", images_ + "/../elsewhere/secret"}) {
    auto refused = check_request_file(path, "image_ref", {images_});
    ASSERT_FALSE(refused) << path;
    EXPECT_EQ(refused.error().code, Code::kPermissionDenied)
        << path << ": " << refused.error().message;
    EXPECT_EQ(refused.error().message, outside("image_ref", path));
  }
}

TEST_F(RequestFilesTest, WithoutRootsOnlyRegularFilesPass) {
  std::string fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string socket_path = dir_ / "sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  struct Case {
    std::string path;
    std::string message;
  };
  for (const auto& c :
       std::vector<Case>{{images_, "is a directory, not a regular file"},
                         {"/dev/null", "is a character device, not a regular file"},
                         {fifo, "is a FIFO, not a regular file"},
                         {socket_path, "is a socket, not a regular file"},
                         {"/proc/self/mem", "is a procfs file, not a regular file"},
                         {"/proc/self/environ", "is a procfs file, not a regular file"},
                         {"/sys/kernel/mm/transparent_hugepage/enabled",
                          "is a sysfs file, not a regular file"}}) {
    if (!std::filesystem::exists(c.path)) continue;  // a host without that sysfs file
    auto refused = check_request_file(c.path, "image_ref", {});
    ASSERT_FALSE(refused) << c.path;
    EXPECT_EQ(refused.error().code, Code::kInvalidArgument) << refused.error().message;
    EXPECT_EQ(refused.error().message, "image_ref: " + quote_for_message(c.path) + " " + c.message);
  }
  ::close(fd);
  auto missing = check_request_file(dir_ / "elsewhere/missing", "boot.kernel", {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
}

TEST_F(RequestFilesTest, ProcSelfMemAsADiskIsInvalidArgument) {
  // Before: procfs files passed as regular files and reading the header failed with INTERNAL.
  model::VmSpec spec;
  spec.disks.push_back({.device_id = "mem", .path = "/proc/self/mem"});
  auto refused = check_spec_files(spec, {});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kInvalidArgument);
  EXPECT_EQ(refused.error().message,
            "config.disks[0].path: '/proc/self/mem' is a procfs file, not a regular file");
}

TEST_F(RequestFilesTest, SymlinkLoopIsInvalidArgument) {
  std::filesystem::create_symlink(images_ + "/b", images_ + "/a");
  std::filesystem::create_symlink(images_ + "/a", images_ + "/b");
  auto loop = check_request_file(images_ + "/a", "image_ref", {images_});
  ASSERT_FALSE(loop);
  EXPECT_EQ(loop.error().code, Code::kInvalidArgument);
  EXPECT_THAT(loop.error().message,
              HasSubstr("cannot be resolved: Too many levels of symbolic links"));
}

TEST_F(RequestFilesTest, RequestTextIsQuotedInMessages) {
  std::string odd = images_ + "/evil\nname\x1b[31m.raw";
  auto missing = check_request_file(odd, "image_ref", {images_});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "image_ref: " + quote_for_message(odd) + " not found");
  EXPECT_THAT(missing.error().message, Not(HasSubstr("\n")));
  EXPECT_THAT(missing.error().message, HasSubstr("evil\\x0aname\\x1b[31m.raw"));
  auto outside = check_request_file("/etc/\xff\n", "boot.kernel", {images_});
  ASSERT_FALSE(outside);
  EXPECT_EQ(
      outside.error().message,
      "boot.kernel: '/etc/\\xff\\x0a' is not a file inside the image roots (" + images_ + ")");
}

TEST_F(RequestFilesTest, FormatsAreRecordedOnceAndKept) {
  write(images_ + "/data.qcow2", qcow2());
  model::VmSpec spec;
  spec.image_path = images_ + "/root.raw";
  spec.disks.push_back({.device_id = "data", .path = images_ + "/data.qcow2"});
  auto admitted = check_spec_files(spec, {images_});
  ASSERT_TRUE(admitted) << admitted.error().to_string();
  EXPECT_EQ(admitted->spec.image_format, DiskFormat::kRaw);
  EXPECT_EQ(admitted->spec.disks[0].format, DiskFormat::kQcow2);
  // The guest writes a qcow2 header onto its raw disk: the recorded format still says raw, and
  // nothing the header names is looked at.
  write(images_ + "/root.raw",
        Qcow2Bytes{}.backing(dir_ / "elsewhere/secret").data_file("/etc/shadow").bytes());
  auto restarted = check_spec_files(admitted->spec, {images_});
  ASSERT_TRUE(restarted) << restarted.error().to_string();
  EXPECT_EQ(restarted->spec.image_format, DiskFormat::kRaw);
  EXPECT_EQ(restarted->images.root.size(), 1u);
  EXPECT_EQ(restarted->images.root[0].format, DiskFormat::kRaw);
}

TEST_F(RequestFilesTest, BootFilesAreResolved) {
  write(images_ + "/vmlinuz", "kernel");
  std::filesystem::create_symlink(images_ + "/vmlinuz", images_ + "/current");
  model::VmSpec spec;
  spec.boot.kernel = images_ + "/current";
  auto checked = check_spec_files(spec, {images_});
  ASSERT_TRUE(checked) << checked.error().to_string();
  EXPECT_EQ(checked->kernel, images_ + "/vmlinuz");
  EXPECT_EQ(checked->initramfs, "");
  EXPECT_EQ(checked->spec.boot.kernel, images_ + "/current");  // the stored spec keeps the request
}

// --- The image graph ---

TEST_F(RequestFilesTest, ChainIsResolvedTopToBottom) {
  write(images_ + "/base/os.raw", std::string(512, 'b'));
  write(images_ + "/base/os.qcow2", qcow2("os.raw", "raw"));  // relative to its own directory
  write(images_ + "/vms/vm1.qcow2", qcow2("../base/os.qcow2", "qcow2"));
  std::filesystem::create_symlink(images_ + "/vms/vm1.qcow2", images_ + "/vm1.qcow2");
  auto c = chain(images_ + "/vms/vm1.qcow2");
  ASSERT_TRUE(c) << c.error().to_string();
  ASSERT_EQ(c->size(), 3u);
  EXPECT_EQ((*c)[0].path, images_ + "/vms/vm1.qcow2");
  EXPECT_EQ((*c)[0].format, DiskFormat::kQcow2);
  EXPECT_EQ((*c)[1].path, images_ + "/base/os.qcow2");
  EXPECT_EQ((*c)[1].format, DiskFormat::kQcow2);
  EXPECT_EQ((*c)[2].path, images_ + "/base/os.raw");
  EXPECT_EQ((*c)[2].format, DiskFormat::kRaw);
  // A relative backing name is relative to the image as named (the symlink's directory), as qemu
  // reads it: "../base" from images_ is outside the root.
  auto through_link = chain(images_ + "/vm1.qcow2");
  ASSERT_FALSE(through_link);
  EXPECT_EQ(through_link.error().code, Code::kPermissionDenied);
  EXPECT_EQ(through_link.error().message,
            outside("image_ref (backing file of " + quote_for_message(images_ + "/vm1.qcow2") + ")",
                    images_ + "/../base/os.qcow2"));
}

TEST_F(RequestFilesTest, BackingFileOutsideTheRootsIsPermissionDenied) {
  write(images_ + "/sneaky.qcow2", qcow2(dir_ / "elsewhere/secret"));
  auto sneaky = chain(images_ + "/sneaky.qcow2");
  ASSERT_FALSE(sneaky);
  EXPECT_EQ(sneaky.error().code, Code::kPermissionDenied);
  EXPECT_EQ(sneaky.error().message, outside("image_ref (backing file of " +
                                                quote_for_message(images_ + "/sneaky.qcow2") + ")",
                                            dir_ / "elsewhere/secret"));
}

TEST_F(RequestFilesTest, DataFileIsPartOfTheGraph) {
  write(images_ + "/vm.data", std::string(4096, 'd'));
  std::filesystem::create_symlink(images_ + "/vm.data", images_ + "/data-link");
  write(images_ + "/vm.qcow2", qcow2_with_data_file(images_ + "/data-link"));
  auto c = chain(images_ + "/vm.qcow2");
  ASSERT_TRUE(c) << c.error().to_string();
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].data_file, images_ + "/vm.data");
}

TEST_F(RequestFilesTest, DataFileOutsideTheRootsIsPermissionDenied) {
  // The probe's escape: qemu would open the outside file read-write.
  write(images_ + "/escape.qcow2", qcow2_with_data_file(dir_ / "elsewhere/secret"));
  auto escape = chain(images_ + "/escape.qcow2");
  ASSERT_FALSE(escape);
  EXPECT_EQ(escape.error().code, Code::kPermissionDenied);
  EXPECT_EQ(escape.error().message,
            outside("image_ref (data file of " + quote_for_message(images_ + "/escape.qcow2") + ")",
                    dir_ / "elsewhere/secret"));
  // The same answer when the outside file does not exist.
  write(images_ + "/escape.qcow2", qcow2_with_data_file(dir_ / "elsewhere/missing"));
  EXPECT_EQ(chain(images_ + "/escape.qcow2").error().code, Code::kPermissionDenied);
  // A data file of a backing file too.
  write(images_ + "/top.qcow2", qcow2("escape.qcow2", "qcow2"));
  EXPECT_EQ(chain(images_ + "/top.qcow2").error().code, Code::kPermissionDenied);
}

// feosd's image cache is inside the roots (with --image-root the daemon adds it), but its blobs
// are shared by every VM of an image and its disks are each one VM's: no request may name one,
// directly, through a symbolic link, "..", or as a backing or data file of its own image. Only
// the root image of a VM whose image_ref names a registry image (the store's overlay) lies there.
TEST_F(RequestFilesTest, ImageCacheIsReservedForTheImageStore) {
  const std::string cache = dir_ / "state/images";
  const std::string blob = cache + "/blobs/sha256/" + std::string(64, 'a');
  const std::string overlay = cache + "/vms/vm-1/disk.qcow2";
  write(blob, std::string(4096, 'b'));
  write(overlay, qcow2(blob, "raw"));
  const FileRoots roots = {images_, cache};
  const ReservedDirs reserved = feosd_reserved_dirs(dir_ / "state");
  auto refused = [&](const model::VmSpec& spec, const std::string& field) {
    auto checked = check_spec_files(spec, roots, reserved);
    ASSERT_FALSE(checked) << field;
    EXPECT_EQ(checked.error().code, Code::kInvalidArgument) << checked.error().message;
    EXPECT_EQ(checked.error().message.rfind(field + ": ", 0), 0u) << checked.error().message;
    EXPECT_THAT(checked.error().message, HasSubstr("is inside feosd's image cache (" + cache + ")"));
    EXPECT_THAT(checked.error().message, Not(HasSubstr("not found")));
    // Without the reservation the same spec passes (or fails for another reason).
    auto unreserved = check_spec_files(spec, roots);
    EXPECT_TRUE(!unreserved || unreserved.error().code != Code::kInvalidArgument) << field;
  };
  auto local_root = [](const std::string& path) {
    model::VmSpec spec;
    spec.image_ref = "file://" + path;
    spec.image_path = path;
    return spec;
  };
  auto with_disk = [](const std::string& path) {
    model::VmSpec spec;
    spec.disks.push_back({});
    spec.disks[0].path = path;
    return spec;
  };
  // A cached image as the request's own root disk or extra disk: qemu would write it.
  refused(local_root(blob), "config.image_ref");
  refused(with_disk(blob), "config.disks[0].path");
  // Another VM's disk.
  refused(with_disk(overlay), "config.disks[0].path");
  // Through a symbolic link inside an image root, and through "..".
  std::filesystem::create_symlink(blob, images_ + "/innocent.raw");
  refused(local_root(images_ + "/innocent.raw"), "config.image_ref");
  refused(with_disk(images_ + "/../state/images/vms/vm-1/disk.qcow2"), "config.disks[0].path");
  // A missing file there is refused the same way, not answered with "not found".
  refused(with_disk(cache + "/vms/vm-2/disk.qcow2"), "config.disks[0].path");
  // As the backing file or the external data file of the request's own image.
  write(images_ + "/over-cache.qcow2", qcow2(blob, "raw"));
  refused(with_disk(images_ + "/over-cache.qcow2"),
          "config.disks[0].path (backing file of " + quote_for_message(images_ + "/over-cache.qcow2") + ")");
  write(images_ + "/data-in-cache.qcow2", qcow2_with_data_file(blob));
  refused(local_root(images_ + "/data-in-cache.qcow2"),
          "config.image_ref (data file of " + quote_for_message(images_ + "/data-in-cache.qcow2") + ")");
  // As a kernel or initramfs.
  model::VmSpec kernel;
  kernel.boot.kernel = blob;
  refused(kernel, "config.boot.kernel");

  // The VM's own disk over a registry image: its overlay and the cached image under it.
  model::VmSpec registry;
  registry.image_ref = "registry.example.com/os:1";
  registry.image_path = overlay;
  auto own = check_spec_files(registry, roots, reserved);
  ASSERT_TRUE(own) << own.error().to_string();
  ASSERT_EQ(own->images.root.size(), 2u);
  EXPECT_EQ(own->images.root[0].path, overlay);
  EXPECT_EQ(own->images.root[1].path, blob);
  // ... and the registry image's cached disk itself, as create's admission checks it.
  registry.image_path = blob;
  EXPECT_TRUE(check_spec_files(registry, roots, reserved));
  // A state directory named through a symbolic link (--state-dir): the chain, resolved, is still
  // found in the cache.
  std::filesystem::create_symlink(dir_ / "state", dir_ / "state-link");
  registry.image_path = overlay;
  EXPECT_TRUE(check_spec_files(registry, roots, feosd_reserved_dirs(dir_ / "state-link")));
  // Such a VM's extra disks are still the request's.
  registry.image_path = overlay;
  registry.disks.push_back({});
  registry.disks[0].path = blob;
  EXPECT_EQ(check_spec_files(registry, roots, reserved).error().code, Code::kInvalidArgument);
  registry.disks.clear();
  // An overlay whose header was rewritten (its qemu writes it) to name anything but a cached
  // image: another VM's disk, a file of the roots, a cached image through another overlay.
  const std::string other_vm = cache + "/vms/vm-2/disk.qcow2";
  write(other_vm, qcow2(blob, "raw"));
  write(images_ + "/disk.raw", std::string(4096, 'c'));
  auto tampered = [&](const std::string& header) {
    write(overlay, header);
    auto checked = check_spec_files(registry, roots, reserved);
    ASSERT_FALSE(checked);
    EXPECT_EQ(checked.error().code, Code::kFailedPrecondition) << checked.error().message;
    EXPECT_THAT(checked.error().message, HasSubstr("config.image_ref: the disk over a registry image must be one "
                                                   "qcow2 overlay of an image in feosd's image cache"));
  };
  tampered(qcow2(other_vm, "qcow2"));
  tampered(qcow2(images_ + "/disk.raw", "raw"));
  tampered(qcow2_with_data_file(blob));
  write(overlay, qcow2(blob, "raw"));
  EXPECT_TRUE(check_spec_files(registry, roots, reserved));
  // Without image roots the cache is still reserved.
  auto no_roots = check_spec_files(with_disk(overlay), {}, reserved);
  ASSERT_FALSE(no_roots);
  EXPECT_EQ(no_roots.error().code, Code::kInvalidArgument);
}

// The rest of feosd's state directory is its own too, with image roots or without: a request
// naming feosd.db as a disk would let a guest write the daemon's records, one naming a VM's
// variable store would read or write that VM's firmware settings.
TEST_F(RequestFilesTest, TheStateDirectoryIsReservedForFeosd) {
  const std::string state = dir_ / "state";
  write(state + "/feosd.db", std::string(4096, 'd'));
  write(state + "/vms/vm-1/uefi-vars.fd", std::string(4096, 'v'));
  std::filesystem::create_symlink(state + "/feosd.db", images_ + "/db-link.raw");
  const ReservedDirs reserved = feosd_reserved_dirs(state);
  for (const FileRoots& roots : {FileRoots{}, FileRoots{images_, state + "/images"}, FileRoots{dir_.path()}}) {
    for (const std::string& path : {state + "/feosd.db", state + "/vms/vm-1/uefi-vars.fd", images_ + "/db-link.raw",
                                    state + "/vms/vm-2/console.log"}) {
      model::VmSpec spec;
      spec.disks.push_back({});
      spec.disks[0].path = path;
      auto checked = check_spec_files(spec, roots, reserved);
      if (roots.size() == 2) {
        // Resolved outside these roots: the roots' one answer comes first and tells nothing more.
        ASSERT_FALSE(checked);
        EXPECT_EQ(checked.error().code, Code::kPermissionDenied) << path;
        continue;
      }
      ASSERT_FALSE(checked) << path;
      EXPECT_EQ(checked.error().code, Code::kInvalidArgument) << checked.error().message;
      EXPECT_EQ(checked.error().message,
                "config.disks[0].path: " + quote_for_message(path) + " is inside feosd's state directory (" + state +
                    "): its database and the VMs' runtime files (UEFI variable stores, console logs, ignition) are "
                    "the daemon's own; a request may not name them");
      // Without the reservation the same spec passes, or is not found.
      auto unreserved = check_spec_files(spec, roots);
      EXPECT_TRUE(unreserved || unreserved.error().code == Code::kNotFound) << unreserved.error().message;
    }
  }
}

TEST_F(RequestFilesTest, MissingDataFileInsideTheRootsIsNotFound) {
  write(images_ + "/vm.qcow2", qcow2_with_data_file(images_ + "/vm.data"));
  auto missing = chain(images_ + "/vm.qcow2");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
}

TEST_F(RequestFilesTest, BackingFileOfAnotherFormatIsRefused) {
  // What the probe used: a VMDK descriptor whose extent lies outside the root.
  std::string descriptor =
      "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
      "createType=\"monolithicFlat\"\nRW 2048 FLAT \"" +
      dir_ / "elsewhere/secret" + "\" 0\n";
  std::string vdi(0x40, 'v');
  vdi += "\x7f\x10\xda\xbe";
  struct Case {
    std::string bytes;
    std::string name;
  };
  for (const auto& c : std::vector<Case>{{descriptor, "VMDK descriptor"},
                                         {"KDMV" + std::string(508, '\0'), "VMDK"},
                                         {vdi + std::string(448, '\0'), "VDI"},
                                         {"vhdxfile" + std::string(504, '\0'), "VHDX"},
                                         {"conectix" + std::string(504, '\0'), "VPC (VHD)"},
                                         {std::string("QED\0", 4) + std::string(508, '\0'), "QED"},
                                         {"LUKS\xba\xbe" + std::string(506, '\0'), "LUKS"}}) {
    write(images_ + "/inner", c.bytes);
    write(images_ + "/top.qcow2", qcow2("inner"));  // no backing format: feosd reads the magic
    auto refused = chain(images_ + "/top.qcow2");
    ASSERT_FALSE(refused) << c.name;
    EXPECT_EQ(refused.error().code, Code::kInvalidArgument);
    EXPECT_EQ(refused.error().message,
              "image_ref (backing file of " + quote_for_message(images_ + "/top.qcow2") +
                  "): " + quote_for_message(images_ + "/inner") + " is a " + c.name +
                  " image: a backing file must be raw or qcow2");
  }
  // With the backing format recorded as vmdk, the header is refused before the file is read.
  write(images_ + "/top.qcow2", qcow2("inner", "vmdk"));
  auto vmdk = chain(images_ + "/top.qcow2");
  ASSERT_FALSE(vmdk);
  EXPECT_EQ(vmdk.error().code, Code::kInvalidArgument);
  EXPECT_EQ(vmdk.error().message,
            "image_ref: " + quote_for_message(images_ + "/top.qcow2") +
                ": qcow2 backing format 'vmdk': only raw and qcow2 backing files are supported");
}

TEST_F(RequestFilesTest, RecordedBackingFormatsAreFollowed) {
  // Recorded raw: opened as raw whatever its bytes (qemu follows nothing in a raw image).
  write(images_ + "/looks-like-vmdk", "KDMV" + std::string(508, '\0'));
  write(images_ + "/top.qcow2", qcow2("looks-like-vmdk", "raw"));
  auto raw = chain(images_ + "/top.qcow2");
  ASSERT_TRUE(raw) << raw.error().to_string();
  ASSERT_EQ(raw->size(), 2u);
  EXPECT_EQ((*raw)[1].format, DiskFormat::kRaw);
  // Recorded qcow2: it must be one.
  write(images_ + "/top.qcow2", qcow2("root.raw", "qcow2"));
  auto not_qcow2 = chain(images_ + "/top.qcow2");
  ASSERT_FALSE(not_qcow2);
  EXPECT_EQ(not_qcow2.error().code, Code::kInvalidArgument);
  EXPECT_THAT(not_qcow2.error().message,
              HasSubstr("'" + images_ + "/root.raw' is not a qcow2 image"));
  // Not recorded: qcow2 by its magic, raw without any.
  write(images_ + "/mid.qcow2", qcow2("root.raw"));
  write(images_ + "/top.qcow2", qcow2("mid.qcow2"));
  auto probed = chain(images_ + "/top.qcow2");
  ASSERT_TRUE(probed) << probed.error().to_string();
  ASSERT_EQ(probed->size(), 3u);
  EXPECT_EQ((*probed)[1].format, DiskFormat::kQcow2);
  EXPECT_EQ((*probed)[2].format, DiskFormat::kRaw);
}

TEST_F(RequestFilesTest, TopImageKeepsItsRecordedFormat) {
  // A raw top is never read as anything else: not VMDK, not qcow2.
  write(images_ + "/disk.img",
        "# Disk DescriptorFile\nversion=1\nRW 2048 FLAT \"/etc/shadow\" 0\n");
  auto vmdk_bytes = chain(images_ + "/disk.img");
  ASSERT_TRUE(vmdk_bytes) << vmdk_bytes.error().to_string();
  EXPECT_EQ(vmdk_bytes->size(), 1u);
  EXPECT_EQ((*vmdk_bytes)[0].format, DiskFormat::kRaw);
  write(images_ + "/was-raw.img", qcow2(dir_ / "elsewhere/secret"));
  auto raw = chain(images_ + "/was-raw.img", DiskFormat::kRaw);
  ASSERT_TRUE(raw) << raw.error().to_string();
  EXPECT_EQ(raw->size(), 1u);
  // Recorded qcow2 that lost its header since create.
  auto lost = chain(images_ + "/root.raw", DiskFormat::kQcow2);
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(lost.error().message, "image_ref: " + quote_for_message(images_ + "/root.raw") +
                                      " was recorded as qcow2 when the VM was created but has no "
                                      "qcow2 header now");
}

TEST_F(RequestFilesTest, HeadersFeosdDoesNotHandleAreRefusedNamingTheImage) {
  Qcow2Bytes unknown_feature;
  unknown_feature.incompatible = uint64_t{1} << 7;
  write(images_ + "/future.qcow2", unknown_feature.bytes());
  auto future = chain(images_ + "/future.qcow2");
  ASSERT_FALSE(future);
  EXPECT_EQ(future.error().code, Code::kInvalidArgument);
  EXPECT_EQ(future.error().message,
            "image_ref: " + quote_for_message(images_ + "/future.qcow2") +
                ": qcow2 incompatible_features: bits 0x80 are unknown to feosd");
  write(images_ + "/truncated.qcow2", qcow2("x").substr(0, 100));
  auto truncated = chain(images_ + "/truncated.qcow2");
  ASSERT_FALSE(truncated);
  EXPECT_THAT(truncated.error().message, HasSubstr("fewer than 104"));
}

TEST_F(RequestFilesTest, LoopsAndLongChainsAreRefused) {
  write(images_ + "/loop.qcow2", qcow2("loop.qcow2"));
  auto self = chain(images_ + "/loop.qcow2");
  ASSERT_FALSE(self);
  EXPECT_EQ(self.error().code, Code::kInvalidArgument);
  EXPECT_EQ(self.error().message,
            "image_ref (backing file of " + quote_for_message(images_ + "/loop.qcow2") + "): " +
                quote_for_message(images_ + "/loop.qcow2") + " is already in the chain (a loop)");
  write(images_ + "/a.qcow2", qcow2("b.qcow2"));
  write(images_ + "/b.qcow2", qcow2("c-link"));
  std::filesystem::create_symlink(images_ + "/a.qcow2", images_ + "/c-link");
  auto pair = chain(images_ + "/a.qcow2");
  ASSERT_FALSE(pair);
  EXPECT_THAT(pair.error().message, HasSubstr("'" + images_ + "/c-link' is already in the chain"));

  // 17 distinct images: one more than accepted.
  for (int i = 0; i < 17; ++i)
    write(images_ + "/c" + std::to_string(i) + ".qcow2",
          i == 16 ? qcow2() : qcow2("c" + std::to_string(i + 1) + ".qcow2"));
  auto long_chain = chain(images_ + "/c0.qcow2");
  ASSERT_FALSE(long_chain);
  EXPECT_EQ(long_chain.error().code, Code::kInvalidArgument);
  EXPECT_EQ(long_chain.error().message, "image_ref: backing chain longer than 16 images");
  EXPECT_TRUE(chain(images_ + "/c1.qcow2"));  // 16 images
}

}  // namespace
}  // namespace feos::vmm::qemu
