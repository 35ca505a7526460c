// Benchmarks of feosd's own overhead, printed as figures (not pass/fail):
//  1. Time from CreateVm (waiting for created) + StartVm (over the real unix socket) until StartVm returns with the guest
//     running, versus launching the very same qemu argv directly and bringing it to "running"
//     over QMP (connect, cont, query-status) — N VMs each, interleaved, one at a time.
//     Target: feosd <= 1.05 x direct + 5 ms.
//  2. ListVms with M stored VM records: latency percentiles. Target: p99 < 5 ms.
// Usage: vm_start_bench BIN_DIR GUEST_DIR [N=20] [M=1000]
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "feos/vm/vmm/api/v1/vm.grpc.pb.h"
#include "sys/filesystem.h"
#include "sys/host_paths.h"
#include "sys/process.h"
#include "vmm/qemu/argv_builder.h"
#include "vmm/qemu/qmp_client.h"

namespace pb = feos::vm::vmm::api::v1;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  return v[i];
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "vm_start_bench: %s\n", what.c_str());
  std::exit(1);
}

void check(const grpc::Status& s, const char* what) {
  if (!s.ok()) die(std::string(what) + ": " + s.error_message());
}

// CreateVm answers with the VM creating (FeOS's two phases); StartVm is refused until it is
// created. Polls GetVm every 0.5 ms, so the wait adds at most that to the figure.
void wait_created(pb::VMService::Stub& stub, const std::string& id) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    grpc::ClientContext c;
    pb::GetVmRequest get;
    get.set_vm_id(id);
    pb::VmInfo info;
    check(stub.GetVm(&c, get, &info), "GetVm");
    if (info.state() == pb::VM_STATE_CREATED) return;
    if (info.state() != pb::VM_STATE_CREATING)
      die("vm " + id + " left creating as " + pb::VmState_Name(info.state()) + ": " + info.state_reason());
    if (Clock::now() > deadline) die("vm " + id + " still creating after 30 s");
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

// The argv of a running process, read from procfs.
std::vector<std::string> process_argv(feos::sys::Filesystem& fs, int pid) {
  auto raw = fs.read_file(feos::sys::HostPaths{}.process(pid) + "/cmdline");
  if (!raw) die(raw.error().to_string());
  std::vector<std::string> argv;
  size_t start = 0;
  for (size_t i = 0; i < raw->size(); ++i)
    if ((*raw)[i] == '\0') {
      argv.push_back(raw->substr(start, i - start));
      start = i + 1;
    }
  return argv;
}

