// The image header reader: magics of the formats qemu probes, qcow2 headers of version 2 and 3
// with each extension, and every header feosd refuses.
#include "vmm/qemu/disk_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "qcow2_bytes.h"
#include "support/temp_dir.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::HasSubstr;
using testing::Qcow2Bytes;
using ::feos::test::TempDir;
using namespace std::string_literals;

std::string padded(std::string head, size_t size = 512) {
  head.resize(std::max(size, head.size()), '\0');
  return head;
}

TEST(ImageMagic, FormatsQemuProbesAreRecognised) {
  struct Case {
    std::string head;
    ImageMagic magic;
  };
  std::string vdi(0x40, 'x');
  vdi += "\x7f\x10\xda\xbe"s;
  const Case cases[] = {
      {Qcow2Bytes{}.bytes(), ImageMagic::kQcow2},
      {padded("QFI\xfb\0\0\0\1"s), ImageMagic::kQcow2},  // qcow version 1: refused when parsed
      {padded("KDMV\1\0\0\0"s), ImageMagic::kVmdk},
      {padded("COWD"), ImageMagic::kVmdk},
      {"# Disk DescriptorFile\nversion=1\nRW 2048 FLAT \"/etc/shadow\" 0\n",
       ImageMagic::kVmdkDescriptor},
      {"# comment\n   \n  \r\nversion=2\r\n", ImageMagic::kVmdkDescriptor},  // qemu's blank lines
      {"version=3\n", ImageMagic::kVmdkDescriptor},
      {padded(vdi), ImageMagic::kVdi},
      {padded("vhdxfile"), ImageMagic::kVhdx},
      {padded("conectix"), ImageMagic::kVpc},
      {padded("QED\0"s), ImageMagic::kQed},
      {padded("LUKS\xba\xbe\0\1"s), ImageMagic::kLuks},
      {padded("WithoutFreeSpace"), ImageMagic::kParallels},
      {padded("WithouFreSpacExt"), ImageMagic::kParallels},
      {padded("Bochs Virtual HD Image"), ImageMagic::kBochs},
      {"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n",
       ImageMagic::kCloop},
  };
  for (const auto& c : cases)
    EXPECT_EQ(detect_image_magic(c.head), c.magic) << quote_for_message(c.head.substr(0, 24));
}

TEST(ImageMagic, RawDataHasNone) {
  for (const std::string& head :
       {""s, "QFI"s, std::string(4096, '\0'), "version=4\n"s, "version=1"s, "x version=1\n"s,
        "# only comments\n# here\n"s, "\nversion=1\n"s /* qemu: blank lines start with a space */,
        "KDM"s, std::string(0x43, 'x') + "\x7f\x10\xda"s, "hello world, some guest data\n"s})
    EXPECT_EQ(detect_image_magic(head), ImageMagic::kNone) << quote_for_message(head);
  EXPECT_EQ(magic_name(ImageMagic::kNone), "raw");
  EXPECT_EQ(magic_name(ImageMagic::kVmdkDescriptor), "VMDK descriptor");
}

TEST(Qcow2Header, Version2) {
  Qcow2Bytes image;
  image.version = 2;
  image.cluster_bits = 12;
  image.backing("base.raw", "raw");
  auto h = parse_qcow2_header(image.bytes());
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->version, 2u);
  EXPECT_EQ(h->cluster_bits, 12u);
  EXPECT_EQ(h->header_length, 72u);
  EXPECT_EQ(h->incompatible_features, 0u);
  EXPECT_EQ(h->backing_file, "base.raw");
  EXPECT_EQ(h->backing_format, "raw");
  EXPECT_EQ(h->data_file, "");
}

TEST(Qcow2Header, Version3WithEveryExtension) {
  Qcow2Bytes image;
  image.compatible = 1;  // lazy refcounts
  image.autoclear = 1;   // bitmaps
  image.incompatible = kQcow2Dirty | kQcow2CompressionType | kQcow2ExtendedL2;
  image.extensions.emplace_back(kQcow2ExtFeatureTable, std::string(48 * 3, 'f'));
  image.extensions.emplace_back(kQcow2ExtBitmaps, std::string(24, '\0'));
  image.extensions.emplace_back(0x12345678, "unknown to feosd, skipped");
  image.data_file("/images/vm.data");
  image.backing("../base/os.qcow2", "qcow2");
  auto h = parse_qcow2_header(image.bytes());
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->version, 3u);
  EXPECT_EQ(h->header_length, 112u);
  EXPECT_EQ(h->incompatible_features,
            kQcow2Dirty | kQcow2CompressionType | kQcow2ExtendedL2 | kQcow2ExternalData);
  EXPECT_EQ(h->compatible_features, 1u);
  EXPECT_EQ(h->autoclear_features, 1u);
  EXPECT_EQ(h->backing_file, "../base/os.qcow2");
  EXPECT_EQ(h->backing_format, "qcow2");
  EXPECT_EQ(h->data_file, "/images/vm.data");
}

