// Load on the VM API: FEOS_LOAD_CLIENTS (200) client threads for FEOS_LOAD_SECONDS (60) against
// an in-process feosd (tests/api/api_harness.h: real gRPC server, VmManager, SQLite store and
// HostDevices on the fake kernel of an 8-GPU HGX host; fake hypervisor), each doing a random mix
// of ListVms, GetVm (of its own VMs), CreateVm (with one random GPU of the eight, or none) and
// DeleteVm (of its own VMs). Every unbind in the fake kernel takes FEOS_LOAD_UNBIND_DELAY_MS (2)
// so GPU binds overlap like on a real host.
//
// Invariants (exit 1 when one breaks):
//   - no GPU function is held by two VMs: in the ledger (device_assignments) and among the
//     GPU-holding VMs of ListVms, sampled continuously; at the quiescent end a GPU is on vfio-pci
//     iff the ledger holds it, and the ledger holds exactly the functions of the live VMs' GPUs;
//   - no lost VM record: every acknowledged create not deleted by its client is in the final
//     ListVms (and the store) with its GPU, every acknowledged delete is gone, nothing else appears;
//     GetVm of an own VM always finds it, with its GPU;
//   - every RPC succeeds or fails with an expected code: a create that loses a GPU race gets
//     FAILED_PRECONDITION naming the GPU and its holder; nothing else may fail;
//   - after deleting every VM the host is exactly as before (bindings, VFIO nodes, empty ledger).
// Prints RPC counts, codes, p50/p99/max latencies of reads (ListVms, GetVm) and writes.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api_harness.h"
#include "model/vm_id.h"

namespace feos::api::testing {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

enum Kind { kList, kGet, kCreate, kDelete, kKinds };
constexpr const char* kKindNames[kKinds] = {"ListVms", "GetVm", "CreateVm", "DeleteVm"};
// A client keeps at most this many VMs: the VM count (and so ListVms' size) stays bounded.
constexpr size_t kMaxOwnVms = 2;
constexpr auto kRpcDeadline = 60s;

long env_long(const char* name, long fallback) {
  const char* value = std::getenv(name);
  if (!value || !*value) return fallback;
  char* end = nullptr;
  long parsed = std::strtol(value, &end, 10);
  return (end && *end == '\0' && parsed > 0) ? parsed : fallback;
}

std::string code_name(grpc::StatusCode code) { return std::string(feos::code_name(static_cast<Code>(code))); }

// Invariant violations, from any thread; distinct details are kept (with counts) for the report.
class Violations {
 public:
  void add(const std::string& kind, const std::string& detail) {
    std::lock_guard lock(mu_);
    ++counts_[kind];
    std::string line = kind + ": " + detail;
    if (details_.count(line) || details_.size() < 40) ++details_[line];
  }
  uint64_t count(const std::string& kind) const {
    std::lock_guard lock(mu_);
    auto it = counts_.find(kind);
    return it == counts_.end() ? 0 : it->second;
  }
  uint64_t total() const {
    std::lock_guard lock(mu_);
    uint64_t n = 0;
    for (const auto& [k, c] : counts_) n += c;
    return n;
  }
  void print() const {
    std::lock_guard lock(mu_);
    for (const auto& [line, n] : details_)
      std::printf("  VIOLATION (x%llu) %s\n", static_cast<unsigned long long>(n), line.c_str());
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> counts_;
  std::map<std::string, uint64_t> details_;
};

constexpr const char* kDouble = "double assignment";
constexpr const char* kLost = "lost record";
constexpr const char* kUnexpected = "unexpected code";

struct OwnVm {
  std::string id;
  std::string gpu;  // "" for none
};

struct ClientResult {
  std::vector<OwnVm> live;             // acknowledged creates, not deleted
  std::vector<std::string> deleted;    // acknowledged deletes
  std::vector<uint32_t> micros[kKinds];
  std::map<std::pair<int, std::string>, uint64_t> codes;  // (kind, code name) -> count
  uint64_t gpu_creates = 0, gpu_creates_ok = 0, gpu_creates_busy = 0;
};

// What a VmInfo says about its GPUs: every host function it lists.
std::vector<std::string> functions_of(const pb::VmInfo& vm) {
  std::vector<std::string> out;
  for (const auto& gpu : vm.gpus())
    for (const auto& f : gpu.functions()) out.push_back(f.address());
  return out;
}

// A creating VM holds its claim (its GPUs are bound in the background).
bool holds_gpus(pb::VmState state) {
  return state == pb::VM_STATE_CREATING || state == pb::VM_STATE_CREATED || state == pb::VM_STATE_RUNNING || state == pb::VM_STATE_PAUSED;
}

// No function in two ledger rows; every function of one card held by one VM.
void check_ledger(const std::vector<store::DeviceAssignment>& rows, Violations& v, const char* when) {
  std::map<std::string, std::string> holder;
  for (const auto& row : rows) {
    auto [it, fresh] = holder.emplace(row.bdf.to_string(), row.vm_id);
    if (!fresh) v.add(kDouble, std::string(when) + ": ledger holds " + row.bdf.to_string() + " for " + it->second + " and " + row.vm_id);
  }
}

// Among the VMs of one ListVms answer that hold GPUs, no function appears twice.
void check_listing(const pb::ListVmsResponse& list, Violations& v, const char* when) {
  std::map<std::string, std::string> holder;
  for (const auto& vm : list.vms()) {
    if (!holds_gpus(vm.state())) continue;
    for (const auto& bdf : functions_of(vm)) {
      auto [it, fresh] = holder.emplace(bdf, vm.vm_id());
      if (!fresh)
        v.add(kDouble, std::string(when) + ": ListVms shows " + bdf + " on " + it->second + " and " + vm.vm_id() +
                           " (" + pb::VmState_Name(vm.state()) + ")");
    }
  }
}

class Client {
 public:
  Client(std::shared_ptr<grpc::Channel> channel, uint64_t seed, Violations& violations)
      : stub_(pb::VMService::NewStub(std::move(channel))), rng_(seed), violations_(violations) {}