// Launches `argv` directly and brings the guest to running over QMP, as feosd does.
double direct_start(feos::sys::ProcessLauncher& launcher, const std::vector<std::string>& argv,
                    const std::string& runtime_dir) {
  std::filesystem::create_directories(runtime_dir);
  auto files = feos::vmm::qemu::runtime_files(runtime_dir);
  auto t0 = Clock::now();
  auto pid = launcher.launch({argv, files.qemu_log, 0});
  if (!pid) die(pid.error().to_string());
  feos::vmm::qemu::QmpClient::Options options;
  auto qmp = feos::vmm::qemu::QmpClient::connect(files.qmp_socket, nullptr, options);
  if (!qmp) die(qmp.error().to_string());
  if (auto r = (*qmp)->execute("cont"); !r) die(r.error().to_string());
  auto status = (*qmp)->execute("query-status");
  if (!status || (*status)["status"] != "running") die("direct qemu not running");
  double ms = ms_since(t0);
  (void)(*qmp)->execute("quit");
  qmp->reset();
  for (int i = 0; i < 500 && launcher.is_alive(*pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  (void)launcher.send_signal(*pid, SIGKILL);
  std::filesystem::remove_all(runtime_dir);
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) die("usage: vm_start_bench BIN_DIR GUEST_DIR [N=20] [M=1000]");
  std::string bin = argv[1], guest = argv[2];
  int n = argc > 3 ? std::atoi(argv[3]) : 20;
  int m = argc > 4 ? std::atoi(argv[4]) : 1000;
  auto work = std::filesystem::temp_directory_path() / ("feosd-bench." + std::to_string(::getpid()));
  std::filesystem::create_directories(work);
  std::string sock = (work / "feosd.sock").string();

  auto fs = feos::sys::make_posix_filesystem();
  auto launcher = feos::sys::make_posix_process_launcher();
  // ListVms is measured over m records: more than the daemon's default --max-vms (512) allows.
  auto daemon = launcher->launch({{bin + "/feosd", "--socket", sock, "--state-dir", (work / "state").string(),
                                   "--accel", "tcg", "--log-level", "warn", "--max-vms", std::to_string(m + n + 16)},
                                  (work / "feosd.log").string(), 0});
  if (!daemon) die(daemon.error().to_string());
  auto channel = grpc::CreateChannel("unix:" + sock, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)))
    die("feosd did not come up");
  auto stub = pb::VMService::NewStub(channel);

  pb::VmConfig config;
  config.mutable_cpus()->set_boot_vcpus(1);
  config.mutable_memory()->set_size_mib(256);
  config.mutable_boot()->set_kernel(guest + "/vmlinuz");
  config.mutable_boot()->set_initramfs(guest + "/initramfs.cpio");
  config.mutable_boot()->set_cmdline("console=ttyS0");

  std::vector<double> via_feosd, direct;
  for (int i = 0; i < n; ++i) {
    grpc::ClientContext c1, c2, c3, c4;
    pb::CreateVmRequest create;
    *create.mutable_config() = config;
    pb::CreateVmResponse created;
    pb::StartVmResponse started;
    auto t0 = Clock::now();
    check(stub->CreateVm(&c1, create, &created), "CreateVm");
    wait_created(*stub, created.vm_id());
    pb::StartVmRequest start;
    start.set_vm_id(created.vm_id());
    check(stub->StartVm(&c2, start, &started), "StartVm");
    via_feosd.push_back(ms_since(t0));

    pb::GetVmRequest get;
    get.set_vm_id(created.vm_id());
    pb::VmInfo info;
    check(stub->GetVm(&c3, get, &info), "GetVm");
    auto qemu_argv = process_argv(*fs, static_cast<int>(info.pid()));
    pb::DeleteVmRequest del;
    del.set_vm_id(created.vm_id());
    pb::DeleteVmResponse deleted;
    check(stub->DeleteVm(&c4, del, &deleted), "DeleteVm");
    direct.push_back(direct_start(*launcher, qemu_argv, (work / "state" / "vms" / created.vm_id()).string()));
  }
  double f50 = percentile(via_feosd, 50), d50 = percentile(direct, 50);
  double fmean = std::accumulate(via_feosd.begin(), via_feosd.end(), 0.0) / n;
  double dmean = std::accumulate(direct.begin(), direct.end(), 0.0) / n;
  std::printf("start overhead, %d VMs each (TCG, interleaved):\n", n);
  std::printf("  feosd CreateVm+StartVm -> running: median %.1f ms, mean %.1f ms, p90 %.1f ms\n", f50, fmean,
              percentile(via_feosd, 90));
  std::printf("  same qemu argv started directly  : median %.1f ms, mean %.1f ms, p90 %.1f ms\n", d50, dmean,
              percentile(direct, 90));
  std::printf("  ratio (median) %.3fx, difference %.1f ms; target <= 1.05x + 5 ms (%.1f ms): %s\n", f50 / d50,
              f50 - d50, 1.05 * d50 + 5, f50 <= 1.05 * d50 + 5 ? "MET" : "MISSED");

  // ListVms with M records.
  for (int i = 0; i < m; ++i) {
    grpc::ClientContext c;
    pb::CreateVmRequest create;
    *create.mutable_config() = config;
    pb::CreateVmResponse created;
    check(stub->CreateVm(&c, create, &created), "CreateVm");
  }
  std::vector<double> list_ms;
  size_t listed = 0;
  for (int i = 0; i < 500; ++i) {
    grpc::ClientContext c;
    pb::ListVmsResponse resp;
    auto t0 = Clock::now();
    check(stub->ListVms(&c, pb::ListVmsRequest(), &resp), "ListVms");
    list_ms.push_back(ms_since(t0));
    listed = resp.vms_size();
  }
  std::printf("ListVms with %zu records, 500 calls: p50 %.2f ms, p99 %.2f ms, max %.2f ms; target p99 < 5 ms: %s\n",
              listed, percentile(list_ms, 50), percentile(list_ms, 99), percentile(list_ms, 100),
              percentile(list_ms, 99) < 5 ? "MET" : "MISSED");

  (void)launcher->send_signal(*daemon, SIGTERM);
  for (int i = 0; i < 300 && launcher->is_alive(*daemon); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::filesystem::remove_all(work);
  return 0;
}
