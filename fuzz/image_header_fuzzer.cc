// Disk image headers (src/vmm/qemu/disk_format.h): detect_image_magic, image_head_size and
// parse_qcow2_header on the input as the head of an image file. Checks: nothing crashes; every
// refusal is INVALID_ARGUMENT with a message naming a qcow2 field; the head size is the probe size
// or a cluster size qemu accepts; an accepted header has the qcow2 magic, version 2 or 3, a
// cluster size of 2^9..2^21, a header length feosd handles, no unknown incompatible feature and
// no corrupt mark, a backing file name that is the input's bytes where the header says (no NUL,
// no protocol prefix), a backing format of raw or qcow2 only beside a backing file, and an
// absolute data file exactly when the external data file bit is set.
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "vmm/qemu/disk_format.h"

using feos::Code;
namespace q = feos::vmm::qemu;

namespace {

uint64_t big_endian(std::string_view data, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(data[at + i]);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view head = feos::fuzz::as_text(data, size);
  const q::ImageMagic magic = q::detect_image_magic(head);
  FUZZ_CHECK(!q::magic_name(magic).empty(), "magic without a name");

  const size_t wanted = q::image_head_size(head);
  FUZZ_CHECK(wanted == q::kImageProbeBytes ||
                 (wanted >= 512 && wanted <= (size_t{1} << 21) && (wanted & (wanted - 1)) == 0),
             "head size %zu", wanted);

  auto parsed = q::parse_qcow2_header(head);
  if (!parsed) {
    feos::fuzz::check_error(parsed.error(), Code::kInvalidArgument, "parse_qcow2_header");
    FUZZ_CHECK(parsed.error().message.rfind("qcow2 ", 0) == 0, "message names no qcow2 field: %s",
               parsed.error().message.c_str());
    return 0;
  }
  const q::Qcow2Header& h = *parsed;
  FUZZ_CHECK(magic == q::ImageMagic::kQcow2, "accepted a header without the qcow2 magic");
  FUZZ_CHECK(h.version == 2 || h.version == 3, "accepted version %u", h.version);
  FUZZ_CHECK(h.cluster_bits >= 9 && h.cluster_bits <= 21, "accepted cluster_bits %u",
             h.cluster_bits);
  FUZZ_CHECK(wanted == (size_t{1} << h.cluster_bits), "head size %zu for cluster_bits %u", wanted,
             h.cluster_bits);
  FUZZ_CHECK(h.version == 2 ? h.header_length == 72
                            : h.header_length >= 104 && h.header_length <= (1u << h.cluster_bits),
             "accepted header_length %u (version %u)", h.header_length, h.version);
  FUZZ_CHECK((h.incompatible_features & ~q::kQcow2KnownIncompatible) == 0,
             "accepted unknown incompatible features");
  FUZZ_CHECK((h.incompatible_features & q::kQcow2Corrupt) == 0, "accepted a corrupt image");
  FUZZ_CHECK(big_endian(head, 32, 4) == 0, "accepted an encrypted image");

  if (!h.backing_file.empty()) {
    const uint64_t offset = big_endian(head, 8, 8);
    FUZZ_CHECK(h.backing_file.size() <= 1023 && offset + h.backing_file.size() <= head.size() &&
                   head.substr(offset, h.backing_file.size()) == h.backing_file,
               "backing file name is not the input's bytes at offset %llu",
               static_cast<unsigned long long>(offset));
    FUZZ_CHECK(h.backing_file.find('\0') == std::string::npos, "backing file name with NUL");
    const size_t stop = h.backing_file.find_first_of(":/");
    FUZZ_CHECK(stop == std::string::npos || h.backing_file[stop] == '/',
               "backing file name with a protocol prefix");
  }
  FUZZ_CHECK(h.backing_format.empty() || (!h.backing_file.empty() && (h.backing_format == "raw" ||
                                                                      h.backing_format == "qcow2")),
             "backing format of %zu bytes accepted", h.backing_format.size());
  const bool external = (h.incompatible_features & q::kQcow2ExternalData) != 0;
  FUZZ_CHECK(external == !h.data_file.empty(), "data file %s the external data bit",
             external ? "missing with" : "set without");
  FUZZ_CHECK(h.data_file.empty() ||
                 (h.data_file.front() == '/' && h.data_file.find('\0') == std::string::npos),
             "data file name not absolute or with NUL");
  return 0;
}
