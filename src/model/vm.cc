#include "model/vm.h"

namespace feos::model {

std::string_view state_name(VmState state) {
  switch (state) {
    case VmState::kUnspecified: return "unspecified";
    case VmState::kCreating: return "creating";
    case VmState::kCreated: return "created";
    case VmState::kRunning: return "running";
    case VmState::kPaused: return "paused";
    case VmState::kStopped: return "stopped";
    case VmState::kCrashed: return "crashed";
  }
  return "unspecified";
}

std::string_view hugepage_size_name(HugepageSize size) {
  switch (size) {
    case HugepageSize::kHostDefault: return "";
    case HugepageSize::k2M: return "2M";
    case HugepageSize::k1G: return "1G";
  }
  return "";
}

uint64_t hugepage_size_kib(HugepageSize size) {
  switch (size) {
    case HugepageSize::kHostDefault: return 0;
    case HugepageSize::k2M: return 2048;
    case HugepageSize::k1G: return 1024 * 1024;
  }
  return 0;
}

std::string_view firmware_name(FirmwareKind kind) {
  switch (kind) {
    case FirmwareKind::kBios: return "bios";
    case FirmwareKind::kUefi: return "uefi";
  }
  return "";
}

std::string_view guest_numa_name(GuestNumaMode mode) {
  switch (mode) {
    case GuestNumaMode::kDefault: return "default";
    case GuestNumaMode::kAuto: return "auto";
    case GuestNumaMode::kOff: return "off";
  }
  return "";
}

std::string_view disk_format_name(DiskFormat format) {
  switch (format) {
    case DiskFormat::kUnknown: return "";
    case DiskFormat::kRaw: return "raw";
    case DiskFormat::kQcow2: return "qcow2";
  }
  return "";
}

bool names_registry_image(std::string_view ref) {
  return !ref.empty() && ref.front() != '/' && ref.find("://") == std::string_view::npos;
}

}  // namespace feos::model