  void run(Clock::time_point until) {
    while (Clock::now() < until) {
      int r = std::uniform_int_distribution<int>(0, 99)(rng_);
      Kind kind = r < 35 ? kList : r < 70 ? kGet : r < 88 ? kCreate : kDelete;
      if (kind == kGet && result.live.empty()) kind = kList;
      if (kind == kCreate && result.live.size() >= kMaxOwnVms) kind = kDelete;
      if (kind == kDelete && result.live.empty()) kind = kCreate;
      switch (kind) {
        case kList: list(); break;
        case kGet: get(); break;
        case kCreate: create(); break;
        case kDelete: remove(); break;
        default: break;
      }
    }
  }

  ClientResult result;

 private:
  template <typename F>
  grpc::Status timed(Kind kind, F&& call) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kRpcDeadline);
    auto start = Clock::now();
    grpc::Status s = call(ctx);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
    result.micros[kind].push_back(static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX)));
    ++result.codes[{kind, code_name(s.error_code())}];
    return s;
  }
  void unexpected(Kind kind, const grpc::Status& s, const std::string& what) {
    violations_.add(kUnexpected, std::string(kKindNames[kind]) + " " + what + ": " + code_name(s.error_code()) +
                                     ": " + s.error_message().substr(0, 300));
  }

  void list() {
    pb::ListVmsResponse resp;
    auto s = timed(kList, [&](grpc::ClientContext& ctx) { return stub_->ListVms(&ctx, pb::ListVmsRequest(), &resp); });
    if (!s.ok()) return unexpected(kList, s, "");
    std::set<std::string> listed;
    for (const auto& vm : resp.vms()) listed.insert(vm.vm_id());
    for (const auto& own : result.live)
      if (!listed.count(own.id)) violations_.add(kLost, "ListVms lacks live vm " + own.id);
    check_listing(resp, violations_, "client");
  }

  void get() {
    const OwnVm& own = result.live[std::uniform_int_distribution<size_t>(0, result.live.size() - 1)(rng_)];
    pb::GetVmRequest req;
    req.set_vm_id(own.id);
    pb::VmInfo info;
    auto s = timed(kGet, [&](grpc::ClientContext& ctx) { return stub_->GetVm(&ctx, req, &info); });
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) return violations_.add(kLost, "GetVm " + own.id + ": " + s.error_message());
    if (!s.ok()) return unexpected(kGet, s, own.id);
    std::string gpu = info.gpus_size() == 1 ? info.gpus(0).request().address() : "";
    // CreateVm answers with the VM creating; created once its GPU is bound.
    const bool settled = info.state() == pb::VM_STATE_CREATING || info.state() == pb::VM_STATE_CREATED;
    if (info.vm_id() != own.id || gpu != own.gpu || !settled)
      violations_.add(kLost, "GetVm " + own.id + " answers vm " + info.vm_id() + " state " +
                                 pb::VmState_Name(info.state()) + " gpu '" + gpu + "', created with '" + own.gpu + "'");
  }

  void create() {
    pb::CreateVmRequest req = valid_create_request();
    std::string id = model::VmId::random().text();
    req.set_vm_id(id);
    std::string gpu;
    if (std::uniform_int_distribution<int>(0, 1)(rng_) == 1) {
      gpu = hgx_gpus()[std::uniform_int_distribution<size_t>(0, hgx_gpus().size() - 1)(rng_)];
      req.mutable_config()->add_gpus()->set_address(gpu);
      ++result.gpu_creates;
    }
    pb::CreateVmResponse resp;
    auto s = timed(kCreate, [&](grpc::ClientContext& ctx) { return stub_->CreateVm(&ctx, req, &resp); });
    if (s.ok()) {
      if (resp.vm_id() != id) violations_.add(kLost, "CreateVm " + id + " answered id " + resp.vm_id());
      result.live.push_back({id, gpu});
      if (!gpu.empty()) ++result.gpu_creates_ok;
      return;
    }
    // Losing a GPU race: FAILED_PRECONDITION naming the GPU and the VM that holds it.
    const std::string& m = s.error_message();
    const std::string held_by = gpu + " is assigned to vm ";
    if (auto at = m.find(held_by); !gpu.empty() && s.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
                                   at != std::string::npos) {
      std::string holder = m.substr(at + held_by.size(), 36);
      if (!model::VmId::parse(holder) || holder == id)
        violations_.add(kUnexpected, "CreateVm " + id + ": the refusal names no other VM: " + m);
      ++result.gpu_creates_busy;
      return;
    }
    unexpected(kCreate, s, id + (gpu.empty() ? "" : " gpu " + gpu));
  }

  void remove() {
    size_t i = std::uniform_int_distribution<size_t>(0, result.live.size() - 1)(rng_);
    OwnVm own = result.live[i];
    pb::DeleteVmRequest req;
    req.set_vm_id(own.id);
    pb::DeleteVmResponse resp;
    auto s = timed(kDelete, [&](grpc::ClientContext& ctx) { return stub_->DeleteVm(&ctx, req, &resp); });
    if (!s.ok()) return unexpected(kDelete, s, own.id);
    result.live.erase(result.live.begin() + static_cast<long>(i));
    result.deleted.push_back(own.id);
  }

  std::unique_ptr<pb::VMService::Stub> stub_;
  std::mt19937_64 rng_;
  Violations& violations_;
};

