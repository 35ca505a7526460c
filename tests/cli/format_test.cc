// Rendering of responses: table, key: value block, event lines, JSON (cli/json_format.h), error
// lines.
#include "cli/format.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "cli/json_format.h"

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

TEST(FormatSeconds, NoTrailingZeros) {
  EXPECT_EQ(format_seconds(30), "30 s");
  EXPECT_EQ(format_seconds(0.5), "0.5 s");
  EXPECT_EQ(format_seconds(2.25), "2.25 s");
  EXPECT_EQ(format_seconds(0), "0 s");
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
      firmware { kind: FIRMWARE_KIND_UEFI secure_boot: true }
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
            "firmware:   uefi, secure boot\n"
            "kernel:     /boot/vmlinuz\n"
            "initramfs:  /boot/initrd.img\n"
            "cmdline:    console=ttyS0\n"
            "disk:       /srv/data.img,ro,id=data0\n"
            "disk:       vfio-pci=0000:05:00.0\n"
            "nic:        tap0,mac=52:54:00:12:34:56,id=net0\n"
            "ignition:   10 bytes\n");
}

// GPUs asked by count: what was asked; the GPUs picked are the config's gpus.
TEST(FormatDetails, GpuCountShowsWhatWasAsked) {
  auto vm = from_text<v1::VmInfo>(R"pb(
    vm_id: "vm-c"
    state: VM_STATE_CREATED
    config {
      cpus { boot_vcpus: 1 }
      memory { size_mib: 512 }
      gpus { address: "0000:18:00.0" }
      gpus { address: "0000:2a:00.0" }
      gpu_count { count: 2 model: "H200" p2p: true }
    }
  )pb");
  const std::string text = format_vm_details(vm, kNow);
  EXPECT_NE(text.find("gpu count:  2 of model \"H200\", p2p\n"), std::string::npos) << text;
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

v1::VmInfo vm_with_gpus() {
  return from_text<v1::VmInfo>(R"pb(
    vm_id: "vm-g"
    state: VM_STATE_RUNNING
    config {
      cpus { boot_vcpus: 8 }
      memory { size_mib: 65536 }
      gpus { address: "18:00.0" rombar: ROM_BAR_OFF }
      gpus { address: "0000:2a:00.0" boot_vga: true }
      gpus { address: "0000:3b:00.0" }
    }
    gpus {
      # Listed out of request order, and with the address as the daemon canonicalised it.
      request { address: "0000:2a:00.0" boot_vga: true }
      functions {
        address: "0000:2a:00.0"
        id: "10de:2330"
        iommu_group: "73"
        original_driver: "nvidia"
      }
      numa_node: -1
    }
    gpus {
      request { address: "0000:18:00.0" rombar: ROM_BAR_OFF }
      functions {
        address: "0000:18:00.0"
        id: "10de:2330"
        iommu_group: "59"
        original_driver: "nvidia"
      }
      functions { address: "0000:18:00.1" id: "10de:22a3" iommu_group: "59" }
      group_peers {
        address: "0000:17:00.0"
        id: "1000:c030"
        iommu_group: "59"
        original_driver: "mpt3sas"
      }
      numa_node: 1
    }
  )pb");
}

TEST(FormatDetails, GpuLinesShowTheAssignedFunctionsPeersAndNumaNode) {
  EXPECT_EQ(format_vm_details(vm_with_gpus(), kNow),
            "id:       vm-g\n"
            "state:    running\n"
            "reason:   -\n"
            "pid:      -\n"
            "created:  -\n"
            "vcpus:    8\n"
            "memory:   65536 MiB\n"
            "image:    -\n"
            "gpu:      18:00.0,rombar=off -> 0000:18:00.0 (10de:2330, group 59, was nvidia), "
            "0000:18:00.1 (10de:22a3, group 59, had no driver); group peers: 0000:17:00.0 "
            "(1000:c030, group 59, was mpt3sas); numa node 1\n"
            "gpu:      0000:2a:00.0,boot-vga -> 0000:2a:00.0 (10de:2330, group 73, was nvidia); "
            "no numa node\n"
            "gpu:      0000:3b:00.0 (not assigned)\n");
}

// The daemon echoes requests in canonical form: lower-case hex, with the domain.
TEST(FormatDetails, RequestPairsWithItsCanonicalEchoWhateverTheHexCase) {
  auto vm = from_text<v1::VmInfo>(R"pb(
    vm_id: "vm-c"
    config {
      cpus { boot_vcpus: 1 }
      memory { size_mib: 512 }
      gpus { address: "2A:00.0" }
    }
    gpus {
      request { address: "0000:2a:00.0" }
      functions { address: "0000:2a:00.0" id: "10de:2330" iommu_group: "73" }
      numa_node: 0
    }
  )pb");
  std::string details = format_vm_details(vm, kNow);
  EXPECT_NE(details.find("\ngpu:      2A:00.0 -> 0000:2a:00.0 (10de:2330, group 73, had no driver); "
                         "numa node 0\n"),
            std::string::npos)
      << details;
  EXPECT_EQ(details.find("not assigned"), std::string::npos) << details;
}

TEST(FormatDetails, AssignmentWithoutMatchingRequestStillShows) {
  auto vm = from_text<v1::VmInfo>(R"pb(
    vm_id: "vm-h"
    config {
      cpus { boot_vcpus: 1 }
      memory { size_mib: 512 }
    }
    gpus {
      request { address: "0000:65:00.0" rombar: ROM_BAR_ON }
      functions {
        address: "0000:65:00.0"
        id: "10de:20b5"
        iommu_group: "7"
        original_driver: "nvidia"
      }
      numa_node: 0
    }
  )pb");
  std::string details = format_vm_details(vm, kNow);
  EXPECT_NE(details.find("\ngpu:      0000:65:00.0,rombar=on -> 0000:65:00.0 (10de:20b5, group 7, "
                         "was nvidia); numa node 0\n"),
            std::string::npos)
      << details;
}

TEST(FormatDetails, JsonOfVmGetCarriesRequestedAndAssignedGpus) {
  auto json = nlohmann::json::parse(to_json(vm_with_gpus(), true).value());
  ASSERT_EQ(json["config"]["gpus"].size(), 3u);
  EXPECT_EQ(json["config"]["gpus"][0]["address"], "18:00.0");
  EXPECT_EQ(json["config"]["gpus"][0]["rombar"], "ROM_BAR_OFF");
  EXPECT_EQ(json["config"]["gpus"][1]["boot_vga"], true);
  ASSERT_EQ(json["gpus"].size(), 2u);
  EXPECT_EQ(json["gpus"][1]["functions"][1]["address"], "0000:18:00.1");
  EXPECT_EQ(json["gpus"][1]["group_peers"][0]["original_driver"], "mpt3sas");
  EXPECT_EQ(json["gpus"][1]["numa_node"], 1);
  EXPECT_EQ(json["gpus"][0]["numa_node"], -1);
}

// A GPU host's inventory as `gpu list --all` gets it: one GPU available, one assigned, the BMC's
// boot VGA not assignable, a root port.
hostv1::ListPciDevicesResponse inventory() {
  return from_text<hostv1::ListPciDevicesResponse>(R"pb(
    devices {
      address: "0000:18:00.0"
      vendor_id: "10de"
      device_id: "2330"
      vendor_name: "NVIDIA Corporation"
      device_name: "GH100 [H100 SXM5 80GB]"
      class_code: 0x030200
      class_name: "3D controller"
      driver: "nvidia"
      iommu_group: "59"
      iommu_group_members: "0000:18:00.0"
      numa_node: 0
      local_cpus: "0-55"
      pcie_root: "pci0000:15"
      switch_upstream: "0000:16:00.0"
      switch_peers { address: "0000:19:00.0" id: "15b3:1021" class_name: "Ethernet controller" }
      switch_peers { address: "0000:1a:00.0" id: "144d:a826" class_name: "Non-Volatile memory controller" }
      bars { index: 0 size: 16777216 }
      bars { index: 1 size: 137438953472 is_64bit: true prefetchable: true }
      bars { index: 3 size: 33554432 is_64bit: true prefetchable: true }
      is_gpu: true
      status: DEVICE_STATUS_AVAILABLE
    }
    devices {
      address: "0000:2a:00.0"
      vendor_id: "10de"
      device_id: "2330"
      vendor_name: "NVIDIA Corporation"
      device_name: "GH100 [H100 SXM5 80GB]"
      class_code: 0x030200
      driver: "vfio-pci"
      iommu_group: "73"
      numa_node: 1
      switch_upstream: "0001:28:00.0"
      bars { index: 1 size: 137438953472 is_64bit: true prefetchable: true }
      is_gpu: true
      status: DEVICE_STATUS_ASSIGNED
      assigned_vm: "3f0c1c3e-9b1a-4d7e-8d2c-0a1b2c3d4e5f"
      reason: "assigned to vm 3f0c1c3e-9b1a-4d7e-8d2c-0a1b2c3d4e5f"
    }
    devices {
      address: "0000:03:00.0"
      vendor_id: "1a03"
      device_id: "2000"
      vendor_name: "ASPEED Technology, Inc."
      device_name: "ASPEED Graphics Family"
      class_code: 0x030000
      driver: "ast"
      iommu_group: "12"
      numa_node: -1
      bars { index: 0 size: 67108864 }
      bars { index: 1 size: 262144 }
      boot_vga: true
      is_gpu: true
      status: DEVICE_STATUS_NOT_ASSIGNABLE
      reason: "boot VGA of the host console;\nrequest it with boot-vga to take it anyway"
    }
    devices {
      address: "0000:00:01.0"
      vendor_id: "8086"
      device_id: "2030"
      class_code: 0x060400
      class_name: "PCI bridge"
      driver: "pcieport"
      iommu_group: "1"
      numa_node: 0
      is_bridge: true
      status: DEVICE_STATUS_NOT_ASSIGNABLE
      reason: "PCI bridge"
    }
  )pb");
}

TEST(FormatPciTable, GoldenTable) {
  EXPECT_EQ(format_pci_table(inventory()),
            "ADDRESS        ID          NAME                            DRIVER     GROUP   NUMA   "
            "SWITCH         BAR      STATUS              REASON\n"
            "0000:18:00.0   10de:2330   NVIDIA GH100 [H100 SXM5 80GB]   nvidia     59      0      "
            "16:00.0        128GiB   available           -\n"
            "0000:2a:00.0   10de:2330   NVIDIA GH100 [H100 SXM5 80GB]   vfio-pci   73      1      "
            "0001:28:00.0   128GiB   assigned:3f0c1c3e   assigned to vm 3f0c1c3e-9b1a-4d7e-8d2...\n"
            "0000:03:00.0   1a03:2000   ASPEED ASPEED Graphics Family   ast        12      -      "
            "-              64MiB    not-assignable      boot VGA of the host console; request...\n"
            "0000:00:01.0   8086:2030   PCI bridge                      pcieport   1       0      "
            "-              -        not-assignable      PCI bridge\n");
}

TEST(FormatPciTable, EmptyListIsJustTheHeader) {
  EXPECT_EQ(format_pci_table(hostv1::ListPciDevicesResponse{}),
            "ADDRESS   ID   NAME   DRIVER   GROUP   NUMA   SWITCH   BAR   STATUS   REASON\n");
}

TEST(FormatPciTable, UnknownNamesAndDriverAreDashes) {
  auto list = from_text<hostv1::ListPciDevicesResponse>(R"pb(
    devices {
      address: "0000:c1:00.0"
      vendor_id: "10de"
      device_id: "ffff"
      numa_node: 3
      bars { size: 1536 }
    }
    devices { address: "0000:c2:00.0" numa_node: -1 }
  )pb");
  EXPECT_EQ(format_pci_table(list),
            "ADDRESS        ID          NAME   DRIVER   GROUP   NUMA   SWITCH   BAR      STATUS    REASON\n"
            "0000:c1:00.0   10de:ffff   -      -        -       3      -        1.5KiB   unknown   -\n"
            "0000:c2:00.0   -           -      -        -       -      -        -        unknown   -\n");
}

TEST(FormatPciTable, ThousandDevicesOneRowEach) {
  hostv1::ListPciDevicesResponse list;
  for (int i = 0; i < 1000; ++i) {
    hostv1::PciDeviceInfo& device = *list.add_devices() = inventory().devices(i % 4);
    device.set_address("0000:" + std::to_string(100 + i / 10) + ":00." + std::to_string(i % 8));
  }
  std::string table = format_pci_table(list);
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 1001);
  EXPECT_NE(table.find("0000:199:00.7"), std::string::npos);
}