TEST(Qcow2Header, ExtensionsEndAtTheBackingFileNameWithoutEndMarker) {
  Qcow2Bytes image;
  image.end_marker = false;
  image.backing("base.qcow2", "qcow2");
  auto h = parse_qcow2_header(image.bytes());
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->backing_file, "base.qcow2");
  EXPECT_EQ(h->backing_format, "qcow2");
}

TEST(Qcow2Header, DataFileNameCountsOnlyWithItsIncompatibleBit) {
  // qemu ignores the name without the bit: so does feosd (it is then not part of the graph).
  Qcow2Bytes image;
  image.extensions.emplace_back(kQcow2ExtDataFile, "/etc/shadow");
  auto h = parse_qcow2_header(image.bytes());
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->data_file, "");
}

TEST(Qcow2Header, BackingFormatWithoutBackingFileIsIgnored) {
  Qcow2Bytes image;
  image.extensions.emplace_back(kQcow2ExtBackingFormat, "vmdk");
  auto h = parse_qcow2_header(image.bytes());
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->backing_format, "");
}

struct Refused {
  const char* name;
  std::string (*bytes)();
  const char* message;
};

class Qcow2HeaderRefused : public ::testing::TestWithParam<Refused> {};

TEST_P(Qcow2HeaderRefused, IsInvalidArgumentNamingTheField) {
  auto h = parse_qcow2_header(GetParam().bytes());
  ASSERT_FALSE(h) << "accepted";
  EXPECT_EQ(h.error().code, Code::kInvalidArgument);
  EXPECT_THAT(h.error().message, HasSubstr(GetParam().message)) << h.error().message;
}

Qcow2Bytes with(void (*mutate)(Qcow2Bytes&)) {
  Qcow2Bytes image;
  mutate(image);
  return image;
}

