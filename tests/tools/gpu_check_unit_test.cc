#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gpu-check/inventory.h"
#include "gpu-check/options.h"
#include "gpu-check/report.h"
#include "gpu-check/run_command.h"
#include "sys/host_paths.h"
#include "sysfs_tree.h"

namespace feos::gpucheck {
namespace {

Result<Options> parse(std::vector<std::string> args) {
  std::vector<const char*> argv = {"feos-gpu-check"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_options(static_cast<int>(argv.size()), argv.data());
}

TEST(OptionsTest, Defaults) {
  auto o = parse({});
  ASSERT_TRUE(o) << o.error().message;
  // The kernel interfaces' locations come from HostPaths, the one place that knows them.
  EXPECT_EQ(o->sysfs_root, sys::HostPaths{}.sysfs_root);
  EXPECT_EQ(o->proc_root, sys::HostPaths{}.proc_root);
  EXPECT_EQ(o->nvidia_smi, "nvidia-smi");
  EXPECT_TRUE(o->cuda);
  EXPECT_FALSE(o->expect_gpus);
  EXPECT_TRUE(o->expect_ids.empty());
  EXPECT_EQ(o->format, OutputFormat::kText);
  EXPECT_EQ(o->copy_mib, 256u);
}

TEST(OptionsTest, ParsesEveryOption) {
  auto o = parse({"--expect-gpus", "2", "--expect-id", "10de:2330", "--expect-id=10DE:2335", "--expect-driver",
                  "nvidia", "--expect-p2p", "-o", "json", "--sysfs-root=/x/sys", "--proc-root", "/x/proc",
                  "--pci-ids", "/x/pci.ids", "--no-cuda", "--no-nvidia-smi", "--copy-mib", "64"});
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->expect_gpus, 2);
  ASSERT_EQ(o->expect_ids.size(), 2u);
  EXPECT_EQ(o->expect_ids[0].to_string(), "10de:2330");
  EXPECT_EQ(o->expect_ids[1].to_string(), "10de:2335");
  EXPECT_EQ(o->expect_driver, "nvidia");
  EXPECT_TRUE(o->expect_p2p);
  EXPECT_EQ(o->format, OutputFormat::kJson);
  EXPECT_EQ(o->sysfs_root, "/x/sys");
  EXPECT_EQ(o->proc_root, "/x/proc");
  EXPECT_EQ(o->pci_ids, "/x/pci.ids");
  EXPECT_FALSE(o->cuda);
  EXPECT_EQ(o->nvidia_smi, "");
  EXPECT_EQ(o->copy_mib, 64u);
}

TEST(OptionsTest, RejectsBadInput) {
  const std::vector<std::vector<std::string>> bad = {
      {"--expect-gpus"},        {"--expect-gpus", "-1"},      {"--expect-gpus", "2x"},  {"--expect-gpus", ""},
      {"--expect-id", "10de"},  {"--expect-id", "10de:23300"}, {"--expect-id", "../x"}, {"--expect-driver", "a/b"},
      {"-o", "xml"},            {"--copy-mib", "0"},          {"--copy-mib", "99999"},  {"--no-cuda=1"},
      {"--sysfs-root="},        {"extra"},                    {"-x"},                   {"--expect-gpus=1025"},
  };
  for (const auto& args : bad) {
    auto o = parse(args);
    ASSERT_FALSE(o) << args[0];
    EXPECT_EQ(o.error().code, Code::kInvalidArgument);
  }
}

TEST(InventoryTest, ParsesNvidiaDriverVersion) {
  EXPECT_EQ(parse_nvidia_version("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release "
                                 "Build  (dvs-builder@U22)  Thu Oct 30 05:48:51 UTC 2025\nGCC version: 12.3.0\n"),
            "580.159.04");
  EXPECT_EQ(parse_nvidia_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"),
            "535.104.05");
  EXPECT_EQ(parse_nvidia_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.82  Tue\n"), "470.82");
  EXPECT_EQ(parse_nvidia_version("no version here 12. 3\n"), "");
  EXPECT_EQ(parse_nvidia_version(""), "");
}

TEST(InventoryTest, ParsesNvidiaSmiCsv) {
  NvidiaSmi smi;
  smi.fields = {"index", "pci.bus_id", "name"};
  ASSERT_TRUE(parse_nvidia_smi_csv("0, 00000000:18:00.0, NVIDIA H200\n1, 00000000:2A:00.0, NVIDIA H200\n\n", smi));
  ASSERT_EQ(smi.rows.size(), 2u);
  EXPECT_EQ(smi.rows[1], (std::vector<std::string>{"1", "00000000:2A:00.0", "NVIDIA H200"}));
  EXPECT_FALSE(parse_nvidia_smi_csv("0, 00000000:18:00.0\n", smi));
  EXPECT_NE(smi.error.find("2 values, expected 3"), std::string::npos) << smi.error;
  EXPECT_TRUE(smi.rows.empty());
}

TEST(RunCommandTest, CapturesOutputAndStatus) {
  auto r = run_command({"sh", "-c", "echo out; echo err >&2; exit 3"}, 10000);
  EXPECT_TRUE(r.started);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_FALSE(r.succeeded());
  EXPECT_EQ(r.error, "exited with status 3");

  // Arguments reach the program verbatim: no shell interprets them.
  r = run_command({"printf", "%s|", "a b", "$HOME", ";ls"}, 10000);
  EXPECT_TRUE(r.succeeded()) << r.error;
  EXPECT_EQ(r.out, "a b|$HOME|;ls|");

  r = run_command({"cat"}, 10000);  // stdin is empty, not the test's terminal
  EXPECT_TRUE(r.succeeded()) << r.error;
  EXPECT_EQ(r.out, "");
}

TEST(RunCommandTest, MissingProgramAndTimeout) {
  auto r = run_command({"feos-no-such-program-4711"}, 1000);
  EXPECT_FALSE(r.started);
  EXPECT_EQ(r.error, "feos-no-such-program-4711 not found in PATH");

  auto start = std::chrono::steady_clock::now();
  r = run_command({"sleep", "30"}, 300);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.started);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, 9);
  EXPECT_FALSE(r.succeeded());
  EXPECT_LT(took, std::chrono::seconds(10));
}

// A program that exists and is executable but that the kernel cannot exec: the child's report
// carries execv's errno.
TEST(RunCommandTest, ExecFailureIsReportedWithItsErrno) {
  test::TempDir tmp;
  const std::string program = tmp.path() + "/not-a-program";
  std::ofstream(program) << std::string("\x7f" "ELF garbage", 12);
  ASSERT_EQ(::chmod(program.c_str(), 0755), 0);
  auto r = run_command({program}, 10000);
  EXPECT_FALSE(r.started);
  EXPECT_EQ(r.error, program + ": Exec format error");
}

// A VM with QEMU's emulated VGA next to a passed-through card: only the real GPU counts.
TEST(InventoryTest, EmulatedDisplaysAreListedButNotCounted) {
  test::TempDir tmp;
  test::FakePciFunction vga;
  vga.bdf = "0000:00:02.0";
  vga.vendor = "0x1234";
  vga.device = "0x1111";
  vga.class_code = "0x030000";
  vga.extra = {{"boot_vga", "1\n"}};
  ASSERT_TRUE(test::add_pci_function(tmp.path(), vga));
  test::FakePciFunction gpu;
  gpu.bdf = "0000:01:00.0";
  gpu.device = "0x2335";
  gpu.driver = "nvidia";
  ASSERT_TRUE(test::add_pci_function(tmp.path(), gpu));
  test::FakePciFunction nic;
  nic.bdf = "0000:00:03.0";
  nic.vendor = "0x1af4";
  nic.device = "0x1041";
  nic.class_code = "0x020000";
  ASSERT_TRUE(test::add_pci_function(tmp.path(), nic));

  auto fs = sys::make_posix_filesystem();
  sys::HostPaths paths;
  paths.sysfs_root = tmp.path();
  pci::PciSysfs pci(*fs, paths);
  Report report;
  collect_pci(pci, pci::PciIds(), report);
  ASSERT_TRUE(report.pci_ok) << report.pci_error;
  EXPECT_EQ(report.pci_functions, 3u);
  ASSERT_EQ(report.gpus.size(), 1u);
  EXPECT_EQ(report.gpus[0].device.id(), "10de:2335");
  ASSERT_EQ(report.emulated.size(), 1u);
  EXPECT_EQ(report.emulated[0].device.boot_vga, true);
  EXPECT_TRUE(is_emulated_display(0x1af4, 0x1050));
  EXPECT_FALSE(is_emulated_display(0x10de, 0x2330));

  Options o;
  o.expect_gpus = 1;
  auto checks = evaluate(report, o);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_TRUE(checks[0].pass) << checks[0].detail;
}

// Builds a report of two NVIDIA GPUs as CUDA would describe them.
Report two_gpu_report() {
  Report r;
  r.pci_ok = true;
  for (int i = 0; i < 2; ++i) {
    GpuFunction g;
    g.device.address = pci::Address(0, static_cast<uint8_t>(0x18 + i), 0, 0);
    g.device.vendor_id = 0x10de;
    g.device.device_id = 0x2335;
    g.device.class_code = 0x030200;
    g.device.driver = "nvidia";
    r.gpus.push_back(g);
    CudaDevice d;
    d.index = i;
    d.name = "NVIDIA H200";
    d.pci_bus = 0x18 + i;
    d.vector_add_ran = d.vector_add_ok = true;
    d.vector_elements = 1 << 24;
    for (Bandwidth* b : {&d.host_to_device, &d.device_to_host, &d.device_to_device}) {
      b->measured = true;
      b->gbps = 50;
    }
    r.cuda.devices.push_back(d);
  }
  r.cuda_state = CudaState::kRan;
  r.cuda.ran = true;
  r.cuda.device_count = 2;
  for (auto [from, to] : {std::pair{0, 1}, std::pair{1, 0}}) {
    PeerPair p;
    p.from = from;
    p.to = to;
    p.can_access = p.peer_enabled = true;
    p.copy.measured = true;
    p.copy.gbps = 390;
    p.verified = true;
    r.cuda.peers.push_back(p);
  }
  return r;
}

TEST(EvaluateTest, HealthyMultiGpuPasses) {
  Report r = two_gpu_report();
  Options o;
  o.expect_gpus = 2;
  o.expect_p2p = true;
  auto checks = evaluate(r, o);
  EXPECT_TRUE(all_pass(checks));
  // expect-gpus, 3 per GPU, 2 p2p copies, 2 p2p expectations.
  EXPECT_EQ(checks.size(), 1u + 6u + 2u + 2u);
  std::string text = render_text(r, checks);
  EXPECT_NE(text.find("0 -> 1: can access peer yes, peer access enabled, copy 390.0 GB/s, data verified"),
            std::string::npos) << text;
  EXPECT_NE(text.find("RESULT: PASS (11 checks)"), std::string::npos) << text;
  auto j = nlohmann::json::parse(render_json(r, checks));
  EXPECT_EQ(j["cuda"]["peers"].size(), 2u);
  EXPECT_DOUBLE_EQ(j["cuda"]["peers"][0]["copy"]["gbps"].get<double>(), 390.0);
  EXPECT_EQ(j["result"], "PASS");
}

TEST(EvaluateTest, CudaFailuresFail) {
  Report r = two_gpu_report();
  r.cuda.devices[0].vector_add_ok = false;
  r.cuda.devices[0].vector_mismatches = 12;
  r.cuda.devices[1].device_to_device.measured = false;
  r.cuda.devices[1].error = "cudaMalloc(&src.p, bytes): cudaErrorMemoryAllocation (out of memory)";
  r.cuda.peers[1].verified = false;
  r.cuda.peers[1].mismatched_words = 7;
  r.cuda.peers[0].can_access = false;
  r.cuda.peers[0].peer_enabled = false;
  Options o;
  o.expect_p2p = true;
  auto checks = evaluate(r, o);
  std::vector<std::string> failed;
  for (const auto& c : checks)
    if (!c.pass) failed.push_back(c.name + ": " + c.detail);
  EXPECT_EQ(failed, (std::vector<std::string>{
                        "cuda-vector-add 0000:18:00.0: 16777216 floats, 12 wrong sums",
                        "cuda-bandwidth 0000:19:00.0: cudaMalloc(&src.p, bytes): cudaErrorMemoryAllocation (out of memory)",
                        "p2p-copy 1->0: 390.0 GB/s, peer access, 7 words wrong",
                        "expect-p2p 0->1: cudaDeviceCanAccessPeer says no",
                    }));
}

TEST(EvaluateTest, GpuInvisibleToCudaFails) {
  Report r = two_gpu_report();
  r.cuda.devices.pop_back();
  r.cuda.device_count = 1;
  r.cuda.peers.clear();
  auto checks = evaluate(r, Options());
  ASSERT_FALSE(all_pass(checks));
  bool found = false;
  for (const auto& c : checks)
    if (c.name == "cuda-visible 0000:19:00.0") {
      found = true;
      EXPECT_FALSE(c.pass);
      EXPECT_EQ(c.detail, "no CUDA device at this address (CUDA sees 1 device(s))");
    }
  EXPECT_TRUE(found);

  Report no_driver = two_gpu_report();
  no_driver.cuda = CudaReport();
  no_driver.cuda.ran = true;
  no_driver.cuda.error = "cudaGetDeviceCount: cudaErrorNoDevice (no CUDA-capable device is detected)";
  checks = evaluate(no_driver, Options());
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].name, "cuda");
  EXPECT_FALSE(checks[0].pass);
}