TEST(FormatPciTable, JsonIsTheProtoMapping) {
  auto json = nlohmann::json::parse(to_json(inventory(), true).value());
  ASSERT_EQ(json["devices"].size(), 4u);
  const auto& gpu = json["devices"][0];
  EXPECT_EQ(gpu["address"], "0000:18:00.0");
  EXPECT_EQ(gpu["status"], "DEVICE_STATUS_AVAILABLE");
  EXPECT_EQ(gpu["class_code"], 0x030200);
  EXPECT_EQ(gpu["bars"][1]["size"], "137438953472");  // uint64 -> string
  EXPECT_EQ(gpu["iommu_group_members"][0], "0000:18:00.0");
  EXPECT_EQ(json["devices"][1]["assigned_vm"], "3f0c1c3e-9b1a-4d7e-8d2c-0a1b2c3d4e5f");
  EXPECT_EQ(json["devices"][2]["numa_node"], -1);
  EXPECT_EQ(json["devices"][3]["bars"], nlohmann::json::array());
  EXPECT_EQ(json["devices"][3]["is_bridge"], true);
  // The place in the PCIe tree.
  EXPECT_EQ(gpu["local_cpus"], "0-55");
  EXPECT_EQ(gpu["pcie_root"], "pci0000:15");
  EXPECT_EQ(gpu["switch_upstream"], "0000:16:00.0");
  ASSERT_EQ(gpu["switch_peers"].size(), 2u);
  EXPECT_EQ(gpu["switch_peers"][0]["address"], "0000:19:00.0");
  EXPECT_EQ(gpu["switch_peers"][1]["class_name"], "Non-Volatile memory controller");
  EXPECT_EQ(json["devices"][3]["switch_peers"], nlohmann::json::array());
}