INSTANTIATE_TEST_SUITE_P(
    Headers, Qcow2HeaderRefused,
    ::testing::Values(
        Refused{"Short", [] { return Qcow2Bytes{}.bytes().substr(0, 50); },
                "qcow2 header: 50 bytes, fewer than the 72 of a header"},
        Refused{"NoMagic", [] { return std::string(512, 'x'); }, "qcow2 header: no qcow2 magic"},
        Refused{"Version1", [] { return with([](auto& i) { i.version = 1; }).bytes(); },
                "qcow2 version 1 is not supported (2 or 3)"},
        Refused{"Version4", [] { return with([](auto& i) { i.version = 4; }).bytes(); },
                "qcow2 version 4 is not supported"},
        Refused{"ClusterBitsTooSmall",
                [] { return with([](auto& i) { i.cluster_bits = 8; }).bytes(); },
                "qcow2 cluster_bits 8 is outside 9..21"},
        Refused{"ClusterBitsTooLarge",
                [] { return with([](auto& i) { i.cluster_bits = 22; }).bytes(); },
                "qcow2 cluster_bits 22 is outside 9..21"},
        Refused{"Version3Truncated", [] { return Qcow2Bytes{}.bytes().substr(0, 100); },
                "qcow2 version 3 header: 100 bytes, fewer than 104"},
        Refused{"HeaderLengthTooShort",
                [] { return with([](auto& i) { i.header_length = 96; }).bytes(); },
                "qcow2 header_length 96 is below 104"},
        Refused{"HeaderLengthBeyondCluster",
                [] {
                  return with([](auto& i) {
                           i.cluster_bits = 9;
                           i.header_length = 1024;
                           i.end_marker = false;
                         })
                      .bytes();
                },
                "qcow2 header_length 1024 exceeds the cluster size 512"},
        Refused{"AesEncrypted", [] { return with([](auto& i) { i.crypt_method = 1; }).bytes(); },
                "qcow2 crypt_method 1: encrypted images are not supported"},
        Refused{"LuksEncrypted", [] { return with([](auto& i) { i.crypt_method = 2; }).bytes(); },
                "qcow2 crypt_method 2: encrypted images are not supported"},
        Refused{"EncryptionHeaderExtension",
                [] {
                  return with([](auto& i) {
                           i.extensions.emplace_back(kQcow2ExtEncryption, std::string(16, '\0'));
                         })
                      .bytes();
                },
                "qcow2 header extension at offset 112: a full-disk encryption header"},
        Refused{
            "UnknownIncompatibleBit",
            [] {
              return with([](auto& i) { i.incompatible = uint64_t{1} << 5 | kQcow2Dirty; }).bytes();
            },
            "qcow2 incompatible_features: bits 0x20 are unknown to feosd"},
        Refused{"HighIncompatibleBit",
                [] { return with([](auto& i) { i.incompatible = uint64_t{1} << 63; }).bytes(); },
                "bits 0x8000000000000000 are unknown to feosd"},
        Refused{"Corrupt",
                [] { return with([](auto& i) { i.incompatible = kQcow2Corrupt; }).bytes(); },
                "qcow2 incompatible_features: the image is marked corrupt"},
        Refused{"BackingNameTooLong",
                [] { return with([](auto& i) { i.backing(std::string(1024, 'b')); }).bytes(); },
                "qcow2 backing file name of 1024 bytes (at most 1023)"},
        Refused{
            "BackingNameBeyondTheFile",
            [] { return with([](auto& i) { i.backing("base.raw"); }).bytes().substr(0, 125); },
            "qcow2 backing file name at offset 120 lies beyond the end of the file (125 bytes)"},
        Refused{"BackingNameBeyondTheCluster",
                [] {
                  return with([](auto& i) {
                           i.cluster_bits = 9;
                           i.backing(std::string(500, 'b'));
                         })
                      .bytes();
                },
                "qcow2 backing file name runs past the first cluster (512 bytes)"},
        Refused{"BackingOffsetBeyondTheCluster",
                [] {
                  auto bytes = Qcow2Bytes{}.bytes();
                  bytes[13] = 0x02;  // backing_file_offset 0x20000 > 64 KiB
                  bytes[19] = 4;
                  return bytes;
                },
                "qcow2 backing_file_offset 131072 lies beyond the first cluster (65536 bytes)"},
        Refused{"BackingNameWithNul",
                [] { return with([](auto& i) { i.backing("base.raw\0/etc/shadow"s); }).bytes(); },
                "qcow2 backing file name 'base.raw\\x00/etc/shadow' holds a control character"},
        Refused{"BackingNameWithAnEscapeSequence",
                [] { return with([](auto& i) { i.backing("base.raw\n\x1b[2J"); }).bytes(); },
                "qcow2 backing file name 'base.raw\\x0a\\x1b[2J' holds a control character"},
        Refused{"BackingNbd",
                [] { return with([](auto& i) { i.backing("nbd://attacker:10809/x"); }).bytes(); },
                "qcow2 backing file name 'nbd://attacker:10809/x' names a protocol, not a file"},
        Refused{"BackingJson",
                [] {
                  return with([](auto& i) {
                           i.backing(R"(json:{"driver":"file","filename":"/etc/shadow"})");
                         })
                      .bytes();
                },
                "names a protocol, not a file"},
        Refused{"BackingFormatVmdk",
                [] { return with([](auto& i) { i.backing("inner.vmdk", "vmdk"); }).bytes(); },
                "qcow2 backing format 'vmdk': only raw and qcow2 backing files are supported"},
        Refused{"BackingFormatTooLong",
                [] { return with([](auto& i) { i.backing("b", std::string(16, 'q')); }).bytes(); },
                "qcow2 backing format name of 16 bytes (at most 15)"},
        Refused{"TwoBackingFormats",
                [] {
                  return with([](auto& i) {
                           i.backing("b", "raw");
                           i.extensions.emplace_back(kQcow2ExtBackingFormat, "vmdk");
                         })
                      .bytes();
                },
                "a second backing format extension"},
        Refused{"TwoDataFiles",
                [] {
                  return with([](auto& i) {
                           i.data_file("/images/a.data");
                           i.extensions.emplace_back(kQcow2ExtDataFile, "/etc/shadow");
                         })
                      .bytes();
                },
                "a second external data file extension"},
        Refused{"DataFileBitWithoutName",
                [] { return with([](auto& i) { i.incompatible = kQcow2ExternalData; }).bytes(); },
                "qcow2 incompatible_features: an external data file, but no data file name is "
                "recorded"},
        Refused{"RelativeDataFile",
                [] { return with([](auto& i) { i.data_file("vm.data"); }).bytes(); },
                "qcow2 external data file name 'vm.data' is relative"},
        Refused{"DataFileWithNul",
                [] { return with([](auto& i) { i.data_file("/images/a\0b"s); }).bytes(); },
                "qcow2 external data file name '/images/a\\x00b' holds a control character"},
        Refused{"DataFileRawWithoutDataFile",
                [] { return with([](auto& i) { i.autoclear = kQcow2DataFileRaw; }).bytes(); },
                "qcow2 autoclear_features: data-file-raw without an external data file"},
        Refused{
            "ExtensionLongerThanTheArea",
            [] {
              auto bytes =
                  with([](auto& i) { i.extensions.emplace_back(0x12345678, "x"); }).bytes();
              bytes[112 + 4] = 0x7f;  // length 0x7f000001
              return bytes;
            },
            "qcow2 header extension at offset 112: its length 2130706433 runs past the extension "
            "area (65536 bytes)"},
        Refused{"ExtensionPastTheBackingName",
                [] {
                  auto bytes = with([](auto& i) {
                                 i.extensions.emplace_back(0x12345678, std::string(16, 'x'));
                                 i.backing("base.raw");
                               }).bytes();
                  bytes[15] = 124;  // backing_file_offset inside the extension: the area ends there
                  return bytes;
                },
                "qcow2 header extension at offset 112: its length 16 runs past the extension area "
                "(124 bytes)"},
        Refused{"ExtensionHeaderPastTheFile", [] { return Qcow2Bytes{}.bytes().substr(0, 116); },
                "qcow2 header extension at offset 112 lies beyond the end of the file (116 bytes)"},
        Refused{"ExtensionDataPastTheFile",
                [] {
                  return with([](auto& i) {
                           i.extensions.emplace_back(kQcow2ExtDataFile, "/images/x.data");
                         })
                      .bytes()
                      .substr(0, 124);
                },
                "qcow2 header extension at offset 112 runs past the end of the file (124 bytes)"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Qcow2Header, HeadSizeIsTheFirstCluster) {
  EXPECT_EQ(image_head_size(Qcow2Bytes{}.bytes()), 65536u);
  EXPECT_EQ(image_head_size(with([](auto& i) { i.cluster_bits = 9; }).bytes()), 512u);
  EXPECT_EQ(image_head_size(with([](auto& i) { i.cluster_bits = 21; }).bytes()), 2097152u);
  EXPECT_EQ(image_head_size(with([](auto& i) { i.cluster_bits = 40; }).bytes()), kImageProbeBytes);
  EXPECT_EQ(image_head_size(std::string(4096, 'x')), kImageProbeBytes);
  EXPECT_EQ(image_head_size("QFI\xfb"), kImageProbeBytes);
}

class ReadImageHead : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& bytes) {
    std::string path = dir_ / name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  TempDir dir_;
};

TEST_F(ReadImageHead, ReadsTheProbeOrTheFirstCluster) {
  EXPECT_EQ(read_image_head(write("short", "abc"))->size(), 3u);
  EXPECT_EQ(read_image_head(write("raw", std::string(1 << 20, 'r')))->size(), kImageProbeBytes);
  Qcow2Bytes image;
  image.size = 200 * 1024;
  image.backing("base.raw");
  auto head = read_image_head(write("image.qcow2", image.bytes()));
  ASSERT_TRUE(head) << head.error().to_string();
  EXPECT_EQ(head->size(), 65536u);
  EXPECT_EQ(parse_qcow2_header(*head)->backing_file, "base.raw");
  image.size = 5000;  // shorter than its cluster: all of it
  EXPECT_EQ(read_image_head(write("small.qcow2", image.bytes()))->size(), 5000u);
}

TEST_F(ReadImageHead, RefusesWhatIsNotAFileWithoutBlocking) {
  std::string fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto head = read_image_head(fifo);  // no writer: a blocking open would hang here
  ASSERT_FALSE(head);
  EXPECT_EQ(head.error().code, Code::kInvalidArgument);
  EXPECT_EQ(head.error().message,
            quote_for_message(fifo) + " is not a regular file or block device");

  std::filesystem::create_symlink(write("target", "x"), dir_ / "link");
  head = read_image_head(dir_ / "link");
  ASSERT_FALSE(head);
  EXPECT_EQ(head.error().code, Code::kInvalidArgument);
  EXPECT_THAT(head.error().message, HasSubstr("is a symbolic link"));

  head = read_image_head(dir_ / "missing");
  ASSERT_FALSE(head);
  EXPECT_EQ(head.error().code, Code::kNotFound);
  head = read_image_head(dir_.path());
  ASSERT_FALSE(head);
  EXPECT_EQ(head.error().code, Code::kInvalidArgument);
}

}  // namespace
}  // namespace feos::vmm::qemu
