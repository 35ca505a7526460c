#include "vmm/qemu/disk_format.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace feos::vmm::qemu {
namespace {

// A name from an image header becomes a qemu argument and goes into logs: no NUL (qemu would cut
// it) and no control character (it could forge log lines).
bool has_control_character(std::string_view name) {
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

// Big-endian value of `bytes` bytes at `at`; the caller checked the bounds.
uint64_t big_endian(std::string_view data, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(data[at + i]);
  return v;
}

std::string hex(uint64_t value) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  do {
    out.insert(out.begin(), kDigits[value & 0xf]);
    value >>= 4;
  } while (value != 0);
  return "0x" + out;
}

// qemu's vmdk_probe() for text descriptors: comment lines and blank lines, then "version=N".
bool vmdk_descriptor(std::string_view head) {
  if (head.starts_with("# Disk DescriptorFile")) return true;
  std::string_view rest = head.substr(0, 512);  // qemu probes the first 512 bytes
  while (!rest.empty()) {
    if (rest.front() == '#') {
      size_t end = rest.find('\n');
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      continue;
    }
    if (rest.front() == ' ') {
      size_t text = rest.find_first_not_of(' ');
      rest = text == std::string_view::npos ? std::string_view() : rest.substr(text);
      if (rest.starts_with('\r')) rest.remove_prefix(1);
      if (rest.empty() || rest.front() != '\n') return false;
      rest.remove_prefix(1);
      continue;
    }
    for (const char* version : {"version=1", "version=2", "version=3"})
      if (rest.starts_with(version) &&
          (rest.substr(9).starts_with('\n') || rest.substr(9).starts_with("\r\n")))
        return true;
    return false;
  }
  return false;
}

// A name qemu would take for a protocol ("nbd:", "json:{...}"): a ':' before any '/'.
bool has_protocol(std::string_view name) {
  size_t stop = name.find_first_of(":/");
  return stop != std::string_view::npos && name[stop] == ':';
}

}  // namespace

std::string_view magic_name(ImageMagic magic) {
  switch (magic) {
    case ImageMagic::kNone: return "raw";
    case ImageMagic::kQcow2: return "qcow2";
    case ImageMagic::kVmdk: return "VMDK";
    case ImageMagic::kVmdkDescriptor: return "VMDK descriptor";
    case ImageMagic::kVdi: return "VDI";
    case ImageMagic::kVhdx: return "VHDX";
    case ImageMagic::kVpc: return "VPC (VHD)";
    case ImageMagic::kQed: return "QED";
    case ImageMagic::kLuks: return "LUKS";
    case ImageMagic::kParallels: return "Parallels";
    case ImageMagic::kBochs: return "Bochs";
    case ImageMagic::kCloop: return "cloop";
  }
  return "unknown";
}

ImageMagic detect_image_magic(std::string_view head) {
  using namespace std::string_view_literals;
  struct Prefix {
    std::string_view bytes;
    ImageMagic magic;
  };
  static constexpr Prefix kPrefixes[] = {
      {"QFI\xfb"sv, ImageMagic::kQcow2},
      {"KDMV"sv, ImageMagic::kVmdk},
      {"COWD"sv, ImageMagic::kVmdk},
      {"vhdxfile"sv, ImageMagic::kVhdx},
      {"conectix"sv, ImageMagic::kVpc},
      {"QED\0"sv, ImageMagic::kQed},
      {"LUKS\xba\xbe"sv, ImageMagic::kLuks},
      {"WithoutFreeSpace"sv, ImageMagic::kParallels},
      {"WithouFreSpacExt"sv, ImageMagic::kParallels},
      {"Bochs Virtual HD Image"sv, ImageMagic::kBochs},
      {"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0"sv, ImageMagic::kCloop},
  };
  for (const auto& prefix : kPrefixes)
    if (head.starts_with(prefix.bytes)) return prefix.magic;
  if (head.size() >= 0x44 && head.substr(0x40, 4) == "\x7f\x10\xda\xbe"sv) return ImageMagic::kVdi;
  if (vmdk_descriptor(head)) return ImageMagic::kVmdkDescriptor;
  return ImageMagic::kNone;
}