TEST(FormatPciTable, VendorsGoByTheirShortNames) {
  auto list = from_text<hostv1::ListPciDevicesResponse>(R"pb(
    devices { address: "0000:c1:00.0" vendor_name: "Advanced Micro Devices, Inc. [AMD/ATI]" device_name: "Navi 31" }
    devices { address: "0000:c2:00.0" vendor_name: "Intel Corporation" device_name: "Ethernet Controller E810-C" }
    devices { address: "0000:c3:00.0" vendor_name: "Mellanox Technologies" device_name: "MT2910 Family [ConnectX-7]" }
    devices { address: "0000:c4:00.0" vendor_name: "Samsung Electronics Co Ltd" }
    devices { address: "0000:c5:00.0" vendor_name: "Red Hat, Inc." device_name: "Virtio 1.0 network device" }
    devices { address: "0000:c6:00.0" vendor_name: "Broadcom / LSI" device_name: "PEX890xx PCIe Gen 5 Switch" }
    devices { address: "0000:c7:00.0" vendor_name: "Huawei Technologies Co., Ltd." device_name: "Hi1822" }
  )pb");
  const std::string table = format_pci_table(list);
  for (const char* name : {"   AMD/ATI Navi 31   ", "   Intel Ethernet Controller E810-C   ",
                           "   Mellanox MT2910 Family [ConnectX-7]   ", "   Samsung   ",
                           "   Red Hat Virtio 1.0 network device   ",
                           "   Broadcom / LSI PEX890xx PCIe Gen 5 Switch   ", "   Huawei Hi1822   "}) {
    EXPECT_NE(table.find(name), std::string::npos) << name << "\n" << table;
  }
}