struct Percentiles {
  size_t n = 0;
  double p50 = 0, p99 = 0, max = 0;  // milliseconds
};

Percentiles percentiles(std::vector<uint32_t> us) {
  Percentiles p;
  p.n = us.size();
  if (us.empty()) return p;
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<size_t>(q * static_cast<double>(us.size())))] / 1000.0; };
  p.p50 = at(0.50);
  p.p99 = at(0.99);
  p.max = us.back() / 1000.0;
  return p;
}

int run() {
  const long seconds = env_long("FEOS_LOAD_SECONDS", 60);
  const long clients = env_long("FEOS_LOAD_CLIENTS", 200);
  const long channels = std::min(env_long("FEOS_LOAD_CHANNELS", 8), clients);
  const long unbind_delay_ms = env_long("FEOS_LOAD_UNBIND_DELAY_MS", 2);
  const uint64_t seed = static_cast<uint64_t>(env_long("FEOS_LOAD_SEED", static_cast<long>(std::random_device{}() & 0x7fffffff)));

  auto started = ApiHarness::start();
  if (!started) {
    std::printf("api load: harness: %s\n", started.error().to_string().c_str());
    return 2;
  }
  ApiHarness& api = **started;
  test::FakeKernel& kernel = api.kernel();
  const test::BindingSnapshot before = kernel.snapshot();
  kernel.inject({.op = test::Op::kUnbind, .fault = test::Fault::delay(std::chrono::milliseconds(unbind_delay_ms))});
  std::printf("api load: %ld clients on %ld connections, %ld s, unbind delay %ld ms, seed %llu, host hgx-h100 (%zu GPUs)\n",
              clients, channels, seconds, unbind_delay_ms, static_cast<unsigned long long>(seed), hgx_gpus().size());
  std::fflush(stdout);

  Violations violations;
  std::vector<std::shared_ptr<grpc::Channel>> pool;
  for (long i = 0; i < channels; ++i) pool.push_back(api.channel(/*own_connection=*/true));
  std::vector<std::unique_ptr<Client>> workers;
  for (long i = 0; i < clients; ++i)
    workers.push_back(std::make_unique<Client>(pool[static_cast<size_t>(i % channels)], seed * 1000003 + static_cast<uint64_t>(i), violations));

  // The sampler: ledger and ListVms, continuously, from its own connection.
  std::atomic<bool> stop{false};
  uint64_t ledger_samples = 0, list_samples = 0;
  std::thread sampler([&] {
    auto stub = pb::VMService::NewStub(api.channel(/*own_connection=*/true));
    while (!stop.load()) {
      auto rows = api.db().ledger().list(std::nullopt);
      if (rows) {
        check_ledger(*rows, violations, "sample");
        ++ledger_samples;
      } else {
        violations.add(kUnexpected, "ledger read: " + rows.error().to_string());
      }
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + kRpcDeadline);
      pb::ListVmsResponse list;
      grpc::Status s = stub->ListVms(&ctx, pb::ListVmsRequest(), &list);
      if (s.ok()) {
        check_listing(list, violations, "sample");
        ++list_samples;
      } else {
        violations.add(kUnexpected, "sampler ListVms: " + code_name(s.error_code()) + ": " + s.error_message());
      }
      std::this_thread::sleep_for(50ms);
    }
  });

  auto t0 = Clock::now();
  auto until = t0 + std::chrono::seconds(seconds);
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w, until] { w->run(until); });
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  stop = true;
  sampler.join();

  // --- quiescent end ---
  std::map<std::string, std::string> expected;  // live vm -> gpu
  std::set<std::string> deleted;
  ClientResult total;
  for (auto& w : workers) {
    ClientResult& r = w->result;
    for (const auto& own : r.live) expected[own.id] = own.gpu;
    deleted.insert(r.deleted.begin(), r.deleted.end());
    for (int k = 0; k < kKinds; ++k) total.micros[k].insert(total.micros[k].end(), r.micros[k].begin(), r.micros[k].end());
    for (const auto& [key, n] : r.codes) total.codes[key] += n;
    total.gpu_creates += r.gpu_creates;
    total.gpu_creates_ok += r.gpu_creates_ok;
    total.gpu_creates_busy += r.gpu_creates_busy;
  }

  auto stub = api.vm_stub();
  pb::ListVmsResponse final_list;
  // The last creates' background parts end first (at most 30 s).
  for (int attempt = 0; attempt < 3000; ++attempt) {
    final_list.Clear();
    grpc::ClientContext ctx;
    grpc::Status s = stub->ListVms(&ctx, pb::ListVmsRequest(), &final_list);
    if (!s.ok()) {
      violations.add(kUnexpected, "final ListVms: " + s.error_message());
      break;
    }
    bool creating = false;
    for (const auto& vm : final_list.vms()) creating = creating || vm.state() == pb::VM_STATE_CREATING;
    if (!creating) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  check_listing(final_list, violations, "end");
  std::map<std::string, const pb::VmInfo*> listed;
  for (const auto& vm : final_list.vms()) listed[vm.vm_id()] = &vm;
  for (const auto& [id, gpu] : expected) {
    auto it = listed.find(id);
    if (it == listed.end()) {
      violations.add(kLost, "acknowledged create " + id + " missing from the final ListVms");
      continue;
    }
    const pb::VmInfo& vm = *it->second;
    std::string got = vm.gpus_size() == 1 ? vm.gpus(0).request().address() : "";
    if (got != gpu || vm.config().gpus_size() != (gpu.empty() ? 0 : 1) || vm.state() != pb::VM_STATE_CREATED)
      violations.add(kLost, "vm " + id + " lists gpu '" + got + "' state " + pb::VmState_Name(vm.state()) +
                                ", created with '" + gpu + "'");
  }
  for (const auto& [id, vm] : listed) {
    if (deleted.count(id)) violations.add(kLost, "deleted vm " + id + " is still listed");
    else if (!expected.count(id)) violations.add(kLost, "unknown vm " + id + " is listed");
  }
  std::set<std::string> stored;
  if (auto vms = api.db().vms().list()) {
    for (const auto& vm : *vms) stored.insert(vm.id);
  } else {
    violations.add(kUnexpected, "final store read: " + vms.error().to_string());
  }
  std::set<std::string> listed_ids;
  for (const auto& [id, vm] : listed) listed_ids.insert(id);
  if (stored != listed_ids)
    violations.add(kLost, "store holds " + std::to_string(stored.size()) + " VMs, ListVms " + std::to_string(listed_ids.size()));

  // Ledger == the live VMs' GPU functions; kernel: vfio-pci iff in the ledger, else as before.
  std::map<std::string, std::string> want_rows;  // bdf -> vm
  for (const auto& [id, vm] : listed)
    for (const auto& bdf : functions_of(*vm)) want_rows[bdf] = id;
  std::map<std::string, std::string> got_rows;
  auto rows = api.db().ledger().list(std::nullopt);
  if (!rows) {
    violations.add(kUnexpected, "final ledger read: " + rows.error().to_string());
  } else {
    check_ledger(*rows, violations, "end");
    for (const auto& row : *rows) {
      got_rows[row.bdf.to_string()] = row.vm_id;
      if (row.step != store::AssignmentStep::kBound)
        violations.add(kLost, "ledger row " + row.bdf.to_string() + " of vm " + row.vm_id + " at step " + std::string(store::step_name(row.step)));
    }
  }
  if (got_rows != want_rows)
    violations.add(kDouble, "ledger holds " + std::to_string(got_rows.size()) + " functions, the live VMs list " +
                                std::to_string(want_rows.size()));
  size_t vfio_bound = 0;
  for (const auto& [bdf, binding] : kernel.snapshot()) {
    bool held = got_rows.count(bdf) > 0;
    if (held) {
      ++vfio_bound;
      if (binding.driver != "vfio-pci")
        violations.add(kDouble, bdf + " is in the ledger but bound to '" + binding.driver + "'");
    } else if (!(binding == before.at(bdf))) {
      violations.add(kDouble, bdf + " is not in the ledger but bound to '" + binding.driver + "' (override '" +
                                  binding.override_driver + "'), was '" + before.at(bdf).driver + "'");
    }
  }
  size_t final_vms = listed.size(), final_gpu_vms = 0;
  for (const auto& [id, vm] : listed) final_gpu_vms += vm->gpus_size() > 0;

  // Clean up through the API: the host must end exactly as it started.
  kernel.clear_faults();
  for (const auto& [id, vm] : listed) {
    grpc::ClientContext ctx;
    pb::DeleteVmRequest req;
    req.set_vm_id(id);
    pb::DeleteVmResponse resp;
    grpc::Status s = stub->DeleteVm(&ctx, req, &resp);
    if (!s.ok()) violations.add(kUnexpected, "cleanup DeleteVm " + id + ": " + s.error_message());
  }
  auto rows_after = api.db().ledger().list(std::nullopt);
  bool restored = kernel.snapshot() == before && kernel.vfio_groups().empty() && rows_after && rows_after->empty();
  if (!restored) violations.add(kDouble, "host not restored after deleting every VM");

  // --- report ---
  uint64_t rpcs = 0;
  for (int k = 0; k < kKinds; ++k) rpcs += total.micros[k].size();
  std::printf("rpcs: %llu in %.1f s (%.0f/s):", static_cast<unsigned long long>(rpcs), elapsed, static_cast<double>(rpcs) / elapsed);
  for (int k = 0; k < kKinds; ++k) std::printf(" %s=%zu", kKindNames[k], total.micros[k].size());
  std::printf("\ngpu creates: %llu, ok %llu, lost the race (FAILED_PRECONDITION naming the holder) %llu\n",
              static_cast<unsigned long long>(total.gpu_creates), static_cast<unsigned long long>(total.gpu_creates_ok),
              static_cast<unsigned long long>(total.gpu_creates_busy));
  std::printf("codes:");
  for (const auto& [key, n] : total.codes)
    std::printf(" %s/%s=%llu", kKindNames[key.first], key.second.c_str(), static_cast<unsigned long long>(n));
  std::printf("\nlatency (ms)        n      p50      p99      max\n");
  for (int k = 0; k < kKinds; ++k) {
    Percentiles p = percentiles(total.micros[k]);
    std::printf("  %-10s %8zu %8.2f %8.2f %8.2f\n", kKindNames[k], p.n, p.p50, p.p99, p.max);
  }
  std::printf("sampler: %llu ledger samples, %llu ListVms samples\n", static_cast<unsigned long long>(ledger_samples),
              static_cast<unsigned long long>(list_samples));
  std::printf("end: %zu VMs (%zu with a GPU), %zu functions on vfio-pci, all in the ledger; host restored after cleanup: %s\n",
              final_vms, final_gpu_vms, vfio_bound, restored ? "yes" : "NO");
  std::printf("double assignments: %llu\nlost records: %llu\nunexpected codes: %llu\n",
              static_cast<unsigned long long>(violations.count(kDouble)),
              static_cast<unsigned long long>(violations.count(kLost)),
              static_cast<unsigned long long>(violations.count(kUnexpected)));
  violations.print();
  if (rpcs == 0) {
    std::printf("api load: no RPC completed\n");
    return 1;
  }
  return violations.total() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace feos::api::testing

int main() { return feos::api::testing::run(); }