// The JSON report: one line, keys in the documented order, any text from the guest carried
// exactly (quotes, control characters) or, when it is not UTF-8, with U+FFFD in place of the bad
// bytes; measured figures with six significant digits, unmeasurable ones null.
TEST(RenderJsonTest, OneLineInDocumentedOrderWithGuestTextCarried) {
  Report r = two_gpu_report();
  const std::string awkward = "quote\" backslash\\ nl\n tab\t ctl\x01 del\x7f gr\xc3\xbc\xc3\x9f";
  r.cuda.devices[0].error = awkward;
  r.nvidia_smi.error = std::string("\xff\xc3", 2);
  r.cuda.devices[0].vector_add_ms = 0.33292812345;
  r.cuda.devices[1].host_to_device.gbps = INFINITY;
  auto checks = evaluate(r, Options());
  const std::string text = render_json(r, checks);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.find('\n'), text.size() - 1) << text;

  auto j = nlohmann::ordered_json::parse(text);
  std::vector<std::string> keys;
  for (const auto& [key, value] : j.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"tool", "version", "cuda_built", "pci", "nvidia_driver",
                                            "nvidia_smi", "cuda", "checks", "result"}));
  const auto& device = j["cuda"]["devices"][0];
  EXPECT_EQ(device["error"], awkward);
  EXPECT_EQ(j["nvidia_smi"]["error"], "\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(device["vector_add"].dump(),
            R"({"ran":true,"ok":true,"elements":16777216,"mismatches":0,"ms":0.332928})");
  EXPECT_TRUE(j["cuda"]["devices"][1]["host_to_device"]["gbps"].is_null());
  EXPECT_DOUBLE_EQ(j["cuda"]["devices"][1]["device_to_host"]["gbps"].get<double>(), 50.0);
  const auto& gpu = j["pci"]["gpus"][0];
  EXPECT_EQ(gpu["address"], "0000:18:00.0");
  EXPECT_TRUE(gpu["iommu_group"].is_null());
  EXPECT_TRUE(gpu["boot_vga"].is_null());
  EXPECT_TRUE(j["pci"]["error"].is_null());
  EXPECT_EQ(j["result"], "PASS");
}

}  // namespace
}  // namespace feos::gpucheck