// `gpu list` on an 8-GPU HGX host with pci.ids names: every row within 130 columns.
TEST(FormatPciTable, HgxGpuListFitsA130ColumnTerminal) {
  hostv1::ListPciDevicesResponse list;
  const char* buses[] = {"18", "2a", "3a", "5d", "9a", "ab", "ba", "db"};
  const char* switches[] = {"16", "28", "38", "5b", "98", "a9", "b8", "d9"};
  for (int i = 0; i < 8; ++i) {
    hostv1::PciDeviceInfo& gpu = *list.add_devices() = inventory().devices(0);
    gpu.set_address(std::string("0000:") + buses[i] + ":00.0");
    gpu.set_switch_upstream(std::string("0000:") + switches[i] + ":00.0");
    gpu.set_iommu_group(std::to_string(100 + i));
    gpu.set_numa_node(i / 4);
  }
  hostv1::PciDeviceInfo& bmc = *list.add_devices() = inventory().devices(2);
  bmc.set_reason("boot VGA");
  const std::string table = format_pci_table(list);
  size_t widest = 0;
  for (size_t start = 0, end; (end = table.find('\n', start)) != std::string::npos; start = end + 1)
    widest = std::max(widest, end - start);
  EXPECT_LE(widest, 130u) << table;
  EXPECT_NE(table.find("   NVIDIA GH100 [H100 SXM5 80GB]   "), std::string::npos) << table;
  EXPECT_NE(table.find("   d9:00.0   "), std::string::npos) << table;
}

