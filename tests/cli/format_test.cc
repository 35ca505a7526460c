// Rendering of responses: table, key: value block, event lines, JSON, error lines.
#include "cli/format.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace feos::cli {
namespace {

// 2026-11-24T12:00:00Z
constexpr int64_t kNow = 1795521600000;

template <typename M>
M from_text(const std::string& text) {
  M message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

v1::ListVmsResponse three_vms() {
  return from_text<v1::ListVmsResponse>(R"pb(
    vms {
      vm_id: "3f0c1c3e-9b1a-4d7e-8d2c-0a1b2c3d4e5f"
      state: VM_STATE_RUNNING
      config {
        cpus { boot_vcpus: 4 }
        memory { size_mib: 8192 }
      }
      state_reason: "started"
      pid: 81234
      created_unix_ms: 1795521555000
    }
    vms {
      vm_id: "vm-b"
      state: VM_STATE_CRASHED
      config {
        cpus { boot_vcpus: 1 }
        memory { size_mib: 512 }
      }
      state_reason: "qemu exited with status 1: could not open /dev/vfio/12: Device or\nresource busy"
      created_unix_ms: 1795514400000
    }
    vms {
      vm_id: "vm-c"
      state: VM_STATE_CREATED
      config {
        cpus { boot_vcpus: 16 }
        memory { size_mib: 65536 }
      }
      created_unix_ms: 1795262400000
    }
  )pb");
}

TEST(FormatTable, ListsEveryVmWithAlignedColumns) {
  const std::string expected =
      "ID                                     STATE     VCPUS   MEMORY     PID     "
      "REASON                                     AGE\n"
      "3f0c1c3e-9b1a-4d7e-8d2c-0a1b2c3d4e5f   running   4       8192MiB    81234   "
      "started                                    45s\n"
      "vm-b                                   crashed   1       512MiB     -       "
      "qemu exited with status 1: could not ...   2h\n"
      "vm-c                                   created   16      65536MiB   -       "
      "-                                          3d\n";
  EXPECT_EQ(format_vm_table(three_vms(), kNow), expected);
}

TEST(FormatTable, EmptyListIsJustTheHeader) {
  EXPECT_EQ(format_vm_table(v1::ListVmsResponse{}, kNow),
            "ID   STATE   VCPUS   MEMORY   PID   REASON   AGE\n");
}

TEST(FormatTable, RowsHaveNoTrailingSpacesAndOneLineEach) {
  std::string table = format_vm_table(three_vms(), kNow);
  size_t lines = 0;
  for (size_t pos = 0; pos < table.size();) {
    size_t end = table.find('\n', pos);
    ASSERT_NE(end, std::string::npos);
    EXPECT_NE(table[end - 1], ' ');
    pos = end + 1;
    ++lines;
  }
  EXPECT_EQ(lines, 4u);
}

TEST(FormatAge, PicksTheLargestUnitThatKeepsTwoDigitsOfSense) {
  EXPECT_EQ(format_age(0, kNow), "-");
  EXPECT_EQ(format_age(kNow + 5000, kNow), "0s");
  EXPECT_EQ(format_age(kNow - 119'999, kNow), "119s");
  EXPECT_EQ(format_age(kNow - 120'000, kNow), "2m");
  EXPECT_EQ(format_age(kNow - 7'199'000, kNow), "119m");
  EXPECT_EQ(format_age(kNow - 7'200'000, kNow), "2h");
  EXPECT_EQ(format_age(kNow - 47 * 3'600'000LL, kNow), "47h");
  EXPECT_EQ(format_age(kNow - 48 * 3'600'000LL, kNow), "2d");
}

TEST(FormatTruncate, CutsWithEllipsis) {
  EXPECT_EQ(truncate("short", 10), "short");
  EXPECT_EQ(truncate("exactly10!", 10), "exactly10!");
  EXPECT_EQ(truncate("eleven char", 10), "eleven ...");
}

TEST(FormatState, NamesAreLowerCaseWithoutPrefix) {
  EXPECT_EQ(state_name(v1::VM_STATE_RUNNING), "running");
  EXPECT_EQ(state_name(v1::VM_STATE_UNSPECIFIED), "unspecified");
  EXPECT_EQ(state_name(static_cast<v1::VmState>(42)), "state-42");
}

TEST(FormatDetails, ShowsStateAndWholeConfig) {
  auto vm = from_text<v1::VmInfo>(R"pb(
    vm_id: "vm-a"
    state: VM_STATE_RUNNING
    state_reason: "started"
    pid: 4242
    created_unix_ms: 1795521300000
    config {
      cpus { boot_vcpus: 2 max_vcpus: 8 }
      memory { size_mib: 4096 hugepages: true }
      image_ref: "/var/lib/images/base.qcow2"
      disks { device_id: "data0" path: "/srv/data.img" readonly: true }
      disks { vfio_pci { bdf: "0000:05:00.0" } }
      net {
        device_id: "net0"
        tap { tap_name: "tap0" }
        mac_address: "52:54:00:12:34:56"
      }
      ignition: "0123456789"
      boot { kernel: "/boot/vmlinuz" initramfs: "/boot/initrd.img" cmdline: "console=ttyS0" }
    }
  )pb");
  EXPECT_EQ(format_vm_details(vm, kNow),
            "id:         vm-a\n"
            "state:      running\n"
            "reason:     started\n"
            "pid:        4242\n"
            "created:    2026-11-24T11:55:00Z (5m ago)\n"
            "vcpus:      2 (max 8)\n"
            "memory:     4096 MiB, hugepages\n"
            "image:      /var/lib/images/base.qcow2\n"
            "kernel:     /boot/vmlinuz\n"
            "initramfs:  /boot/initrd.img\n"
            "cmdline:    console=ttyS0\n"
            "disk:       /srv/data.img,ro,id=data0\n"
            "disk:       vfio-pci=0000:05:00.0\n"
            "nic:        tap0,mac=52:54:00:12:34:56,id=net0\n"
            "ignition:   10 bytes\n");
}

TEST(FormatDetails, UnsetFactsAreDashesAndOptionalLinesAreLeftOut) {
  auto vm = from_text<v1::VmInfo>(R"pb(
    vm_id: "vm-b"
    state: VM_STATE_CREATED
    config {
      cpus { boot_vcpus: 1 }
      memory { size_mib: 512 }
    }
  )pb");
  EXPECT_EQ(format_vm_details(vm, kNow),
            "id:       vm-b\n"
            "state:    created\n"
            "reason:   -\n"
            "pid:      -\n"
            "created:  -\n"
            "vcpus:    1\n"
            "memory:   512 MiB\n"
            "image:    -\n");
}

TEST(FormatPing, ListsVersionAndFeatures) {
  auto ping = from_text<v1::PingVmResponse>(
      R"pb(version: "0.1.0" build_version: "g1234" pid: 77 features: "qemu" features: "vfio")pb");
  EXPECT_EQ(format_ping(ping),
            "version:        0.1.0\n"
            "build_version:  g1234\n"
            "pid:            77\n"
            "features:       qemu, vfio\n");
}

v1::VmEvent state_event(const std::string& id, const std::string& vm, v1::VmState state,
                        const std::string& reason) {
  v1::VmEvent event;
  event.set_id(id);
  event.set_vm_id(vm);
  event.set_component_id("vm");
  v1::VmStateChangedEvent change;
  change.set_new_state(state);
  change.set_reason(reason);
  event.mutable_data()->PackFrom(change);
  return event;
}

TEST(FormatEvents, StateChangeLine) {
  EXPECT_EQ(format_event_line(state_event("17", "vm-a", v1::VM_STATE_STOPPED, "guest powered off")),
            "17 vm-a stopped guest powered off");
  EXPECT_EQ(format_event_line(state_event("", "vm-a", v1::VM_STATE_RUNNING, "")), "- vm-a running");
  EXPECT_EQ(format_event_line(state_event("3", "vm-a", v1::VM_STATE_CRASHED, "line1\nline2")),
            "3 vm-a crashed line1 line2");
}

TEST(FormatEvents, OtherPayloadShowsComponentAndType) {
  v1::VmEvent event;
  event.set_id("5");
  event.set_vm_id("vm-a");
  event.set_component_id("gpu");
  event.mutable_data()->PackFrom(v1::PingVmResponse{});
  EXPECT_EQ(format_event_line(event),
            "5 vm-a gpu type.googleapis.com/feos.vm.vmm.api.v1.PingVmResponse");
  EXPECT_FALSE(state_change_of(event).has_value());

  auto change = state_change_of(state_event("1", "vm-a", v1::VM_STATE_PAUSED, "by user"));
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->new_state(), v1::VM_STATE_PAUSED);
  EXPECT_EQ(change->reason(), "by user");
}

TEST(FormatJson, ListParsesAndCarriesTheFields) {
  auto text = to_json(three_vms(), /*pretty=*/true);
  ASSERT_TRUE(text.has_value()) << text.error().to_string();
  auto json = nlohmann::json::parse(*text);
  ASSERT_TRUE(json["vms"].is_array());
  ASSERT_EQ(json["vms"].size(), 3u);
  const auto& first = json["vms"][0];
  EXPECT_EQ(first["vm_id"], "3f0c1c3e-9b1a-4d7e-8d2c-0a1b2c3d4e5f");
  EXPECT_EQ(first["state"], "VM_STATE_RUNNING");
  EXPECT_EQ(first["state_reason"], "started");
  EXPECT_EQ(first["pid"], "81234");  // int64 -> string in the protobuf JSON mapping
  EXPECT_EQ(first["created_unix_ms"], "1795521555000");
  EXPECT_EQ(first["config"]["cpus"]["boot_vcpus"], 4);
  EXPECT_EQ(first["config"]["memory"]["size_mib"], "8192");
  // Defaults are printed, so scripts can rely on every key being there.
  EXPECT_EQ(json["vms"][2]["state_reason"], "");
  EXPECT_EQ(json["vms"][2]["pid"], "0");
  EXPECT_EQ(json["vms"][1]["state_reason"],
            "qemu exited with status 1: could not open /dev/vfio/12: Device or\nresource busy");
}

TEST(FormatJson, PrettyIsIndentedCompactIsOneLine) {
  v1::CreateVmResponse created;
  created.set_vm_id("vm-a");
  EXPECT_EQ(to_json(created, true).value(), "{\n  \"vm_id\": \"vm-a\"\n}");
  EXPECT_EQ(to_json(created, false).value(), "{\"vm_id\":\"vm-a\"}");
  EXPECT_EQ(to_json(v1::StartVmResponse{}, true).value(), "{}");
}

TEST(FormatJson, EventExpandsTheAny) {
  auto text = to_json(state_event("9", "vm-a", v1::VM_STATE_RUNNING, "booted"), false);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(text->find('\n'), std::string::npos);
  auto json = nlohmann::json::parse(*text);
  EXPECT_EQ(json["id"], "9");
  EXPECT_EQ(json["vm_id"], "vm-a");
  EXPECT_EQ(json["data"]["@type"], "type.googleapis.com/feos.vm.vmm.api.v1.VmStateChangedEvent");
  EXPECT_EQ(json["data"]["new_state"], "VM_STATE_RUNNING");
  EXPECT_EQ(json["data"]["reason"], "booted");
}

TEST(FormatJson, UnknownAnyTypeIsAnErrorButTheEventStillPrints) {
  v1::VmEvent event;
  event.set_id("4");
  event.set_vm_id("vm-a");
  event.mutable_data()->set_type_url("type.googleapis.com/no.such.Type");
  event.mutable_data()->set_value("\x08\x01");
  auto text = to_json(event, false);
  ASSERT_FALSE(text.has_value());
  EXPECT_EQ(text.error().code, Code::kInternal);

  auto json = nlohmann::json::parse(event_to_json(event));
  EXPECT_EQ(json["id"], "4");
  EXPECT_EQ(json["vm_id"], "vm-a");
  EXPECT_EQ(json["data"]["@type"], "type.googleapis.com/no.such.Type");
}

TEST(FormatJson, EventLineIsTheFullEventWhenKnown) {
  auto event = state_event("9", "vm-a", v1::VM_STATE_RUNNING, "booted");
  EXPECT_EQ(event_to_json(event), to_json(event, false).value());
}

TEST(FormatErrors, OneLineWithCodeName) {
  EXPECT_EQ(error_line("NOT_FOUND", "vm 1234 not found"),
            "feosctl: error: NOT_FOUND: vm 1234 not found");
  EXPECT_EQ(error_line("INTERNAL", "qemu said:\nno\r\n"),
            "feosctl: error: INTERNAL: qemu said: no  ");
  EXPECT_EQ(grpc_code_name(0), "OK");
  EXPECT_EQ(grpc_code_name(5), "NOT_FOUND");
  EXPECT_EQ(grpc_code_name(9), "FAILED_PRECONDITION");
  EXPECT_EQ(grpc_code_name(14), "UNAVAILABLE");
  EXPECT_EQ(grpc_code_name(16), "UNAUTHENTICATED");
  EXPECT_EQ(grpc_code_name(17), "CODE_17");
  EXPECT_EQ(grpc_code_name(-1), "CODE_-1");
}

}  // namespace
}  // namespace feos::cli
