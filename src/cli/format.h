#pragma once
// Pure rendering of API responses for humans (tables, key: value blocks, event lines), plus the
// CLI's one error-line format. No gRPC: only the generated messages. JSON output (-o json) is
// cli/json_format.h.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "feos/vm/vmm/api/v1/vm.pb.h"
#include "feosd/v1/host.pb.h"

namespace feos::cli {

namespace v1 = ::feos::vm::vmm::api::v1;
namespace hostv1 = ::feosd::v1;

// "running" for VM_STATE_RUNNING, "unspecified" for 0, "state-<n>" for values this build lacks.
std::string state_name(v1::VmState state);

// Age of a timestamp for tables: "45s", "12m", "5h", "3d" (whole units, rounded down); "-" when
// `created_unix_ms` is 0 (unknown); "0s" when it lies in the future.
std::string format_age(int64_t created_unix_ms, int64_t now_unix_ms);

// A duration given in seconds, as "30 s" or "0.5 s" (no trailing zeros).
std::string format_seconds(double seconds);

// `text` cut to at most `width` characters, ending in "..." when cut. Precondition: width >= 3.
std::string truncate(std::string_view text, size_t width);

// The `vm list` table: header ID STATE VCPUS MEMORY PID REASON AGE, one row per VM in the
// response's order, columns left-aligned and separated by three spaces, no trailing spaces.
// MEMORY is "<n>MiB", PID and REASON are "-" when unset, REASON is cut to 40 characters.
std::string format_vm_table(const v1::ListVmsResponse& list, int64_t now_unix_ms);

// The `vm get` block: one "key: value" line per fact (id, state, reason, pid, created, vcpus,
// memory, image, then kernel/initramfs/cmdline, one line per disk, nic and gpu, ignition size
// when set), keys padded so values line up.
// A gpu line is the request in --gpu syntax, then what the host assigned for it (the VmInfo.gpus
// entry whose request has the same address), e.g.
//   18:00.0,rombar=off -> 0000:18:00.0 (10de:2330, group 59, was nvidia), 0000:18:00.1 (...);
//   group peers: 0000:19:00.0 (...); numa node 1
// or "<request> (not assigned)". Assigned GPUs that match no request get a line of their own.
std::string format_vm_details(const v1::VmInfo& vm, int64_t now_unix_ms);

// A byte count in the largest binary unit that keeps at least 1: "128GiB", "32MiB", "4KiB",
// "512B"; sizes that are not a whole number of that unit get one decimal ("1.5GiB").
std::string format_bytes(uint64_t bytes);

// A device's STATUS cell: "available", "assigned:<first 8 characters of the VM id>" ("assigned"
// without a VM id), "not-assignable", "unknown" for DEVICE_STATUS_UNSPECIFIED, "status-<n>" for
// values this build lacks.
std::string device_status_text(const hostv1::PciDeviceInfo& device);

// The `gpu list` table: header ADDRESS ID NAME DRIVER GROUP NUMA SWITCH BAR STATUS REASON, one row
// per device in the response's order. ID is "vendor:device" ("10de:2330"); NAME is the vendor's
// short name ("NVIDIA" for "NVIDIA Corporation", "AMD/ATI" for "... [AMD/ATI]") and the device
// name (the class name when both are unknown), cut to 44 characters; NUMA is "-" when negative;
// SWITCH is the upstream port of the PCIe switch above the device, without domain 0000
// ("16:00.0"); BAR is the largest BAR's size (format_bytes); REASON is cut to 40 characters. Empty
// cells are "-". The 8-GPU HGX host's `gpu list` stays within 130 columns.
// Linear in the number of devices: one pass to size the columns, one to write.
std::string format_pci_table(const hostv1::ListPciDevicesResponse& list);

// The `host check` report: one row per item "OK|FAIL   <name>   <detail>" (aligned columns), then
// "host ready for GPU passthrough" when `ready`, else "host NOT ready: <n> problem(s)" with n the
// number of failed items.
std::string format_host_check(const hostv1::CheckHostResponse& check);

// The `vm ping` block: version, build_version, pid, features.
std::string format_ping(const v1::PingVmResponse& ping);

// The state change an event carries, if its `data` packs a VmStateChangedEvent.
std::optional<v1::VmStateChangedEvent> state_change_of(const v1::VmEvent& event);

// One `vm events` line: "<event id> <vm id> <state> <reason>" (reason omitted when empty), or
// "<event id> <vm id> <component> <type url>" for events that carry something else. Empty ids
// print as "-" so the columns stay countable.
std::string format_event_line(const v1::VmEvent& event);

// gRPC status code name ("NOT_FOUND") for codes 0..16, "CODE_<n>" otherwise.
std::string grpc_code_name(int code);

// The CLI's error line: "feosctl: error: <CODE>: <message>" (no newline). Newlines inside the
// message become spaces so that every error is exactly one line.
std::string error_line(std::string_view code_name, std::string_view message);

}  // namespace feos::cli