TEST(FormatPciTable, P2pColumnOnlyWhereGpusCouldShareAClique) {
  auto list = from_text<hostv1::ListPciDevicesResponse>(R"pb(
    devices { address: "0000:18:00.0" vendor_id: "10de" device_id: "26b9" numa_node: 0
              switch_upstream: "0000:16:00.0" p2p_domain: "pci0000:15" p2p_clique_peers: "0000:19:00.0" }
    devices { address: "0000:19:00.0" vendor_id: "10de" device_id: "26b9" numa_node: 0
              switch_upstream: "0000:16:00.0" p2p_domain: "pci0000:15" p2p_clique_peers: "0000:18:00.0" }
    devices { address: "0000:88:00.0" vendor_id: "10de" device_id: "26b9" numa_node: 1
              switch_upstream: "0000:86:00.0" p2p_domain: "pci0000:85" }
  )pb");
  EXPECT_EQ(format_pci_table(list),
            "ADDRESS        ID          NAME   DRIVER   GROUP   NUMA   SWITCH    P2P       BAR   STATUS    REASON\n"
            "0000:18:00.0   10de:26b9   -      -        -       0      16:00.0   0000:15   -     unknown   -\n"
            "0000:19:00.0   10de:26b9   -      -        -       0      16:00.0   0000:15   -     unknown   -\n"
            "0000:88:00.0   10de:26b9   -      -        -       1      86:00.0   -         -     unknown   -\n");
}

TEST(FormatBytes, LargestWholeUnit) {
  EXPECT_EQ(format_bytes(0), "0B");
  EXPECT_EQ(format_bytes(512), "512B");
  EXPECT_EQ(format_bytes(1023), "1023B");
  EXPECT_EQ(format_bytes(1024), "1KiB");
  EXPECT_EQ(format_bytes(1536), "1.5KiB");
  EXPECT_EQ(format_bytes(262144), "256KiB");
  EXPECT_EQ(format_bytes(16ULL << 20), "16MiB");
  EXPECT_EQ(format_bytes(128ULL << 30), "128GiB");
  EXPECT_EQ(format_bytes((2ULL << 30) - 1), "1.9GiB");  // rounded down, never "2.0GiB"
  EXPECT_EQ(format_bytes(1ULL << 40), "1TiB");
  EXPECT_EQ(format_bytes(~0ULL), "15.9EiB");
}

TEST(FormatStatus, Cells) {
  hostv1::PciDeviceInfo device;
  EXPECT_EQ(device_status_text(device), "unknown");
  device.set_status(hostv1::DEVICE_STATUS_ASSIGNED);
  EXPECT_EQ(device_status_text(device), "assigned");
  device.set_assigned_vm("vm-1");
  EXPECT_EQ(device_status_text(device), "assigned:vm-1");
  device.set_assigned_vm("0123456789abcdef");
  EXPECT_EQ(device_status_text(device), "assigned:01234567");
  device.set_status(hostv1::DEVICE_STATUS_AVAILABLE);
  EXPECT_EQ(device_status_text(device), "available");
  device.set_status(hostv1::DEVICE_STATUS_NOT_ASSIGNABLE);
  EXPECT_EQ(device_status_text(device), "not-assignable");
  device.set_status(static_cast<hostv1::DeviceStatus>(9));
  EXPECT_EQ(device_status_text(device), "status-9");
}

TEST(FormatHostCheck, ReadyHost) {
  auto check = from_text<hostv1::CheckHostResponse>(R"pb(
    ready: true
    items { name: "iommu" ok: true detail: "Intel VT-d on, 112 groups" }
    items { name: "interrupt_remapping" ok: true detail: "enabled" }
    items { name: "vfio_pci" ok: true detail: "module loaded" }
    items { name: "gpu 0000:18:00.0" ok: true }
  )pb");
  EXPECT_EQ(format_host_check(check),
            "OK   iommu                 Intel VT-d on, 112 groups\n"
            "OK   interrupt_remapping   enabled\n"
            "OK   vfio_pci              module loaded\n"
            "OK   gpu 0000:18:00.0      -\n"
            "host ready for GPU passthrough\n");
}

