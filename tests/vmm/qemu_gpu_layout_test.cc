// The GPU part of the argv against the real qemu-system-x86_64 (TCG), without GPUs: qemu's own
// q35 code must place the 64-bit PCI hole where mmio_layout.h says, accept the phys-bits the
// builder picks and refuse one bit less; and it must accept every vfio-pci option the builder
// writes (it fails only because the host device does not exist). Skipped when qemu is missing.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gpu_fixtures.h"
#include "support/temp_dir.h"
#include "vmm/qemu/argv_builder.h"

extern char** environ;

namespace feos::vmm::qemu {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace feos::vmm::qemu::testing;
using ::feos::test::TempDir;

constexpr const char* kQemu = "qemu-system-x86_64";

struct QemuRun {
  bool spawned = false;
  int exit_code = -1;
  std::string output;
};

// Runs `argv` with stdin from `input` and stdout+stderr captured; kills it after 60 s.
QemuRun run(const std::vector<std::string>& argv, const std::string& input) {
  TempDir dir;
  std::ofstream(dir / "in") << input;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, (dir / "in").c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, (dir / "out").c_str(), O_WRONLY | O_CREAT, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  QemuRun result;
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return result;
  result.spawned = true;
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream out(dir / "out");
  std::stringstream text;
  text << out.rdbuf();
  result.output = text.str();
  return result;
}

std::string value_after(const std::vector<std::string>& argv, const std::string& flag) {
  for (size_t i = 0; i + 1 < argv.size(); ++i)
    if (argv[i] == flag) return argv[i + 1];
  return {};
}

// Lines of monitor output that are plain numbers (qom-get replies), in order.
std::vector<uint64_t> numbers(const std::string& output) {
  std::vector<uint64_t> out;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty() && line.find_first_not_of("0123456789") == std::string::npos)
      out.push_back(std::stoull(line));
  }
  return out;
}

class QemuGpuLayout : public ::testing::Test {
 protected:
  void SetUp() override {
    auto version = run({kQemu, "--version"}, "");
    if (!version.spawned || version.exit_code != 0)
      GTEST_SKIP() << kQemu << " is not runnable: " << version.output;
  }

  // The machine, RAM, cpu and hole of the builder's argv for `gpus`, without the devices; RAM
  // comes from a reserve=off backend so a 1 TiB guest costs nothing until touched.
  QemuRun run_machine(const std::vector<std::string>& built, const std::string& cpu) {
    std::string memory = value_after(built, "-m");
    std::vector<std::string> argv = {kQemu, "-machine", "q35,memory-backend=ram0", "-object",
                                     "memory-backend-ram,id=ram0,size=" + memory + ",reserve=off",
                                     "-accel", "tcg", "-cpu", cpu, "-m", memory};
    std::string global = value_after(built, "-global");
    if (!global.empty()) argv.insert(argv.end(), {"-global", global});
    argv.insert(argv.end(), {"-nodefaults", "-display", "none", "-S", "-monitor", "stdio"});
    return run(argv, "qom-get /machine/q35 pci-hole64-start\nqom-get /machine/q35 pci-hole64-end\nquit\n");
  }