Result<Qcow2Header> parse_qcow2_header(std::string_view head) {
  auto invalid = [](const std::string& what) {
    return fail(Code::kInvalidArgument, "qcow2 " + what);
  };
  const std::string end_of_file = "the end of the file (" + std::to_string(head.size()) + " bytes)";
  if (head.size() < 72)
    return invalid("header: " + std::to_string(head.size()) +
                   " bytes, fewer than the 72 of a header");
  if (!head.starts_with("QFI\xfb")) return invalid("header: no qcow2 magic");
  Qcow2Header h;
  h.version = static_cast<uint32_t>(big_endian(head, 4, 4));
  if (h.version != 2 && h.version != 3)
    return invalid("version " + std::to_string(h.version) + " is not supported (2 or 3)");
  const uint64_t backing_offset = big_endian(head, 8, 8);
  const uint64_t backing_size = big_endian(head, 16, 4);
  h.cluster_bits = static_cast<uint32_t>(big_endian(head, 20, 4));
  const uint64_t crypt_method = big_endian(head, 32, 4);
  if (h.cluster_bits < 9 || h.cluster_bits > 21)
    return invalid("cluster_bits " + std::to_string(h.cluster_bits) + " is outside 9..21");
  const uint64_t cluster_size = uint64_t{1} << h.cluster_bits;
  h.header_length = 72;
  if (h.version == 3) {
    if (head.size() < 104)
      return invalid("version 3 header: " + std::to_string(head.size()) + " bytes, fewer than 104");
    h.incompatible_features = big_endian(head, 72, 8);
    h.compatible_features = big_endian(head, 80, 8);
    h.autoclear_features = big_endian(head, 88, 8);
    h.header_length = static_cast<uint32_t>(big_endian(head, 100, 4));
    if (h.header_length < 104)
      return invalid("header_length " + std::to_string(h.header_length) + " is below 104");
  }
  if (h.header_length > cluster_size)
    return invalid("header_length " + std::to_string(h.header_length) +
                   " exceeds the cluster size " + std::to_string(cluster_size));
  if (crypt_method != 0)
    return invalid("crypt_method " + std::to_string(crypt_method) +
                   ": encrypted images are not supported");
  if (uint64_t unknown = h.incompatible_features & ~kQcow2KnownIncompatible)
    return invalid("incompatible_features: bits " + hex(unknown) + " are unknown to feosd");
  if (h.incompatible_features & kQcow2Corrupt)
    return invalid(
        "incompatible_features: the image is marked corrupt (qemu-img check -r repairs it)");
  if (backing_offset > cluster_size)
    return invalid("backing_file_offset " + std::to_string(backing_offset) +
                   " lies beyond the first cluster (" + std::to_string(cluster_size) + " bytes)");

  // Header extensions: qemu reads them up to the backing file name, else to the cluster's end.
  const uint64_t area_end = backing_offset != 0 ? backing_offset : cluster_size;
  bool backing_format_seen = false;
  bool data_file_seen = false;
  std::string data_file;
  for (uint64_t offset = h.header_length; offset < area_end;) {
    const std::string at = "header extension at offset " + std::to_string(offset);
    if (area_end - offset < 8)
      return invalid(at + " runs past the extension area (" + std::to_string(area_end) + " bytes)");
    if (offset + 8 > head.size()) return invalid(at + " lies beyond " + end_of_file);
    const auto type = static_cast<uint32_t>(big_endian(head, offset, 4));
    const uint64_t length = big_endian(head, offset + 4, 4);
    offset += 8;
    if (length > area_end - offset)
      return invalid(at + ": its length " + std::to_string(length) +
                     " runs past the extension area (" + std::to_string(area_end) + " bytes)");
    if (type == 0) break;
    if (offset + length > head.size()) return invalid(at + " runs past " + end_of_file);
    const std::string_view data = head.substr(offset, length);
    if (type == kQcow2ExtBackingFormat) {
      if (backing_format_seen) return invalid(at + ": a second backing format extension");
      if (length >= 16)
        return invalid("backing format name of " + std::to_string(length) + " bytes (at most 15)");
      backing_format_seen = true;
      h.backing_format = std::string(data);
    } else if (type == kQcow2ExtDataFile) {
      if (data_file_seen) return invalid(at + ": a second external data file extension");
      data_file_seen = true;
      data_file = std::string(data);
    } else if (type == kQcow2ExtEncryption) {
      return invalid(at + ": a full-disk encryption header: encrypted images are not supported");
    }
    // Feature name table, bitmaps and extensions unknown to feosd name no file: skipped.
    offset += (length + 7) & ~uint64_t{7};
  }

  if (backing_offset != 0) {
    if (backing_size > 1023)
      return invalid("backing file name of " + std::to_string(backing_size) +
                     " bytes (at most 1023)");
    if (backing_offset + backing_size > cluster_size)
      return invalid("backing file name runs past the first cluster (" +
                     std::to_string(cluster_size) + " bytes)");
    if (backing_offset + backing_size > head.size())
      return invalid("backing file name at offset " + std::to_string(backing_offset) +
                     " lies beyond " + end_of_file);
    h.backing_file = std::string(head.substr(backing_offset, backing_size));
    if (has_control_character(h.backing_file))
      return invalid("backing file name " + quote_for_message(h.backing_file) +
                     " holds a control character");
    if (has_protocol(h.backing_file))
      return invalid("backing file name " + quote_for_message(h.backing_file) +
                     " names a protocol, not a file");
  }
  if (h.backing_file.empty()) {
    h.backing_format.clear();  // qemu ignores it without a backing file
  } else if (!h.backing_format.empty() && h.backing_format != "raw" &&
             h.backing_format != "qcow2") {
    return invalid("backing format " + quote_for_message(h.backing_format) +
                   ": only raw and qcow2 backing files are supported");
  }

  // The name counts only with the incompatible bit (qemu ignores it otherwise).
  if (h.incompatible_features & kQcow2ExternalData) {
    if (data_file.empty())
      return invalid(
          "incompatible_features: an external data file, but no data file name is recorded");
    if (has_control_character(data_file))
      return invalid("external data file name " + quote_for_message(data_file) +
                     " holds a control character");
    if (data_file.front() != '/')
      return invalid(
          "external data file name " + quote_for_message(data_file) +
          " is relative: qemu resolves it against its own working directory (recreate the "
          "image with an absolute data_file)");
    h.data_file = std::move(data_file);
  } else if (h.autoclear_features & kQcow2DataFileRaw) {
    return invalid("autoclear_features: data-file-raw without an external data file");
  }
  return h;
}