TEST(FormatHostCheck, HostNotReadyCountsTheProblems) {
  auto check = from_text<hostv1::CheckHostResponse>(R"pb(
    ready: false
    items { name: "iommu" ok: false detail: "no IOMMU groups:\nboot with intel_iommu=on" }
    items { name: "vfio_pci" ok: true detail: "module loaded" }
    items { name: "gpu 0000:18:00.0" ok: false detail: "held open by pid 4242 (nvidia-smi)" }
  )pb");
  EXPECT_EQ(format_host_check(check),
            "FAIL   iommu              no IOMMU groups: boot with intel_iommu=on\n"
            "OK     vfio_pci           module loaded\n"
            "FAIL   gpu 0000:18:00.0   held open by pid 4242 (nvidia-smi)\n"
            "host NOT ready: 2 problem(s)\n");
  EXPECT_EQ(format_host_check(hostv1::CheckHostResponse{}), "host NOT ready: 0 problem(s)\n");
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

// indent_json must lay out protobuf's compact text exactly as nlohmann's dump(2) would.
TEST(FormatJson, IndentMatchesTheTwoSpaceLayout) {
  const std::string samples[] = {
      R"({})",
      R"([])",
      R"({"a":1})",
      R"({"a":{},"b":[],"c":[{}],"d":[[1,2],[]],"e":{"f":{"g":null}}})",
      R"({"s":"x,y:{z}[w]","t":"quote \" and \\ and \n","u":"\\"})",
      R"([true,false,-1.5,"",{"":""}])",
  };
  for (const std::string& sample : samples) {
    auto indented = indent_json(sample);
    ASSERT_TRUE(indented.has_value()) << sample;
    EXPECT_EQ(*indented, nlohmann::ordered_json::parse(sample).dump(2)) << sample;
  }
  // Numbers keep protobuf's spelling (nlohmann would rewrite 1e+10).
  EXPECT_EQ(indent_json("[1e+10]").value(), "[\n  1e+10\n]");
  // Whitespace between tokens is dropped.
  EXPECT_EQ(indent_json("{ \"a\" : [ ] ,\n\"b\":1 }").value(), "{\n  \"a\": [],\n  \"b\": 1\n}");
}

TEST(FormatJson, IndentRejectsBrokenText) {
  for (const std::string bad : {"{", "]", "{]", "[}", R"({"a":"x)", R"({"a":"x\)", "[[]"}) {
    auto indented = indent_json(bad);
    ASSERT_FALSE(indented.has_value()) << bad;
    EXPECT_EQ(indented.error().code, Code::kInternal);
  }
}

TEST(FormatJson, PrettyEqualsAParseAndRedumpOfTheCompactForm) {
  const v1::ListVmsResponse vms = three_vms();
  const hostv1::ListPciDevicesResponse devices = inventory();
  const v1::VmInfo vm = vm_with_gpus();
  using Message = google::protobuf::Message;
  for (const Message* message : std::vector<const Message*>{&vms, &devices, &vm}) {
    auto compact = to_json(*message, /*pretty=*/false);
    auto pretty = to_json(*message, /*pretty=*/true);
    ASSERT_TRUE(compact.has_value() && pretty.has_value()) << message->GetTypeName();
    EXPECT_EQ(compact->find('\n'), std::string::npos);
    EXPECT_EQ(*pretty, nlohmann::ordered_json::parse(*compact).dump(2)) << message->GetTypeName();
  }
}

TEST(FormatJson, SpecialCharactersSurviveAsTheSameValue) {
  hostv1::HostCheckItem item;
  const std::string detail = "<&> 'q' \"d\" \\ tab\t nl\n \x01 caf\xc3\xa9 \xe2\x80\xa8 /";
  item.set_detail(detail);
  auto json = nlohmann::json::parse(to_json(item, true).value());
  EXPECT_EQ(json["detail"], detail);
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
  EXPECT_EQ(grpc_code_name(15), "DATA_LOSS");
  EXPECT_EQ(grpc_code_name(16), "UNAUTHENTICATED");
  EXPECT_EQ(grpc_code_name(17), "CODE_17");
  EXPECT_EQ(grpc_code_name(-1), "CODE_-1");
}

}  // namespace
}  // namespace feos::cli