  void expect_qemu_agrees(const std::vector<model::AssignedGpu>& gpus, uint64_t memory_mib) {
    model::VmSpec spec;
    spec.boot.kernel = "/nonexistent/vmlinuz";  // never loaded: only the machine is built
    spec.memory.size_mib = memory_mib;
    ArgvConfig config;
    auto built = build_argv(config, spec, {}, gpus, runtime_files("/tmp/unused"), "vm-1");
    ASSERT_TRUE(built) << built.error().to_string();
    std::vector<BridgeWindows> ports;
    for (const auto& gpu : gpus) {
      ports.push_back(*bridge_windows(gpu.functions));
      for (const auto& peer : gpu.group_peers) ports.push_back(*bridge_windows({peer}));
    }
    auto layout = plan_address_layout(memory_mib * kMiB, ports);
    ASSERT_TRUE(layout);
    std::string cpu = value_after(*built, "-cpu");
    ASSERT_EQ(cpu, "max,phys-bits=" + std::to_string(layout->phys_bits));

    auto accepted = run_machine(*built, cpu);
    ASSERT_EQ(accepted.exit_code, 0) << accepted.output;
    auto values = numbers(accepted.output);
    ASSERT_EQ(values.size(), 2u) << accepted.output;
    EXPECT_EQ(values[0], layout->hole64_start);
    EXPECT_EQ(values[1], layout->address_end);
    std::printf("%zu GPU(s), %lu MiB RAM: qemu puts the hole at %s..%s, phys-bits=%d\n",
                gpus.size(), static_cast<unsigned long>(memory_mib),
                format_bytes(values[0]).c_str(), format_bytes(values[1]).c_str(),
                layout->phys_bits);

    if (layout->phys_bits > kMinPhysBits) {
      auto refused = run_machine(*built, "max,phys-bits=" + std::to_string(layout->phys_bits - 1));
      EXPECT_NE(refused.exit_code, 0);
      EXPECT_THAT(refused.output, HasSubstr("phys-bits too low"));
    }
  }
};

TEST_F(QemuGpuLayout, OneH100) { expect_qemu_agrees(hgx_h100s(1), 64 * 1024); }
TEST_F(QemuGpuLayout, TwoH100sRelocatedAbove1Tib) { expect_qemu_agrees(hgx_h100s(2), 512 * 1024); }
TEST_F(QemuGpuLayout, EightH100s) { expect_qemu_agrees(hgx_h100s(8), 1024 * 1024); }
TEST_F(QemuGpuLayout, ConsumerCardKeepsTheDefaultHole) { expect_qemu_agrees({rtx4090()}, 8 * 1024); }
TEST_F(QemuGpuLayout, H100WithAGroupPeer) {
  auto gpus = hgx_h100s(1);
  gpus[0].group_peers.push_back(connectx7("0000:19:00.1", 40));
  expect_qemu_agrees(gpus, 16 * 1024);
}

TEST_F(QemuGpuLayout, DeviceOptionsAreAcceptedByQemu) {
  TempDir dir;
  std::ofstream(dir / "root.raw") << std::string(4096, '\0');
  model::VmSpec spec;
  spec.image_path = dir / "root.raw";
  spec.memory.size_mib = 256;
  // A domain no host has, so qemu gets as far as looking the device up. Function 0 carries every
  // option the builder can write; qemu parses a device's options before it realizes it.
  auto gpu = rtx4090();
  for (auto& function : gpu.functions) {
    const pci::Address& a = function.address;
    function.address = pci::Address(0xfffe, a.bus(), a.device(), a.function());
  }
  gpu.request.address = gpu.functions[0].address;
  // A second card, so the two can share a GPUDirect clique.
  auto second = gpu;
  for (auto& function : second.functions) {
    const pci::Address& a = function.address;
    function.address = pci::Address(0xfffe, 0x02, a.device(), a.function());
  }
  second.request.address = second.functions[0].address;
  gpu.request.boot_vga = true;
  gpu.request.rombar = model::RomBar::kOff;
  spec.gpus = {gpu.request, second.request};
  spec.gpu_p2p = {.mode = model::GpuP2pMode::kExplicit, .cliques = {{gpu.request.address, second.request.address}}};
  ArgvConfig config;
  BlockGraph images;
  images.root = {{spec.image_path, model::DiskFormat::kRaw, ""}};
  auto built = build_argv(config, spec, images, {gpu, second}, runtime_files(dir.path()), "vm-1");
  ASSERT_TRUE(built) << built.error().to_string();
  ASSERT_THAT(*built, ::testing::Contains(
                          "vfio-pci,host=fffe:01:00.0,id=feos-gpu0-f0,bus=feos-gpu0-rp,addr=0x0.0,"
                          "multifunction=on,rombar=0,x-vga=on,x-nv-gpudirect-clique=0"));
  auto result = run(*built, "");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.output, HasSubstr("fffe:01:00.0: no such host device")) << result.output;
  EXPECT_THAT(result.output, Not(HasSubstr("Property")));
}

}  // namespace
}  // namespace feos::vmm::qemu
