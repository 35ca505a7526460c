// feosctl's command line -> Invocation (request messages and options), without a daemon.
#include "cli/command_line.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cctype>
#include <map>
#include <ostream>

namespace feos::cli {
namespace {

// Files the CLI may read (--ignition); anything else is NOT_FOUND like a missing file.
class FakeFilesystem : public sys::Filesystem {
 public:
  std::map<std::string, std::string> files;

  Result<std::string> read_file(const std::string& path) const override {
    auto it = files.find(path);
    if (it == files.end()) return fail(Code::kNotFound, path + ": No such file or directory");
    return it->second;
  }
  Status write_file(const std::string& path, std::string_view) override {
    return fail(Code::kInternal, "unexpected write to " + path);
  }
  Result<std::vector<std::string>> list_dir(const std::string& path) const override {
    return fail(Code::kNotFound, path);
  }
  Result<std::string> read_link(const std::string& path) const override {
    return fail(Code::kNotFound, path);
  }
  bool exists(const std::string& path) const override { return files.count(path) > 0; }
};

class CommandLineTest : public ::testing::Test {
 protected:
  Result<ParsedCommandLine> parse(const std::vector<std::string>& args) {
    CommandLineEnv env;
    env.socket_env = socket_env_;
    env.cwd = "/home/op/vms";
    env.fs = &fs_;
    return parse_command_line(args, env);
  }

  Invocation parse_ok(const std::vector<std::string>& args) {
    auto parsed = parse(args);
    EXPECT_TRUE(parsed.has_value()) << (parsed ? "" : parsed.error().to_string());
    if (!parsed) return {};
    EXPECT_FALSE(parsed->help.has_value());
    return parsed->invocation;
  }