size_t image_head_size(std::string_view probe) {
  if (!probe.starts_with("QFI\xfb") || probe.size() < 24) return kImageProbeBytes;
  const uint64_t bits = big_endian(probe, 20, 4);
  if (bits < 9 || bits > 21) return kImageProbeBytes;
  return size_t{1} << bits;
}

namespace {

// pread() until `buf` is full or the file ends; bytes read or -errno.
ssize_t read_at(int fd, char* buf, size_t size, size_t offset) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, buf + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

}  // namespace

Result<std::string> read_image_head(const std::string& path) {
  const std::string shown = quote_for_message(path);
  // O_NONBLOCK: a FIFO swapped in after the checks must not hang the daemon.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return fail(Code::kNotFound, shown + " not found");
    if (err == ELOOP) return fail(Code::kInvalidArgument, shown + " is a symbolic link");
    return fail_errno("open " + shown, err);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return fail_errno("stat " + shown, err);
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    ::close(fd);
    return fail(Code::kInvalidArgument, shown + " is not a regular file or block device");
  }
  std::string head(kImageProbeBytes, '\0');
  ssize_t n = read_at(fd, head.data(), head.size(), 0);
  if (n >= 0) {
    head.resize(static_cast<size_t>(n));
    const size_t wanted = image_head_size(head);
    if (wanted > head.size() && head.size() == kImageProbeBytes) {
      head.resize(wanted);
      ssize_t more =
          read_at(fd, head.data() + kImageProbeBytes, wanted - kImageProbeBytes, kImageProbeBytes);
      n = more < 0 ? more : static_cast<ssize_t>(kImageProbeBytes) + more;
      if (n >= 0) head.resize(static_cast<size_t>(n));
    }
  }
  ::close(fd);
  if (n < 0) return fail_errno("read " + shown, static_cast<int>(-n));
  return head;
}

}  // namespace feos::vmm::qemu
