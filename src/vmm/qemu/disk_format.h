#pragma once
// What feosd reads of a disk image before qemu may open it: which format its first bytes announce
// and, for qcow2, the header fields that name other files (backing file, external data file) or
// that feosd refuses (unknown incompatible features, encryption, a corrupt mark). The parsers are
// pure functions over bytes (fuzzed: fuzz/image_header_fuzzer.cc); read_image_head() reads them.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"

namespace feos::vmm::qemu {

// The image format a file's first bytes announce, by the probes of qemu's block drivers
// (block/*.c). kNone: none of them, i.e. raw data. dmg has no magic (qemu probes it by the file
// name) and never matters here: qemu is always told the driver (block_graph.h).
enum class ImageMagic {
  kNone,
  kQcow2,           // "QFI\xfb", any version (parse_qcow2_header() refuses qcow version 1)
  kVmdk,            // sparse extent: "KDMV" or "COWD"
  kVmdkDescriptor,  // text descriptor: "# Disk DescriptorFile", or qemu's "version=N" line probe
  kVdi,             // 0xbeda107f (little endian) at offset 0x40
  kVhdx,            // "vhdxfile"
  kVpc,             // "conectix"
  kQed,             // "QED\0"
  kLuks,            // "LUKS\xba\xbe"
  kParallels,       // "WithoutFreeSpace" or "WithouFreSpacExt"
  kBochs,           // "Bochs Virtual HD Image"
  kCloop,           // the cloop v2 shell header
};

std::string_view magic_name(ImageMagic magic);  // "qcow2", "VMDK", ... ("raw" for kNone)

ImageMagic detect_image_magic(std::string_view head);

// qcow2 incompatible feature bits feosd knows (docs/interop/qcow2.txt); any other is refused.
inline constexpr uint64_t kQcow2Dirty = uint64_t{1} << 0;
inline constexpr uint64_t kQcow2Corrupt = uint64_t{1} << 1;
inline constexpr uint64_t kQcow2ExternalData = uint64_t{1} << 2;
inline constexpr uint64_t kQcow2CompressionType = uint64_t{1} << 3;
inline constexpr uint64_t kQcow2ExtendedL2 = uint64_t{1} << 4;
inline constexpr uint64_t kQcow2KnownIncompatible = (uint64_t{1} << 5) - 1;
// Autoclear bit 1: the external data file is a valid raw image by itself.
inline constexpr uint64_t kQcow2DataFileRaw = uint64_t{1} << 1;

// Header extension types (0: end of the extension area).
inline constexpr uint32_t kQcow2ExtBackingFormat = 0xe2792aca;
inline constexpr uint32_t kQcow2ExtFeatureTable = 0x6803f857;
inline constexpr uint32_t kQcow2ExtEncryption = 0x0537be77;
inline constexpr uint32_t kQcow2ExtBitmaps = 0x23852875;
inline constexpr uint32_t kQcow2ExtDataFile = 0x44415441;

struct Qcow2Header {
  uint32_t version = 0;        // 2 or 3
  uint32_t cluster_bits = 0;   // 9..21
  uint32_t header_length = 0;  // 72 for version 2
  uint64_t incompatible_features = 0;
  uint64_t compatible_features = 0;
  uint64_t autoclear_features = 0;
  std::string backing_file;    // as written in the header; "" when none
  std::string backing_format;  // "raw", "qcow2" or "" (not recorded: probe the file)
  std::string data_file;       // absolute; set exactly when the image has an external data file
};

// Parses a qcow2 header the way qemu 7.2 reads it (block/qcow2.c qcow2_do_open): the fixed
// header, the extensions from header_length up to the backing file name (or the end of the first
// cluster) until an end marker, each skipped by its length rounded up to 8, and the backing file
// name. `head` is the file's first cluster, or the whole file when shorter (read_image_head()).
// Errors: INVALID_ARGUMENT, the message naming the field, for a header feosd does not handle: no
// magic, a version other than 2 and 3, a cluster size outside 2^9..2^21, a header or extension
// running past the extension area or the end of `head`, an encrypted image (crypt_method, or the
// encryption header extension), unknown incompatible feature bits, a corrupt mark, a backing file
// name longer than 1023 bytes, outside the first cluster, with a NUL byte or a protocol prefix
// ("nbd:", "json:"), a backing format other than raw and qcow2, a repeated backing format or
// data file extension, and an external data file bit without a name, with a relative name (qemu
// would resolve it against its own working directory) or a name holding a NUL byte.
Result<Qcow2Header> parse_qcow2_header(std::string_view head);

// read_image_head() reads this much first: every magic, and a qcow2 image's fixed header.
inline constexpr size_t kImageProbeBytes = 4096;

// How many bytes of the file parse_qcow2_header() needs, given its first bytes: a qcow2 image's
// first cluster (when its cluster size is one qemu accepts), else kImageProbeBytes.
size_t image_head_size(std::string_view probe);

// The first image_head_size() bytes of the regular file or block device at `path` (fewer when it
// is shorter), opened without following a symbolic link and without blocking.
// Errors: NOT_FOUND if it does not exist; INVALID_ARGUMENT when it is a symbolic link or not a
// regular file or block device; INTERNAL with the errno text otherwise. Messages quote `path`.
Result<std::string> read_image_head(const std::string& path);

}  // namespace feos::vmm::qemu
