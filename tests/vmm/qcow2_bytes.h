#pragma once
// Crafted qcow2 headers for tests (docs/interop/qcow2.txt): the fixed header of version 2 or 3,
// header extensions in the order given (then an end marker), and the backing file name after
// them, in a file of `size` bytes.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "vmm/qemu/disk_format.h"

namespace feos::vmm::qemu::testing {

struct Qcow2Bytes {
  uint32_t version = 3;
  uint32_t cluster_bits = 16;
  uint32_t crypt_method = 0;
  uint64_t incompatible = 0;
  uint64_t compatible = 0;
  uint64_t autoclear = 0;
  uint32_t header_length = 112;  // version 3 only (qemu-img writes 112)
  std::vector<std::pair<uint32_t, std::string>> extensions;
  bool end_marker = true;
  std::string backing_file;  // written after the extensions; "" for none
  size_t size = 4096;        // bytes of the file

  Qcow2Bytes& backing(std::string name, std::string format = "") {
    backing_file = std::move(name);
    if (!format.empty()) extensions.emplace_back(kQcow2ExtBackingFormat, std::move(format));
    return *this;
  }
  Qcow2Bytes& data_file(std::string name) {
    incompatible |= kQcow2ExternalData;
    extensions.emplace_back(kQcow2ExtDataFile, std::move(name));
    return *this;
  }

  std::string bytes() const {
    std::string out(size, '\0');
    auto put = [&](size_t at, uint64_t value, int width) {
      for (int i = 0; i < width; ++i)
        if (at + i < out.size())
          out[at + i] = static_cast<char>((value >> (8 * (width - 1 - i))) & 0xff);
    };
    auto put_bytes = [&](size_t at, const std::string& data) {
      for (size_t i = 0; i < data.size() && at + i < out.size(); ++i) out[at + i] = data[i];
    };
    put_bytes(0, "QFI\xfb");
    put(4, version, 4);
    put(20, cluster_bits, 4);
    put(32, crypt_method, 4);
    size_t offset = 72;
    if (version >= 3) {
      put(72, incompatible, 8);
      put(80, compatible, 8);
      put(88, autoclear, 8);
      put(96, 4, 4);  // refcount_order
      put(100, header_length, 4);
      offset = header_length;
    }
    for (const auto& [type, data] : extensions) {
      put(offset, type, 4);
      put(offset + 4, data.size(), 4);
      put_bytes(offset + 8, data);
      offset += 8 + ((data.size() + 7) & ~size_t{7});
    }
    if (end_marker) offset += 8;  // type 0, length 0
    if (!backing_file.empty()) {
      put(8, offset, 8);
      put(16, backing_file.size(), 4);
      put_bytes(offset, backing_file);
    }
    return out;
  }
};

}  // namespace feos::vmm::qemu::testing