  FakeFilesystem fs_;
  std::optional<std::string> socket_env_;
};

template <typename M>
M from_text(const std::string& text) {
  M message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

MATCHER_P(EqualsProto, expected, "") {
  std::string diff;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  if (differencer.Compare(expected, arg)) return true;
  *result_listener << "\nactual:\n" << arg.DebugString() << "differences:\n" << diff;
  return false;
}

TEST_F(CommandLineTest, CreateWithEveryFlagBuildsTheWholeRequest) {
  fs_.files["/home/op/vms/ign.json"] = "{\"ignition\":{\"version\":\"3.4.0\"}}";
  Invocation inv = parse_ok({"vm",
                             "create",
                             "--id",
                             "3f0c1c3e-9b1a-4d7e-8d2c-0a1b2c3d4e5f",
                             "--vcpus",
                             "2",
                             "--max-vcpus",
                             "8",
                             "--memory",
                             "4096",
                             "--hugepages",
                             "--image",
                             "./images/base.qcow2",
                             "--kernel",
                             "/boot/vmlinuz",
                             "--initramfs",
                             "../initrd.img",
                             "--cmdline",
                             "console=ttyS0 root=/dev/vda rw",
                             "--disk",
                             "data.img,ro,id=data0",
                             "--disk",
                             "/srv/scratch.raw",
                             "--tap",
                             "tap0,mac=52:54:00:12:34:56,id=net0",
                             "--tap",
                             "tap1",
                             "--ignition",
                             "ign.json",
                             "--start"});
  EXPECT_EQ(inv.command, Command::kVmCreate);
  EXPECT_TRUE(inv.start_after_create);
  EXPECT_THAT(inv.create_request, EqualsProto(from_text<v1::CreateVmRequest>(R"pb(
                vm_id: "3f0c1c3e-9b1a-4d7e-8d2c-0a1b2c3d4e5f"
                config {
                  cpus { boot_vcpus: 2 max_vcpus: 8 }
                  memory { size_mib: 4096 hugepages: true }
                  image_ref: "/home/op/vms/images/base.qcow2"
                  disks { device_id: "data0" path: "/home/op/vms/data.img" readonly: true }
                  disks { path: "/srv/scratch.raw" }
                  net {
                    device_id: "net0"
                    tap { tap_name: "tap0" }
                    mac_address: "52:54:00:12:34:56"
                  }
                  net { tap { tap_name: "tap1" } }
                  ignition: "{\"ignition\":{\"version\":\"3.4.0\"}}"
                  boot {
                    kernel: "/boot/vmlinuz"
                    initramfs: "/home/op/initrd.img"
                    cmdline: "console=ttyS0 root=/dev/vda rw"
                  }
                }
              )pb")));
}

TEST_F(CommandLineTest, HugepagesBySize) {
  auto memory = [&](std::vector<std::string> flags) {
    std::vector<std::string> args = {"vm", "create", "--kernel", "/boot/vmlinuz", "--memory", "4096"};
    args.insert(args.end(), flags.begin(), flags.end());
    return parse_ok(args).create_request.config().memory().DebugString();
  };
  EXPECT_EQ(memory({"--hugepages", "1G"}), "size_mib: 4096\nhugepages: true\nhugepage_size: HUGEPAGE_SIZE_1G\n");
  EXPECT_EQ(memory({"--hugepages=2M"}), "size_mib: 4096\nhugepages: true\nhugepage_size: HUGEPAGE_SIZE_2M\n");
  EXPECT_EQ(memory({"--hugepages"}), "size_mib: 4096\nhugepages: true\n");  // the host's default size
  EXPECT_EQ(memory({}), "size_mib: 4096\n");
  auto bad = parse({"vm", "create", "--kernel", "/boot/vmlinuz", "--hugepages", "4M"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "--hugepages: must be 2M or 1G, got '4M'");
}

TEST_F(CommandLineTest, ImageReferencesThatAreNotLocalPathsGoAsTyped) {
  // An OCI reference is no path here: the daemon pulls it, feosctl passes it on unchanged.
  Invocation inv = parse_ok({"vm", "create", "--image", "ghcr.io/ironcore-dev/os-images/gardenlinux:1877.0"});
  EXPECT_EQ(inv.create_request.config().image_ref(), "ghcr.io/ironcore-dev/os-images/gardenlinux:1877.0");
}

TEST_F(CommandLineTest, CreateDefaultsAreOneVcpuAnd512MibWithoutBootOrId) {
  Invocation inv = parse_ok({"vm", "create", "--image", "file:///var/lib/images/x.qcow2"});
  EXPECT_FALSE(inv.start_after_create);
  EXPECT_THAT(inv.create_request, EqualsProto(from_text<v1::CreateVmRequest>(R"pb(
                config {
                  cpus { boot_vcpus: 1 }
                  memory { size_mib: 512 }
                  image_ref: "file:///var/lib/images/x.qcow2"
                }
              )pb")));
  EXPECT_FALSE(inv.create_request.has_vm_id());
  EXPECT_FALSE(inv.create_request.config().has_boot());
  EXPECT_FALSE(inv.create_request.config().has_ignition());
}

TEST_F(CommandLineTest, GpusAreSentInOrderWithTheirOptions) {
  Invocation inv =
      parse_ok({"vm", "create", "--kernel", "/boot/vmlinuz", "--gpu", "0000:18:00.0", "--gpu",
                "19:00.0,rombar=off,boot-vga", "--gpu", "0000:1A:00.0,boot-vga,rombar=on"});
  EXPECT_THAT(inv.create_request, EqualsProto(from_text<v1::CreateVmRequest>(R"pb(
                config {
                  cpus { boot_vcpus: 1 }
                  memory { size_mib: 512 }
                  boot { kernel: "/boot/vmlinuz" }
                  gpus { address: "0000:18:00.0" }
                  gpus { address: "19:00.0" rombar: ROM_BAR_OFF boot_vga: true }
                  gpus { address: "0000:1A:00.0" rombar: ROM_BAR_ON boot_vga: true }
                }
              )pb")));
}

TEST_F(CommandLineTest, FirmwareChoice) {
  Invocation uefi = parse_ok({"vm", "create", "--kernel", "/boot/vmlinuz", "--firmware", "uefi"});
  EXPECT_EQ(uefi.create_request.config().firmware().kind(), hostv1::FIRMWARE_KIND_UEFI);
  EXPECT_FALSE(uefi.create_request.config().firmware().secure_boot());
  Invocation secure = parse_ok({"vm", "create", "--kernel", "/boot/vmlinuz", "--secure-boot"});
  EXPECT_EQ(secure.create_request.config().firmware().kind(), hostv1::FIRMWARE_KIND_UEFI);
  EXPECT_TRUE(secure.create_request.config().firmware().secure_boot());
  Invocation bios = parse_ok({"vm", "create", "--kernel", "/boot/vmlinuz", "--firmware", "bios"});
  EXPECT_EQ(bios.create_request.config().firmware().kind(), hostv1::FIRMWARE_KIND_BIOS);
  Invocation unset = parse_ok({"vm", "create", "--kernel", "/boot/vmlinuz"});
  EXPECT_FALSE(unset.create_request.config().has_firmware());  // FeOS's request, unchanged
}

TEST_F(CommandLineTest, GpusByCountWithModelAndP2p) {
  Invocation inv = parse_ok({"vm", "create", "--kernel", "/boot/vmlinuz", "--gpu", "18:00.0", "--gpus", "3",
                             "--gpu-model", "H200", "--gpu-p2p"});
  ASSERT_TRUE(inv.create_request.config().has_gpu_count());
  EXPECT_EQ(inv.create_request.config().gpu_count().count(), 3u);
  EXPECT_EQ(inv.create_request.config().gpu_count().model(), "H200");
  EXPECT_TRUE(inv.create_request.config().gpu_count().p2p());
  EXPECT_EQ(inv.create_request.config().gpus_size(), 1);
  Invocation plain = parse_ok({"vm", "create", "--kernel", "/boot/vmlinuz", "--gpus", "1"});
  EXPECT_EQ(plain.create_request.config().gpu_count().model(), "");
  EXPECT_FALSE(plain.create_request.config().gpu_count().p2p());
  Invocation none = parse_ok({"vm", "create", "--kernel", "/boot/vmlinuz"});
  EXPECT_FALSE(none.create_request.config().has_gpu_count());  // FeOS's request, unchanged
}

TEST_F(CommandLineTest, GpuCliquesAndGuestNuma) {
  Invocation inv = parse_ok({"vm", "create", "--kernel", "/boot/vmlinuz", "--gpu-clique", "18:00.0,19:00.0",
                             "--gpu-clique", "88:00.0,89:00.0,8a:00.0", "--guest-numa", "off"});
  const auto& p2p = inv.create_request.config().gpu_p2p();
  EXPECT_EQ(p2p.mode(), hostv1::GPU_P2P_MODE_EXPLICIT);
  ASSERT_EQ(p2p.cliques_size(), 2);
  EXPECT_EQ(std::vector<std::string>(p2p.cliques(1).gpus().begin(), p2p.cliques(1).gpus().end()),
            (std::vector<std::string>{"88:00.0", "89:00.0", "8a:00.0"}));
  EXPECT_EQ(inv.create_request.config().guest_numa(), hostv1::GUEST_NUMA_MODE_OFF);
  Invocation off = parse_ok({"vm", "create", "--kernel", "/boot/vmlinuz", "--gpu-clique", "off", "--guest-numa", "auto"});
  EXPECT_EQ(off.create_request.config().gpu_p2p().mode(), hostv1::GPU_P2P_MODE_OFF);
  EXPECT_EQ(off.create_request.config().gpu_p2p().cliques_size(), 0);
  EXPECT_EQ(off.create_request.config().guest_numa(), hostv1::GUEST_NUMA_MODE_AUTO);
  Invocation none = parse_ok({"vm", "create", "--kernel", "/boot/vmlinuz"});
  EXPECT_FALSE(none.create_request.config().has_gpu_p2p());  // FeOS's request, unchanged
  EXPECT_EQ(none.create_request.config().guest_numa(), hostv1::GUEST_NUMA_MODE_DEFAULT);
}

TEST_F(CommandLineTest, GpuAddressGoesToTheDaemonAsTyped) {
  // The daemon parses addresses strictly and names the bad one; the CLI does not second-guess it.
  Invocation inv = parse_ok({"vm", "create", "--gpu", "not-a-bdf", "--gpu", "0000:18:00.0"});
  ASSERT_EQ(inv.create_request.config().gpus_size(), 2);
  EXPECT_EQ(inv.create_request.config().gpus(0).address(), "not-a-bdf");
  EXPECT_EQ(inv.create_request.config().gpus(0).rombar(), hostv1::ROM_BAR_DEFAULT);
  EXPECT_FALSE(inv.create_request.config().gpus(0).boot_vga());
}

TEST_F(CommandLineTest, DryRunAsksForThePlanWithEveryCreateFlag) {
  Invocation inv = parse_ok({"vm", "create", "--dry-run", "--id", "a", "--vcpus", "4", "--memory",
                             "2048", "--kernel", "k", "--gpu", "18:00.0,rombar=off"});
  EXPECT_EQ(inv.command, Command::kVmCreate);
  EXPECT_TRUE(inv.create_request.dry_run());
  EXPECT_EQ(inv.create_request.vm_id(), "a");
  EXPECT_EQ(inv.create_request.config().boot().kernel(), "/home/op/vms/k");
  EXPECT_EQ(inv.create_request.config().gpus(0).rombar(), hostv1::ROM_BAR_OFF);
  EXPECT_FALSE(parse_ok({"vm", "create"}).create_request.dry_run());
}

TEST_F(CommandLineTest, DryRunCannotStart) {
  auto parsed = parse({"vm", "create", "--dry-run", "--start"});
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().code, Code::kInvalidArgument);
  EXPECT_NE(parsed.error().message.find("--start excludes --dry-run"), std::string::npos)
      << parsed.error().message;
}

// --start waits for the VM to be created first: returning at once cannot start it.
TEST_F(CommandLineTest, NoWaitCannotStart) {
  EXPECT_TRUE(parse_ok({"vm", "create", "--no-wait"}).create_no_wait);
  EXPECT_FALSE(parse_ok({"vm", "create"}).create_no_wait);
  auto parsed = parse({"vm", "create", "--no-wait", "--start"});
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().code, Code::kInvalidArgument);
  EXPECT_NE(parsed.error().message.find("--start excludes --no-wait"), std::string::npos)
      << parsed.error().message;
}

TEST_F(CommandLineTest, CreateWithoutGpuHasNone) {
  EXPECT_EQ(parse_ok({"vm", "create"}).create_request.config().gpus_size(), 0);
}

TEST_F(CommandLineTest, GpuListAsksForGpusOnlyUnlessAll) {
  Invocation gpus = parse_ok({"gpu", "list"});
  EXPECT_EQ(gpus.command, Command::kGpuList);
  EXPECT_THAT(gpus.pci_request,
              EqualsProto(from_text<hostv1::ListPciDevicesRequest>(R"pb(gpus_only: true)pb")));
  EXPECT_EQ(gpus.global.output, OutputFormat::kTable);

  Invocation all = parse_ok({"--socket", "/s.sock", "gpu", "list", "--all", "-o", "json"});
  EXPECT_EQ(all.command, Command::kGpuList);
  EXPECT_THAT(all.pci_request,
              EqualsProto(from_text<hostv1::ListPciDevicesRequest>(R"pb(gpus_only: false)pb")));
  EXPECT_EQ(all.global.output, OutputFormat::kJson);
  EXPECT_EQ(all.global.socket_path, "/s.sock");
}

TEST_F(CommandLineTest, HostCheck) {
  Invocation inv = parse_ok({"host", "check", "-o", "json", "--timeout", "5"});
  EXPECT_EQ(inv.command, Command::kHostCheck);
  EXPECT_EQ(inv.global.output, OutputFormat::kJson);
  EXPECT_DOUBLE_EQ(inv.global.timeout_s, 5);
}

TEST_F(CommandLineTest, DiskAndNicAttachAndDetach) {
  Invocation disk = parse_ok({"vm", "disk", "attach", "vm-1", "data.qcow2,ro,id=data"});
  EXPECT_EQ(disk.command, Command::kVmDiskAttach);
  EXPECT_EQ(disk.vm_id, "vm-1");
  EXPECT_EQ(disk.attach_disk_request.disk().path(), "/home/op/vms/data.qcow2");  // relative to the cwd
  EXPECT_TRUE(disk.attach_disk_request.disk().readonly());
  EXPECT_EQ(disk.attach_disk_request.disk().device_id(), "data");
  Invocation nic = parse_ok({"vm", "nic", "attach", "vm-1", "tap7,mac=52:54:00:00:00:07"});
  EXPECT_EQ(nic.command, Command::kVmNicAttach);
  EXPECT_EQ(nic.attach_nic_request.nic().tap().tap_name(), "tap7");
  EXPECT_EQ(nic.attach_nic_request.nic().mac_address(), "52:54:00:00:00:07");
  EXPECT_EQ(nic.attach_nic_request.nic().device_id(), "");  // the daemon names it after the tap
  Invocation detach = parse_ok({"vm", "nic", "detach", "vm-1", "eth1"});
  EXPECT_EQ(detach.command, Command::kVmNicDetach);
  EXPECT_EQ(detach.detach_nic_request.device_id(), "eth1");
  EXPECT_EQ(parse_ok({"vm", "disk", "detach", "vm-1", "data"}).detach_disk_request.device_id(), "data");
  // Usage errors: a missing argument, a bad spec.
  EXPECT_EQ(parse({"vm", "disk", "attach", "vm-1"}).error().code, Code::kInvalidArgument);
  EXPECT_EQ(parse({"vm", "nic", "attach", "vm-1", "tap7,mac=nope"}).error().code, Code::kInvalidArgument);
  EXPECT_EQ(parse({"vm", "disk"}).error().code, Code::kInvalidArgument);
}

TEST_F(CommandLineTest, CmdlineAloneStillSetsBootConfig) {
  Invocation inv = parse_ok({"vm", "create", "--cmdline", "quiet"});
  ASSERT_TRUE(inv.create_request.config().has_boot());
  EXPECT_EQ(inv.create_request.config().boot().cmdline(), "quiet");
  EXPECT_EQ(inv.create_request.config().boot().kernel(), "");
}

TEST_F(CommandLineTest, EmptyIgnitionFileIsSentAsPresentButEmpty) {
  fs_.files["/etc/empty.ign"] = "";
  Invocation inv = parse_ok({"vm", "create", "--ignition", "/etc/empty.ign"});
  EXPECT_TRUE(inv.create_request.config().has_ignition());
  EXPECT_EQ(inv.create_request.config().ignition(), "");
}

struct UsageCase {
  std::vector<std::string> args;
  std::string expected;  // substring of the error message
};

// For test listings (CTest names include it) and failures: the command line, not raw bytes.
void PrintTo(const UsageCase& usage, std::ostream* os) {
  *os << "feosctl";
  for (const auto& arg : usage.args) *os << ' ' << (arg.empty() ? "''" : arg);
}

class UsageErrorTest : public CommandLineTest, public ::testing::WithParamInterface<UsageCase> {};

// A test name that says what was typed: "vm_create_memory_0_5" for case 5, {"vm", "create",
// "--memory", "0"} (the index keeps names unique; gtest allows only letters, digits and '_').
std::string usage_case_name(const ::testing::TestParamInfo<UsageCase>& info) {
  std::string name;
  for (const auto& arg : info.param.args)
    for (char c : arg + " ") {
      bool word = std::isalnum(static_cast<unsigned char>(c)) != 0;
      if (word)
        name += c;
      else if (!name.empty() && name.back() != '_')
        name += '_';
    }
  if (name.empty()) name = "no_args_";
  return name + std::to_string(info.index);
}

TEST_P(UsageErrorTest, IsInvalidArgumentNamingTheFlag) {
  auto parsed = parse(GetParam().args);
  ASSERT_FALSE(parsed.has_value()) << "accepted: " << ::testing::PrintToString(GetParam().args);
  EXPECT_EQ(parsed.error().code, Code::kInvalidArgument);
  EXPECT_NE(parsed.error().message.find(GetParam().expected), std::string::npos)
      << "message: " << parsed.error().message;
  EXPECT_EQ(parsed.error().message.find('\n'), std::string::npos) << "must be one line";
}

INSTANTIATE_TEST_SUITE_P(
    Flags, UsageErrorTest,
    ::testing::Values(
        UsageCase{{"vm", "create", "--disk", "/x.img,foo"}, "--disk: unknown option 'foo'"},
        UsageCase{{"vm", "create", "--disk", "/x.img,ro,ro"}, "--disk: option 'ro' given twice"},
        UsageCase{{"vm", "create", "--disk", ",ro"}, "--disk: missing path"},
        UsageCase{{"vm", "create", "--disk", "/x.img,id="}, "--disk: empty id"},
        UsageCase{{"vm", "create", "--disk", "/x.img,,ro"}, "--disk: unknown option ''"},
        UsageCase{{"vm", "shutdown", "x", "--grace", "3601"}, "--grace: must be at most 3600"},
        UsageCase{{"vm", "shutdown", "x", "--grace", "1.5"}, "--grace: expected a whole number"},
        UsageCase{{"vm", "pause", "x", "--grace", "5"}, "--grace"},
        UsageCase{{"vm", "create", "--memory", "0"}, "--memory: must be at least 1, got '0'"},
        UsageCase{{"vm", "create", "--memory", "-1"}, "--memory: must be at least 1, got '-1'"},
        UsageCase{{"vm", "create", "--memory", "abc"}, "--memory: expected a whole number"},
        UsageCase{{"vm", "create", "--memory", "1.5"}, "--memory: expected a whole number"},
        UsageCase{{"vm", "create", "--memory", "0x10"}, "--memory: expected a whole number"},
        UsageCase{{"vm", "create", "--memory", "99999999999999999999999"},
                  "--memory: must be at most"},
        UsageCase{{"vm", "create", "--memory", ""}, "--memory: expected a whole number"},
        UsageCase{{"vm", "create", "--memory"}, "--memory"},
        UsageCase{{"vm", "create", "--vcpus", "0"}, "--vcpus: must be at least 1"},
        UsageCase{{"vm", "create", "--vcpus", "4294967296"}, "--vcpus: must be at most 4294967295"},
        UsageCase{{"vm", "create", "--vcpus", "4", "--max-vcpus", "2"},
                  "--max-vcpus: must be >= --vcpus"},
        UsageCase{{"vm", "create", "--tap", "mac=52:54:00:12:34:56"},
                  "--tap: missing tap interface name"},
        UsageCase{{"vm", "create", "--tap", ""}, "--tap: missing tap interface name"},
        UsageCase{{"vm", "create", "--tap", "tap0,mac=52:54:00:12:34"}, "--tap: malformed mac"},
        UsageCase{{"vm", "create", "--tap", "tap0,mac=zz:54:00:12:34:56"}, "--tap: malformed mac"},
        UsageCase{{"vm", "create", "--tap", "tap0,vlan=3"}, "--tap: unknown option 'vlan=3'"},
        UsageCase{{"vm", "create", "--tap", "tap0,id=a,id=b"}, "--tap: option 'id=' given twice"},
        UsageCase{{"vm", "create", "--kernel", ""}, "--kernel: path must not be empty"},
        UsageCase{{"vm", "create", "--image", ""}, "--image: must not be empty"},
        UsageCase{{"vm", "create", "--id", ""}, "--id: must not be empty"},
        UsageCase{{"vm", "create", "--ignition", "missing.ign"},
                  "--ignition: cannot read 'missing.ign'"},
        UsageCase{{"vm", "create", "--bogus"}, "--bogus"},
        UsageCase{{"vm", "list", "-o", "yaml"}, "-o/--output: expected table or json, got 'yaml'"},
        UsageCase{{"--timeout", "0", "vm", "list"}, "--timeout: expected a number of seconds > 0"},
        UsageCase{{"--timeout", "-3", "vm", "list"}, "--timeout"},
        UsageCase{{"--socket", "/a.sock", "--address", "h:1", "vm", "list"},
                  "--socket excludes --address"},
        UsageCase{{"--address", "nohostport", "vm", "list"}, "--address: expected HOST:PORT"},
        UsageCase{{"--tls-ca", "ca.pem", "vm", "list"}, "--tls-ca requires --address"},
        UsageCase{{"--socket", "/a.sock", "--tls-ca", "ca.pem", "vm", "list"},
                  "--tls-ca requires --address"},
        UsageCase{{"--address", "h:1", "--tls-cert", "c.pem", "--tls-key", "k.pem", "vm", "list"},
                  "--tls-cert requires --tls-ca"},
        UsageCase{{"--address", "h:1", "--tls-ca", "ca.pem", "--tls-cert", "c.pem", "vm", "list"},
                  "--tls-cert requires --tls-key"},
        UsageCase{{"--address", "h:1", "--tls-ca", "ca.pem", "--tls-key", "k.pem", "vm", "list"},
                  "--tls-key requires --tls-cert"},
        UsageCase{{"--address", "h:1", "--tls-server-name", "feosd", "vm", "list"},
                  "--tls-server-name requires --tls-ca"},
        UsageCase{{"--address", "h:1", "--tls-ca", "", "vm", "list"},
                  "--tls-ca: path must not be empty"},
        UsageCase{{"--address", "h:1", "--tls-ca", "missing.pem", "vm", "list"},
                  "--tls-ca: cannot read 'missing.pem'"},
        UsageCase{{"--address", "h:1", "--tls-ca"}, "--tls-ca"},
        UsageCase{{"vm", "get"}, "ID"}, UsageCase{{"vm", "start", ""}, "ID: must not be empty"},
        UsageCase{{"vm", "start", "a", "b"}, "b"},
        UsageCase{{"vm"}, "expected a vm command (create, start, get"},
        UsageCase{{"vm", "reboot", "x"}, "got 'reboot'"},
        UsageCase{{}, "expected a command (vm, gpu, host)"},
        UsageCase{{"disk", "list"}, "got 'disk'"},
        UsageCase{{"vm", "create", "--firmware", "coreboot"}, "--firmware: 'coreboot' is not bios or uefi"},
        UsageCase{{"vm", "create", "--firmware", "bios", "--secure-boot"}, "--secure-boot: needs --firmware uefi"},
        UsageCase{{"vm", "create", "--gpus", "0"}, "--gpus: must be at least 1, got '0'"},
        UsageCase{{"vm", "create", "--gpus", "17"}, "--gpus: must be at most 16, got '17'"},
        UsageCase{{"vm", "create", "--gpu-model", "H200"}, "--gpu-model: needs --gpus N"},
        UsageCase{{"vm", "create", "--gpu-p2p"}, "--gpu-p2p: needs --gpus N"},
        UsageCase{{"vm", "create", "--gpu-clique", "18:00.0,,19:00.0"}, "--gpu-clique: '18:00.0,,19:00.0' has an empty address"},
        UsageCase{{"vm", "create", "--gpu-clique", "18:00.0,19:00.0", "--gpu-clique", "off"},
                  "--gpu-clique: off cannot be combined with cliques"},
        UsageCase{{"vm", "create", "--guest-numa", "on"}, "--guest-numa: 'on' is not auto or off"},
        UsageCase{{"vm", "create", "--gpu", ""}, "--gpu: missing PCI address in ''"},
        UsageCase{{"vm", "create", "--gpu", ",rombar=on"}, "--gpu: missing PCI address"},
        UsageCase{{"vm", "create", "--gpu", "rombar=off"}, "--gpu: missing PCI address"},
        UsageCase{{"vm", "create", "--gpu", "boot-vga"}, "--gpu: missing PCI address"},
        UsageCase{{"vm", "create", "--gpu", "18:00.0,rombar=maybe"},
                  "--gpu: rombar must be on or off, got 'maybe' in '18:00.0,rombar=maybe'"},
        UsageCase{{"vm", "create", "--gpu", "18:00.0,rombar="},
                  "--gpu: rombar must be on or off, got ''"},
        UsageCase{{"vm", "create", "--gpu", "18:00.0,rombar=ON"},
                  "--gpu: rombar must be on or off, got 'ON'"},
        UsageCase{{"vm", "create", "--gpu", "18:00.0,x-vga=on"},
                  "--gpu: unknown option 'x-vga=on' in '18:00.0,x-vga=on' (expected "
                  "ADDR[,rombar=on|off][,boot-vga])"},
        UsageCase{{"vm", "create", "--gpu", "18:00.0,boot-vga=on"},
                  "--gpu: unknown option 'boot-vga=on'"},
        UsageCase{{"vm", "create", "--gpu", "18:00.0,,boot-vga"}, "--gpu: unknown option ''"},
        UsageCase{{"vm", "create", "--gpu", "18:00.0,"}, "--gpu: unknown option ''"},
        UsageCase{{"vm", "create", "--gpu", "18:00.0,rombar=on,rombar=off"},
                  "--gpu: option 'rombar=' given twice"},
        UsageCase{{"vm", "create", "--gpu", "18:00.0,boot-vga,boot-vga"},
                  "--gpu: option 'boot-vga' given twice"},
        UsageCase{{"vm", "create", "--gpu", "0000:18:00.0", "--gpu", "19:00.0,vga"},
                  "--gpu: unknown option 'vga'"},
        UsageCase{{"vm", "create", "--gpu"}, "--gpu"},
        UsageCase{{"gpu"}, "expected a gpu command (list)"},
        UsageCase{{"gpu", "show"}, "got 'show'"},
        UsageCase{{"gpu", "list", "--gpus-only"}, "--gpus-only"},
        UsageCase{{"gpu", "list", "0000:18:00.0"}, "0000:18:00.0"},
        UsageCase{{"gpu", "list", "-o", "xml"}, "-o/--output: expected table or json"},
        UsageCase{{"host"}, "expected a host command (check)"},
        UsageCase{{"host", "check", "--all"}, "--all"},
        UsageCase{{"vm", "events", "x", "--tail", "many"}, "--tail: expected a whole number"},
        UsageCase{{"vm", "events", "x", "--tail", "1", "--since", "5"}, "--tail excludes --since"},
        UsageCase{{"vm", "events", "x", "--since", "0"}, "--since: must be at least 1"},
        UsageCase{{"vm", "events", "--until-state", "running"}, "--until-state: needs the VM ID"},
        UsageCase{{"vm", "events", "x", "--until-state", "booting"},
                  "--until-state: unknown state 'booting'"},
        UsageCase{{"vm", "events", "x", "--until-state", "unspecified"},
                  "--until-state: unknown state"},
        UsageCase{{"vm", "events", "x", "--idle-ms", "0"}, "--idle-ms: must be at least 1"},
        UsageCase{{"vm", "events", "x", "--wait", "soon"}, "--wait: expected a number of seconds"},
        UsageCase{{"vm", "console", "x", "--wait", "-1"}, "--wait"},
        UsageCase{{"vm", "console", "x", "--until", ""}, "--until: text must not be empty"},
        UsageCase{{"vm", "console"}, "ID"}),
    usage_case_name);

TEST_F(CommandLineTest, SocketDefaultsToRunFeosd) {
  Invocation inv = parse_ok({"vm", "list"});
  EXPECT_EQ(inv.command, Command::kVmList);
  EXPECT_EQ(inv.global.grpc_target(), "unix:/run/feosd/feosd.sock");
  EXPECT_EQ(inv.global.where(), "socket: /run/feosd/feosd.sock");
  EXPECT_EQ(inv.global.output, OutputFormat::kTable);
  EXPECT_DOUBLE_EQ(inv.global.timeout_s, 30);
}

TEST_F(CommandLineTest, EnvironmentReplacesDefaultSocketAndFlagBeatsEnvironment) {
  socket_env_ = "/tmp/feosd-test/feosd.sock";
  EXPECT_EQ(parse_ok({"vm", "list"}).global.socket_path, "/tmp/feosd-test/feosd.sock");
  EXPECT_EQ(parse_ok({"--socket", "/x/y.sock", "vm", "list"}).global.socket_path, "/x/y.sock");
  socket_env_ = "run/f.sock";  // relative: against the CLI's working directory
  EXPECT_EQ(parse_ok({"vm", "list"}).global.grpc_target(), "unix:/home/op/vms/run/f.sock");
}

TEST_F(CommandLineTest, AddressSelectsTcp) {
  Invocation inv = parse_ok({"--address", "10.0.0.5:7000", "vm", "list"});
  EXPECT_EQ(inv.global.grpc_target(), "10.0.0.5:7000");
  EXPECT_EQ(inv.global.where(), "address: 10.0.0.5:7000");
  EXPECT_FALSE(inv.global.tls.has_value()) << "plaintext unless --tls-ca";
}

constexpr char kCertPem[] =
    "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n";
constexpr char kKeyPem[] = "-----BEGIN PRIVATE KEY-----\nMIIBkey\n-----END PRIVATE KEY-----\n";

TEST_F(CommandLineTest, TlsReadsTheFilesRelativeToTheWorkingDirectory) {
  fs_.files["/home/op/vms/pki/ca.pem"] = std::string("ca:") + kCertPem;
  fs_.files["/etc/feos/client.pem"] = std::string("client:") + kCertPem;
  fs_.files["/home/op/vms/client.key"] = kKeyPem;
  Invocation inv = parse_ok({"vm", "list", "--address", "10.0.0.5:7000", "--tls-ca", "pki/ca.pem",
                             "--tls-cert", "/etc/feos/client.pem", "--tls-key", "client.key",
                             "--tls-server-name", "feosd.example"});
  ASSERT_TRUE(inv.global.tls.has_value());
  EXPECT_EQ(inv.global.tls->ca_pem, std::string("ca:") + kCertPem);
  EXPECT_EQ(inv.global.tls->cert_pem, std::string("client:") + kCertPem);
  EXPECT_EQ(inv.global.tls->key_pem, kKeyPem);
  EXPECT_EQ(inv.global.tls->server_name, "feosd.example");
  EXPECT_EQ(inv.global.grpc_target(), "10.0.0.5:7000");
  EXPECT_EQ(inv.global.where(), "address: 10.0.0.5:7000 with TLS");
}

TEST_F(CommandLineTest, TlsWithoutClientCertificateOrServerName) {
  fs_.files["/ca.pem"] = kCertPem;
  Invocation inv = parse_ok({"--address", "h:1", "--tls-ca", "/ca.pem", "vm", "list"});
  ASSERT_TRUE(inv.global.tls.has_value());
  EXPECT_EQ(inv.global.tls->ca_pem, kCertPem);
  EXPECT_EQ(inv.global.tls->cert_pem, "");
  EXPECT_EQ(inv.global.tls->key_pem, "");
  EXPECT_EQ(inv.global.tls->server_name, "");
}

TEST_F(CommandLineTest, TlsFilesMustHoldTheRightPemBlocks) {
  fs_.files["/ca.pem"] = kCertPem;
  fs_.files["/cert.pem"] = kCertPem;
  fs_.files["/key.pem"] = kKeyPem;
  fs_.files["/rsa.key"] =
      "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n";
  fs_.files["/junk"] = "not pem at all";
  const std::vector<std::string> base = {"--address", "h:1", "vm", "list"};
  auto with = [&](std::vector<std::string> tls) {
    tls.insert(tls.end(), base.begin(), base.end());
    return parse(tls);
  };
  auto expect_error = [&](std::vector<std::string> tls, const std::string& expected) {
    auto parsed = with(tls);
    ASSERT_FALSE(parsed.has_value()) << ::testing::PrintToString(tls);
    EXPECT_EQ(parsed.error().code, Code::kInvalidArgument);
    EXPECT_EQ(parsed.error().message, expected);
  };
  expect_error({"--tls-ca", "/junk"}, "--tls-ca: '/junk' holds no PEM CERTIFICATE block");
  expect_error({"--tls-ca", "/key.pem"}, "--tls-ca: '/key.pem' holds no PEM CERTIFICATE block");
  expect_error({"--tls-ca", "/ca.pem", "--tls-cert", "/key.pem", "--tls-key", "/key.pem"},
               "--tls-cert: '/key.pem' holds no PEM CERTIFICATE block");
  expect_error({"--tls-ca", "/ca.pem", "--tls-cert", "/cert.pem", "--tls-key", "/cert.pem"},
               "--tls-key: '/cert.pem' holds no PEM PRIVATE KEY block");
  expect_error({"--tls-ca", "/ca.pem", "--tls-cert", "/cert.pem", "--tls-key", "/nokey.pem"},
               "--tls-key: cannot read '/nokey.pem': /nokey.pem: No such file or directory");
  expect_error({"--tls-ca", "/ca.pem", "--tls-server-name", ""},
               "--tls-server-name: must not be empty");
  auto rsa = with({"--tls-ca", "/ca.pem", "--tls-cert", "/cert.pem", "--tls-key", "/rsa.key"});
  ASSERT_TRUE(rsa.has_value()) << rsa.error().to_string();
  EXPECT_EQ(rsa->invocation.global.tls->key_pem, fs_.files["/rsa.key"]);
}

TEST_F(CommandLineTest, GlobalOptionsMayFollowTheCommand) {
  Invocation inv =
      parse_ok({"vm", "get", "abc", "-o", "json", "--timeout", "2.5", "--socket", "s"});
  EXPECT_EQ(inv.command, Command::kVmGet);
  EXPECT_EQ(inv.vm_id, "abc");
  EXPECT_EQ(inv.global.output, OutputFormat::kJson);
  EXPECT_DOUBLE_EQ(inv.global.timeout_s, 2.5);
  EXPECT_EQ(inv.global.socket_path, "/home/op/vms/s");
}

TEST_F(CommandLineTest, IdCommandsCarryTheirIdAndCommand) {
  const std::pair<const char*, Command> cases[] = {
      {"start", Command::kVmStart},       {"get", Command::kVmGet},
      {"shutdown", Command::kVmShutdown}, {"pause", Command::kVmPause},
      {"resume", Command::kVmResume},     {"delete", Command::kVmDelete},
      {"ping", Command::kVmPing},         {"console", Command::kVmConsole},
  };
  for (const auto& [name, command] : cases) {
    Invocation inv = parse_ok({"vm", name, "vm-42"});
    EXPECT_EQ(inv.command, command) << name;
    EXPECT_EQ(inv.vm_id, "vm-42") << name;
  }
}

// The request's own grace (ShutdownVmRequest.grace_seconds); unset: the daemon's.
TEST_F(CommandLineTest, ShutdownTakesAGrace) {
  EXPECT_EQ(parse_ok({"vm", "shutdown", "vm-42"}).shutdown_grace_s, std::nullopt);
  EXPECT_EQ(parse_ok({"vm", "shutdown", "vm-42", "--grace", "0"}).shutdown_grace_s, 0u);
  EXPECT_EQ(parse_ok({"vm", "shutdown", "--grace", "3600", "vm-42"}).shutdown_grace_s, 3600u);
}

TEST_F(CommandLineTest, HelpIsReturnedNotAnError) {
  auto top = parse({"--help"});
  ASSERT_TRUE(top.has_value());
  ASSERT_TRUE(top->help.has_value());
  EXPECT_NE(top->help->find("vm"), std::string::npos);
  EXPECT_NE(top->help->find("--socket"), std::string::npos);

  auto create = parse({"vm", "create", "-h"});
  ASSERT_TRUE(create.has_value());
  ASSERT_TRUE(create->help.has_value());
  EXPECT_NE(create->help->find("--disk"), std::string::npos);
  EXPECT_NE(create->help->find("--gpu"), std::string::npos);
  EXPECT_NE(top->help->find("gpu"), std::string::npos);
  EXPECT_NE(top->help->find("host"), std::string::npos);

  auto gpu = parse({"gpu", "list", "--help"});
  ASSERT_TRUE(gpu.has_value());
  ASSERT_TRUE(gpu->help.has_value());
  EXPECT_NE(gpu->help->find("--all"), std::string::npos);
}

TEST_F(CommandLineTest, EventsDefaultIsAllVmsFollowWithoutHistoryMode) {
  Invocation inv = parse_ok({"vm", "events"});
  EXPECT_EQ(inv.command, Command::kVmEvents);
  EXPECT_FALSE(inv.events_request.has_vm_id());
  EXPECT_EQ(inv.events_request.streaming_mode_case(),
            v1::StreamVmEventsRequest::STREAMING_MODE_NOT_SET);
  EXPECT_TRUE(inv.events.follow);
  EXPECT_EQ(inv.events.idle_ms, 300);
  EXPECT_FALSE(inv.events.until_state.has_value());
  EXPECT_FALSE(inv.events.wait_s.has_value());
}

TEST_F(CommandLineTest, EventsHistoryFlagsFillTheOneof) {
  EXPECT_THAT(
      parse_ok({"vm", "events", "vm-1", "--tail", "20"}).events_request,
      EqualsProto(from_text<v1::StreamVmEventsRequest>(R"pb(vm_id: "vm-1" tail_events: 20)pb")));
  EXPECT_THAT(parse_ok({"vm", "events", "--since-id", "ev-9"}).events_request,
              EqualsProto(from_text<v1::StreamVmEventsRequest>(R"pb(tail_id: "ev-9")pb")));
  EXPECT_THAT(
      parse_ok({"vm", "events", "vm-1", "--since", "600"}).events_request,
      EqualsProto(from_text<v1::StreamVmEventsRequest>(R"pb(vm_id: "vm-1" tail_seconds: 600)pb")));
  EXPECT_THAT(parse_ok({"vm", "events", "--tail", "0"}).events_request,
              EqualsProto(from_text<v1::StreamVmEventsRequest>(R"pb(tail_events: 0)pb")));
}

TEST_F(CommandLineTest, EventsWaitOptions) {
  Invocation inv = parse_ok({"vm", "events", "vm-1", "--until-state", "RUNNING", "--wait", "90",
                             "--no-follow", "--idle-ms", "1000"});
  EXPECT_EQ(inv.vm_id, "vm-1");
  EXPECT_EQ(inv.events.until_state, v1::VM_STATE_RUNNING);
  EXPECT_EQ(inv.events.wait_s, 90);
  EXPECT_FALSE(inv.events.follow);
  EXPECT_EQ(inv.events.idle_ms, 1000);
  EXPECT_EQ(parse_ok({"vm", "events", "v", "--until-state", "vm_state_stopped"}).events.until_state,
            v1::VM_STATE_STOPPED);
  EXPECT_EQ(parse_ok({"vm", "events", "v", "--until-state", "crashed"}).events.until_state,
            v1::VM_STATE_CRASHED);
}

TEST_F(CommandLineTest, ConsoleScriptOptions) {
  Invocation plain = parse_ok({"vm", "console", "vm-1"});
  EXPECT_TRUE(plain.console.interactive());
  EXPECT_FALSE(plain.console.wait_s.has_value());

  Invocation scripted = parse_ok(
      {"vm", "console", "vm-1", "--send", "uname -a", "--until", "Linux", "--wait", "0.5"});
  EXPECT_FALSE(scripted.console.interactive());
  EXPECT_EQ(scripted.console.send, "uname -a");
  EXPECT_EQ(scripted.console.until, "Linux");
  EXPECT_EQ(scripted.console.wait_s, 0.5);
  EXPECT_EQ(scripted.console.idle_ms, 300);
}

}  // namespace
}  // namespace feos::cli
