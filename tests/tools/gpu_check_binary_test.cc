// Runs the real feos-gpu-check binary on the materialized capture of an H100 guest
// (tests/fixtures/sysfs/h100-guest). --no-cuda: the test machine's own GPUs (if any) are not the
// fixture's; --proc-root and --pci-ids pin the other inputs to the test's own files.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gpu-check/run_command.h"
#include "sysfs_tree.h"

namespace feos::gpucheck {
namespace {

class GpuCheckBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sysfs_ = tmp_.path() + "/sys";
    proc_ = tmp_.path() + "/proc";
    std::filesystem::create_directories(sysfs_);
    std::filesystem::create_directories(proc_);
    auto st = test::materialize_sysfs_capture(test::fixtures_dir() + "/sysfs/h100-guest", sysfs_);
    ASSERT_TRUE(st) << st.error().message;
  }

  CommandResult run(std::vector<std::string> args, bool pin_inputs = true) {
    std::vector<std::string> argv = {FEOS_GPU_CHECK_BINARY};
    if (pin_inputs) {
      for (const auto& a : {"--sysfs-root", sysfs_.c_str(), "--proc-root", proc_.c_str(), "--pci-ids"})
        argv.push_back(a);
      argv.push_back(test::fixtures_dir() + "/pci.ids");
      argv.push_back("--no-cuda");
      argv.push_back("--nvidia-smi");
      argv.push_back(tmp_.path() + "/no-nvidia-smi-here");
    }
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult r = run_command(argv, 60000);
    EXPECT_TRUE(r.started) << r.error;
    return r;
  }

  // An executable script standing in for nvidia-smi: prints `csv` after checking its argv.
  std::string fake_nvidia_smi(const std::string& csv) {
    std::string path = tmp_.path() + "/nvidia-smi";
    std::ofstream(path) << "#!/bin/sh\n"
                           "case \"$1\" in --query-gpu=index,pci.bus_id,*) ;; *) echo bad query \"$1\" >&2; exit 9;; esac\n"
                           "[ \"$2\" = --format=csv,noheader ] || { echo bad format >&2; exit 9; }\n"
                           "cat <<'CSV'\n" << csv << "CSV\n";
    ::chmod(path.c_str(), 0755);
    return path;
  }

  test::TempDir tmp_;
  std::string sysfs_, proc_;
};

