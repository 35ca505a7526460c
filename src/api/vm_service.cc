#include "api/vm_service.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "api/convert.h"
#include "api/status.h"
#include "common/blocking_queue.h"
#include "core/vm_manager.h"
#include "feos/vm/vmm/api/v1/vm.grpc.pb.h"
#include "model/vm_id.h"

namespace feos::api {
namespace {

using grpc::ServerContext;

// How often streaming handlers look for client cancellation while idle.
constexpr std::chrono::milliseconds kPollInterval{200};

class VmService final : public pb::VMService::Service {
 public:
  VmService(core::VmManager& manager, std::string build_version, StreamLimits limits)
      : manager_(manager), build_version_(std::move(build_version)), limits_(limits) {}

  grpc::Status CreateVm(ServerContext*, const pb::CreateVmRequest* req, pb::CreateVmResponse* resp) override {
    auto spec = spec_from_proto(req->config());
    if (!spec) return to_grpc(spec.error());
    std::optional<model::VmId> id;
    if (req->has_vm_id()) {
      auto parsed = model::VmId::parse(req->vm_id());
      if (!parsed) return to_grpc(parsed.error());
      id = *parsed;
    }
    if (req->dry_run()) {
      auto plan = manager_.plan_create(std::move(*spec), id);
      if (!plan) return to_grpc(plan.error());
      resp->set_vm_id(plan->vm_id);
      *resp->mutable_plan() = plan_to_proto(*plan);
      return grpc::Status::OK;
    }
    auto created = manager_.create(std::move(*spec), id);
    if (!created) return to_grpc(created.error());
    resp->set_vm_id(created->text());
    return grpc::Status::OK;
  }

  grpc::Status StartVm(ServerContext*, const pb::StartVmRequest* req, pb::StartVmResponse*) override {
    FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId id, model::VmId::parse(req->vm_id()));
    return to_grpc(manager_.start(id));
  }

  grpc::Status GetVm(ServerContext*, const pb::GetVmRequest* req, pb::VmInfo* resp) override {
    FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId id, model::VmId::parse(req->vm_id()));
    auto record = manager_.get(id);
    if (!record) return to_grpc(record.error());
    *resp = record_to_proto(*record);
    return grpc::Status::OK;
  }

  grpc::Status ListVms(ServerContext*, const pb::ListVmsRequest*, pb::ListVmsResponse* resp) override {
    for (const auto& record : manager_.list()) *resp->add_vms() = record_to_proto(record);
    return grpc::Status::OK;
  }

