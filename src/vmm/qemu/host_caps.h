#pragma once
// The host facts the QEMU adapter reads: the CPU's physical address bits, the host's RAM, and
// whether kvm can be used.
#include <cstdint>
#include <string_view>
#include <utility>

#include "sys/filesystem.h"
#include "sys/host_paths.h"

namespace feos::vmm::qemu {

// The "MemTotal:" of /proc/meminfo text in MiB; 0 when there is no such line or it does not parse.
uint64_t host_memory_mib_from_meminfo(std::string_view meminfo);

// The physical address bits in /proc/cpuinfo text (the first "address sizes : 46 bits physical,
// 57 bits virtual" line); 0 when there is no such line or it does not parse.
int host_phys_bits_from_cpuinfo(std::string_view cpuinfo);

// Whether <dev>/kvm opens read-write (what accel "auto" picks kvm by).
bool kvm_available(const sys::HostPaths& paths);

// Reads the facts through the Filesystem seam, anew on each call (they are cheap and a test may
// change them).
class HostCaps {
 public:
  // `fs` must outlive this object.
  HostCaps(const sys::Filesystem& fs, sys::HostPaths paths) : fs_(fs), paths_(std::move(paths)) {}

  // The CPU's physical address bits from <proc>/cpuinfo; 0 when unknown (logged as a warning).
  int phys_bits() const;
  // The host's RAM from <proc>/meminfo in MiB; 0 when unknown.
  uint64_t memory_mib() const;

 private:
  const sys::Filesystem& fs_;
  const sys::HostPaths paths_;
};

}  // namespace feos::vmm::qemu