TEST_F(GpuCheckBinaryTest, ListsTheH100) {
  auto r = run({});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("0000:00:06.0  10de:2330  NVIDIA Corporation GH100[H100 SXM5 80GB]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("class 0x030200 (3D controller)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("driver nvidia"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("BAR2 128 GiB at 0x100000000000, 64-bit prefetchable"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("BAR0 16 MiB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("BAR4 32 MiB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("link 32.0 GT/s x16 (max 32.0 GT/s x16)"), std::string::npos) << r.out;
  // The virtio devices and the host bridge are not GPUs.
  EXPECT_EQ(r.out.find("1af4:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("7 functions, 1 GPU(s)"), std::string::npos) << r.out;
  // No /proc/driver/nvidia in the fixture, no nvidia-smi: reported, not fatal.
  EXPECT_NE(r.out.find("NVIDIA driver: " + proc_ + "/driver/nvidia/version not found"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nvidia-smi: not available"), std::string::npos) << r.out;
  // Built with nvcc the CUDA part exists and --no-cuda skips it; built without, it says so.
  EXPECT_NE(r.out.find(FEOS_GPU_CHECK_BINARY_HAS_CUDA ? "CUDA: skipped (--no-cuda)" : "CUDA: not built with CUDA"),
            std::string::npos)
      << r.out;
}

TEST_F(GpuCheckBinaryTest, ExpectationsThatHoldPass) {
  auto r = run({"--expect-gpus", "1", "--expect-id", "10de:2330", "--expect-driver=nvidia"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("PASS expect-gpus: found 1 GPU(s) (0000:00:06.0), expected 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PASS expect-id 10de:2330: present at 0000:00:06.0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PASS expect-driver 0000:00:06.0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("RESULT: PASS (3 checks)"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
}

TEST_F(GpuCheckBinaryTest, ExpectationsThatDoNotHoldFailWithOneLineEach) {
  auto r = run({"--expect-gpus", "2"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("\nFAIL expect-gpus: found 1 GPU(s) (0000:00:06.0), expected 2\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("RESULT: FAIL (1 of 1 checks failed)"), std::string::npos) << r.out;

  r = run({"--expect-gpus", "1", "--expect-id", "10de:2335", "--expect-driver", "vfio-pci"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("\nFAIL expect-id 10de:2335: no GPU with id 10de:2335\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nFAIL expect-id 0000:00:06.0: GPU 0000:00:06.0 has id 10de:2330, not one of the expected ids\n"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nFAIL expect-driver 0000:00:06.0: driver nvidia bound, expected vfio-pci\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("RESULT: FAIL (3 of 4 checks failed)"), std::string::npos) << r.out;

  r = run({"--expect-p2p"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("\nFAIL expect-p2p: CUDA checks did not run"), std::string::npos) << r.out;
}

TEST_F(GpuCheckBinaryTest, JsonParsesAndHoldsTheFacts) {
  auto r = run({"-o", "json", "--expect-gpus", "1", "--expect-id", "10de:2330"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);  // throws (failing the test) on invalid JSON
  EXPECT_EQ(j["tool"], "feos-gpu-check");
  EXPECT_EQ(j["result"], "PASS");
  EXPECT_EQ(j["pci"]["functions"], 7);
  ASSERT_EQ(j["pci"]["gpus"].size(), 1u);
  const auto& gpu = j["pci"]["gpus"][0];
  EXPECT_EQ(gpu["address"], "0000:00:06.0");
  EXPECT_EQ(gpu["id"], "10de:2330");
  EXPECT_EQ(gpu["class"], "0x030200");
  EXPECT_EQ(gpu["driver"], "nvidia");
  EXPECT_TRUE(gpu["iommu_group"].is_null());
  EXPECT_EQ(gpu["numa_node"], -1);
  EXPECT_EQ(gpu["reset_methods"], nlohmann::json::array({"flr"}));
  EXPECT_EQ(gpu["current_link"]["width"], 16);
  EXPECT_DOUBLE_EQ(gpu["current_link"]["gts"].get<double>(), 32.0);
  ASSERT_EQ(gpu["bars"].size(), 3u);
  EXPECT_EQ(gpu["bars"][1]["index"], 2);
  EXPECT_EQ(gpu["bars"][1]["size"].get<uint64_t>(), 128ull << 30);
  EXPECT_EQ(gpu["bars"][1]["is_64bit"], true);
  EXPECT_EQ(gpu["bars"][1]["prefetchable"], true);
  EXPECT_EQ(gpu["mmio64_prefetchable_bytes"].get<uint64_t>(), (128ull << 30) + (48ull << 20));
  EXPECT_EQ(j["nvidia_driver"]["found"], false);
  EXPECT_EQ(j["nvidia_smi"]["ran"], false);
  EXPECT_EQ(j["cuda"]["state"], FEOS_GPU_CHECK_BINARY_HAS_CUDA ? "skipped" : "not_built");
  EXPECT_EQ(j["checks"].size(), 2u);

  r = run({"-o", "json", "--expect-gpus", "2"});
  EXPECT_EQ(r.exit_code, 1);
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["result"], "FAIL");
  EXPECT_EQ(j["checks"][0]["pass"], false);
  // The failure is also a line on stderr for scripts.
  EXPECT_EQ(r.err, "FAIL expect-gpus: found 1 GPU(s) (0000:00:06.0), expected 2\n");
}

TEST_F(GpuCheckBinaryTest, ReadsDriverVersionAndNvidiaSmi) {
  std::filesystem::create_directories(proc_ + "/driver/nvidia");
  std::ofstream(proc_ + "/driver/nvidia/version")
      << "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (dvs-builder@U22-I3-AF03-09-1)  Thu Oct 30 05:48:51 UTC 2025\n"
         "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04.2)\n";
  std::string smi = fake_nvidia_smi(
      "0, 00000000:00:06.0, NVIDIA H100 80GB HBM3, 580.159.04, 96.00.99.00.01, 81559 MiB, 5, 16, 5, 16, 31, 71.38 W\n");
  auto r = run({"-o", "json", "--nvidia-smi", smi});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["nvidia_driver"]["found"], true);
  EXPECT_EQ(j["nvidia_driver"]["version"], "580.159.04");
  EXPECT_EQ(j["nvidia_smi"]["ok"], true) << j["nvidia_smi"].dump();
  ASSERT_EQ(j["nvidia_smi"]["gpus"].size(), 1u);
  EXPECT_EQ(j["nvidia_smi"]["gpus"][0]["name"], "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(j["nvidia_smi"]["gpus"][0]["pci.bus_id"], "00000000:00:06.0");
  EXPECT_EQ(j["nvidia_smi"]["gpus"][0]["power.draw"], "71.38 W");

  r = run({"--nvidia-smi", smi});
  EXPECT_NE(r.out.find("NVIDIA driver: 580.159.04"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nvidia-smi: 1 GPU(s)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("name=NVIDIA H100 80GB HBM3"), std::string::npos) << r.out;

  // A failing nvidia-smi is reported with its message, and is not a failed check.
  std::string broken = tmp_.path() + "/broken-smi";
  std::ofstream(broken) << "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate' >&2\nexit 9\n";
  ::chmod(broken.c_str(), 0755);
  r = run({"--nvidia-smi", broken});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("nvidia-smi: failed: exited with status 9: NVIDIA-SMI has failed"), std::string::npos) << r.out;
}

TEST_F(GpuCheckBinaryTest, UsageErrorsExitTwo) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"--expect-gpus", "two"}, {"--expect-id", "10de"}, {"--bogus"}, {"-o", "yaml"}, {"--expect-gpus"}}) {
    auto r = run(args, false);
    EXPECT_EQ(r.exit_code, 2) << args[0];
    EXPECT_NE(r.err.find("Usage: feos-gpu-check"), std::string::npos) << r.err;
  }
  auto r = run({"--help"}, false);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--expect-gpus N"), std::string::npos);
}

TEST_F(GpuCheckBinaryTest, MissingSysfsFails) {
  auto r = run({"--sysfs-root", tmp_.path() + "/nowhere"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("\nFAIL pci: cannot list PCI functions under " + tmp_.path() + "/nowhere"), std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace feos::gpucheck