  grpc::Status DeleteVm(ServerContext*, const pb::DeleteVmRequest* req, pb::DeleteVmResponse*) override {
    FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId id, model::VmId::parse(req->vm_id()));
    return to_grpc(manager_.remove(id));
  }

  grpc::Status ShutdownVm(ServerContext*, const pb::ShutdownVmRequest* req, pb::ShutdownVmResponse*) override {
    FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId id, model::VmId::parse(req->vm_id()));
    std::optional<std::chrono::seconds> grace;
    if (req->has_grace_seconds()) grace = std::chrono::seconds(req->grace_seconds());
    return to_grpc(manager_.shutdown(id, grace));
  }

  grpc::Status PauseVm(ServerContext*, const pb::PauseVmRequest* req, pb::PauseVmResponse*) override {
    FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId id, model::VmId::parse(req->vm_id()));
    return to_grpc(manager_.pause(id));
  }

  grpc::Status ResumeVm(ServerContext*, const pb::ResumeVmRequest* req, pb::ResumeVmResponse*) override {
    FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId id, model::VmId::parse(req->vm_id()));
    return to_grpc(manager_.resume(id));
  }

  grpc::Status PingVm(ServerContext*, const pb::PingVmRequest* req, pb::PingVmResponse* resp) override {
    FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId id, model::VmId::parse(req->vm_id()));
    auto info = manager_.ping(id);
    if (!info) return to_grpc(info.error());
    resp->set_build_version(build_version_);
    resp->set_version(info->version);
    resp->set_pid(info->pid);
    for (const auto& f : info->features) resp->add_features(f);
    return grpc::Status::OK;
  }

  grpc::Status AttachDisk(ServerContext*, const pb::AttachDiskRequest* req, pb::AttachDiskResponse* resp) override {
    FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId id, model::VmId::parse(req->vm_id()));
    FEOS_GRPC_ASSIGN_OR_RETURN(model::DiskSpec disk, disk_from_proto(req->has_disk(), req->disk()));
    FEOS_GRPC_ASSIGN_OR_RETURN(std::string device_id, manager_.attach_disk(id, std::move(disk)));
    resp->set_device_id(device_id);
    return grpc::Status::OK;
  }
  grpc::Status DetachDisk(ServerContext*, const pb::DetachDiskRequest* req, pb::DetachDiskResponse*) override {
    FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId id, model::VmId::parse(req->vm_id()));
    return to_grpc(manager_.detach_disk(id, req->device_id()));
  }
  grpc::Status AttachNic(ServerContext*, const pb::AttachNicRequest* req, pb::AttachNicResponse* resp) override {
    FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId id, model::VmId::parse(req->vm_id()));
    FEOS_GRPC_ASSIGN_OR_RETURN(model::NetSpec nic, net_from_proto(req->has_nic(), req->nic()));
    FEOS_GRPC_ASSIGN_OR_RETURN(std::string device_id, manager_.attach_nic(id, std::move(nic)));
    resp->set_device_id(device_id);
    return grpc::Status::OK;
  }
  grpc::Status DetachNic(ServerContext*, const pb::DetachNicRequest* req, pb::DetachNicResponse*) override {
    FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId id, model::VmId::parse(req->vm_id()));
    return to_grpc(manager_.detach_nic(id, req->device_id()));
  }

  grpc::Status StreamVmEvents(ServerContext* ctx, const pb::StreamVmEventsRequest* req,
                              grpc::ServerWriter<pb::VmEvent>* writer) override {
    // Headers first, as FeOS does: an error then ends the stream, not the call (a tonic client
    // tells the two apart).
    writer->SendInitialMetadata();
    StreamSlot slot(*this);
    if (!slot) return to_grpc(slot.refusal());
    std::optional<model::VmId> vm_id;  // as stored
    if (req->has_vm_id()) {
      FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId requested, model::VmId::parse(req->vm_id()));
      FEOS_GRPC_ASSIGN_OR_RETURN(vm_id, manager_.resolve_id(requested));
    }
    std::string component = req->with_component_id();
    auto matches = [vm_id, component](const model::VmEvent& e) {
      return (!vm_id || e.vm_id == vm_id->text()) && (component.empty() || e.component_id == component);
    };
    // Subscribe before reading history so no event falls between the two.
    BlockingQueue<model::VmEvent> live;
    int token = manager_.bus().subscribe([&](const model::VmEvent& e) {
      if (matches(e)) live.push(e);
    });
    struct Unsubscribe {
      core::EventBus& bus;
      int token;
      ~Unsubscribe() { bus.unsubscribe(token); }
    } unsubscribe{manager_.bus(), token};

    int64_t last_id = 0;
    std::vector<model::VmEvent> first;
    if (req->streaming_mode_case() == pb::StreamVmEventsRequest::STREAMING_MODE_NOT_SET) {
      // No history asked for: the current state of each selected VM, then live events.
      if (vm_id) {
        auto record = manager_.get(*vm_id);
        if (!record) return to_grpc(record.error());
        first.push_back(snapshot(*record));
      } else {
        for (const auto& record : manager_.list()) first.push_back(snapshot(record));
      }
    } else {
      store::EventFilter filter;
      if (vm_id) filter.vm_id = vm_id->text();
      filter.component_id = component;
      switch (req->streaming_mode_case()) {
        case pb::StreamVmEventsRequest::kTailEvents:
          if (req->tail_events() < 0) return to_grpc(Error{Code::kInvalidArgument, "tail_events: must not be negative"});
          filter.last_n = req->tail_events();
          break;
        case pb::StreamVmEventsRequest::kTailId: {
          auto parsed = parse_event_id(req->tail_id());
          if (!parsed) return to_grpc(parsed.error());
          filter.after_id = *parsed;
          break;
        }
        case pb::StreamVmEventsRequest::kTailSeconds:
          if (req->tail_seconds() < 0) return to_grpc(Error{Code::kInvalidArgument, "tail_seconds: must not be negative"});
          filter.since_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count() -
                                 int64_t{req->tail_seconds()} * 1000;
          break;
        default: break;
      }
      auto history = manager_.history(filter);
      if (!history) return to_grpc(history.error());
      first = std::move(*history);
      for (const auto& e : first) last_id = std::max(last_id, e.id);
    }
    if (vm_id && first.empty()) {
      if (auto record = manager_.get(*vm_id); !record) return to_grpc(record.error());
    }
    for (const auto& e : first)
      if (!writer->Write(event_to_proto(e))) return grpc::Status::OK;

    while (!ctx->IsCancelled()) {
      auto [events, closed] = live.take_for(kPollInterval);
      for (const auto& e : events) {
        if (e.id != 0 && e.id <= last_id) continue;  // already sent as history
        if (!writer->Write(event_to_proto(e))) return grpc::Status::OK;
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status StreamVmConsole(
      ServerContext* ctx,
      grpc::ServerReaderWriter<pb::StreamVmConsoleResponse, pb::StreamVmConsoleRequest>* stream) override {
    // The response headers go out first, as FeOS's do: every error then ends the stream, which a
    // tonic client reads from the stream; a "trailers-only" error fails its call instead.
    stream->SendInitialMetadata();
    StreamSlot slot(*this);
    if (!slot) return to_grpc(slot.refusal());
    pb::StreamVmConsoleRequest first;
    if (!read_attach(ctx, stream, first))
      return to_grpc(Error{Code::kInvalidArgument, ctx->IsCancelled()
                                                       ? "console: no attach message within " +
                                                             std::to_string(limits_.attach_timeout.count()) + " ms"
                                                       : "console: the stream ended before its attach message"});
    if (first.payload_case() != pb::StreamVmConsoleRequest::kAttach)
      return to_grpc(Error{Code::kInvalidArgument, "console: the first message must be attach{vm_id}"});
    FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId vm_id, model::VmId::parse(first.attach().vm_id()));
    auto console = manager_.console(vm_id);
    if (!console) return to_grpc(console.error());

    BlockingQueue<std::string> output;
    int token = (*console)->subscribe([&](std::string_view bytes) { output.push(std::string(bytes)); },
                                      [&] { output.close(); });
    // Client input goes to the guest from its own thread; output is written from this one.
    std::thread input([&] {
      pb::StreamVmConsoleRequest req;
      while (stream->Read(&req)) {
        if (req.payload_case() == pb::StreamVmConsoleRequest::kData)
          (void)(*console)->write(req.data().input());
      }
    });
    bool client_gone = false;
    while (!client_gone && !ctx->IsCancelled()) {
      auto [chunks, closed] = output.take_for(kPollInterval);
      for (auto& chunk : chunks) {
        pb::StreamVmConsoleResponse resp;
        resp.set_output(std::move(chunk));
        if (!stream->Write(resp)) {
          client_gone = true;
          break;
        }
      }
      if (closed) break;
    }
    (*console)->unsubscribe(token);
    ctx->TryCancel();  // unblocks the input thread's Read
    input.join();
    return grpc::Status::OK;
  }

 private:
  static model::VmEvent snapshot(const model::VmRecord& r) {
    return model::VmEvent{0, r.id, "vm", r.state, r.state_reason, r.updated_unix_ms};
  }

  static Result<int64_t> parse_event_id(const std::string& text) {
    int64_t value = 0;
    if (text.empty() || text.size() > 18) return fail(Code::kInvalidArgument, "tail_id " + quote_for_message(text) + ": not an event id");
    for (char ch : text) {
      if (ch < '0' || ch > '9') return fail(Code::kInvalidArgument, "tail_id " + quote_for_message(text) + ": not an event id");
      value = value * 10 + (ch - '0');
    }
    return value;
  }

  // One of limits_.max_streams places, held for a stream's lifetime.
  class StreamSlot {
   public:
    explicit StreamSlot(VmService& service) : service_(service) {
      taken_ = service_.open_streams_.fetch_add(1) < service_.limits_.max_streams;
    }
    ~StreamSlot() { service_.open_streams_.fetch_sub(1); }
    StreamSlot(const StreamSlot&) = delete;
    StreamSlot& operator=(const StreamSlot&) = delete;
    explicit operator bool() const { return taken_; }
    Error refusal() const {
      return Error{Code::kResourceExhausted, "feosd serves at most " + std::to_string(service_.limits_.max_streams) +
                                                 " event and console streams at once; close one and retry"};
    }

   private:
    VmService& service_;
    bool taken_ = false;
  };

  // Reads the console's first message, waiting at most limits_.attach_timeout: a client that never
  // sends one would hold a server thread forever. False when none came (the call is then
  // cancelled on timeout, so the blocked Read returns).
  bool read_attach(ServerContext* ctx,
                   grpc::ServerReaderWriter<pb::StreamVmConsoleResponse, pb::StreamVmConsoleRequest>* stream,
                   pb::StreamVmConsoleRequest& first) {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    std::thread watchdog([&] {
      std::unique_lock lock(mutex);
      if (!cv.wait_for(lock, limits_.attach_timeout, [&] { return done; })) ctx->TryCancel();
    });
    bool read = stream->Read(&first);
    {
      std::lock_guard lock(mutex);
      done = true;
    }
    cv.notify_one();
    watchdog.join();
    // A message that arrived just as the watchdog fired: the call is cancelled all the same.
    return read && !ctx->IsCancelled();
  }

  core::VmManager& manager_;
  std::string build_version_;
  const StreamLimits limits_;
  std::atomic<int> open_streams_{0};
};

}  // namespace

std::unique_ptr<grpc::Service> make_vm_service(core::VmManager& manager, std::string build_version,
                                               StreamLimits limits) {
  return std::make_unique<VmService>(manager, std::move(build_version), limits);
}

}  // namespace feos::api
