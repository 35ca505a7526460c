// StreamVmConsole's errors as FeOS's clients see them (issue 16): the response headers come first,
// then the error status in the trailers, so a tonic client gets its stream and the stream fails; a
// "trailers-only" answer (one HEADERS frame that ends the stream) fails a tonic client's call
// instead. gRPC's client libraries hide that difference, so this test speaks HTTP/2 itself over
// the harness's unix socket and looks at the frames. The status's words are checked through the
// generated stub: what FeOS's clients look for ("Invalid VM state", the state as FeOS names it).
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "api_harness.h"
#include "core/wait_created.h"

namespace feos::api::testing {
namespace {

using namespace std::chrono_literals;

constexpr uint8_t kData = 0, kHeaders = 1, kRstStream = 3, kSettings = 4, kPing = 6, kGoaway = 7, kWindowUpdate = 8;
constexpr uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4;

struct Frame {
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t stream = 0;
  std::string payload;
};

std::string frame_bytes(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string out;
  const uint32_t n = static_cast<uint32_t>(payload.size());
  out += static_cast<char>(n >> 16);
  out += static_cast<char>(n >> 8);
  out += static_cast<char>(n);
  out += static_cast<char>(type);
  out += static_cast<char>(flags);
  for (int shift : {24, 16, 8, 0}) out += static_cast<char>((stream >> shift) & 0xff);
  return out + payload;
}

// HPACK "literal header field without indexing, new name", no Huffman coding (RFC 7541 6.2.2).
std::string literal_header(const std::string& name, const std::string& value) {
  std::string out(1, '\0');
  out += static_cast<char>(name.size());
  out += name;
  out += static_cast<char>(value.size());
  return out + value;
}

// One gRPC call of StreamVmConsole over a raw HTTP/2 connection: the attach message, the request
// stream left open (as a console client keeps it). Returns the frames of the call's stream, up to
// the one that ends it.
class RawConsoleCall {
 public:
  explicit RawConsoleCall(const std::string& socket_path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
    connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConsoleCall() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }

  std::vector<Frame> attach(const std::string& vm_id) {
    pb::StreamVmConsoleRequest request;
    request.mutable_attach()->set_vm_id(vm_id);
    return call("StreamVmConsole", request.SerializeAsString());
  }
  std::vector<Frame> events(const std::string& vm_id) {
    pb::StreamVmEventsRequest request;
    request.set_vm_id(vm_id);
    return call("StreamVmEvents", request.SerializeAsString());
  }

 private:
  // One call of VMService's `method` with one request message: the frames of its answer.
  std::vector<Frame> call(const std::string& method, const std::string& message) {
    std::string grpc_message(1, '\0');  // not compressed
    for (int shift : {24, 16, 8, 0}) grpc_message += static_cast<char>((message.size() >> shift) & 0xff);
    grpc_message += message;
    std::string headers = literal_header(":method", "POST") + literal_header(":scheme", "http") +
                          literal_header(":path", "/feos.vm.vmm.api.v1.VMService/" + method) +
                          literal_header(":authority", "localhost") +
                          literal_header("content-type", "application/grpc") + literal_header("te", "trailers");
    send(std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + frame_bytes(kSettings, 0, 0, "") +
         frame_bytes(kHeaders, kEndHeaders, 1, headers) + frame_bytes(kData, 0, 1, grpc_message));

    std::vector<Frame> frames;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto frame = read_frame(deadline);
      if (!frame) break;
      if (frame->type == kSettings && !(frame->flags & kAck)) send(frame_bytes(kSettings, kAck, 0, ""));
      if (frame->type == kPing && !(frame->flags & kAck)) send(frame_bytes(kPing, kAck, 0, frame->payload));
      if (frame->type == kGoaway) break;
      if (frame->stream != 1 || frame->type == kWindowUpdate) continue;  // flow control is no answer
      frames.push_back(*frame);
      if ((frame->flags & kEndStream) || frame->type == kRstStream) break;
    }
    return frames;
  }

  void send(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }
  bool read_exactly(std::string& out, size_t n, std::chrono::steady_clock::time_point deadline) {
    out.clear();
    while (out.size() < n) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char buffer[4096];
      ssize_t got = ::read(fd_, buffer, std::min(sizeof buffer, n - out.size()));
      if (got <= 0) return false;
      out.append(buffer, static_cast<size_t>(got));
    }
    return true;
  }
  std::optional<Frame> read_frame(std::chrono::steady_clock::time_point deadline) {
    std::string header;
    if (!read_exactly(header, 9, deadline)) return std::nullopt;
    auto byte = [&](int i) { return static_cast<uint32_t>(static_cast<uint8_t>(header[i])); };
    Frame frame;
    const uint32_t length = byte(0) << 16 | byte(1) << 8 | byte(2);
    frame.type = static_cast<uint8_t>(byte(3));
    frame.flags = static_cast<uint8_t>(byte(4));
    frame.stream = (byte(5) << 24 | byte(6) << 16 | byte(7) << 8 | byte(8)) & 0x7fffffff;
    if (!read_exactly(frame.payload, length, deadline)) return std::nullopt;
    return frame;
  }

  int fd_ = -1;
  bool connected_ = false;
};

// "HEADERS", "HEADERS+END_STREAM", "DATA", ...
std::vector<std::string> describe(const std::vector<Frame>& frames) {
  std::vector<std::string> out;
  for (const auto& f : frames) {
    std::string name = f.type == kHeaders ? "HEADERS" : f.type == kData ? "DATA" : f.type == kRstStream ? "RST_STREAM"
                                                                                                         : "type " + std::to_string(f.type);
    if (f.type != kRstStream && (f.flags & kEndStream)) name += "+END_STREAM";
    out.push_back(name);
  }
  return out;
}

class ConsoleStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto api = ApiHarness::start();
    ASSERT_TRUE(api) << api.error().to_string();
    api_ = std::move(*api);
    vms_ = api_->vm_stub();
  }
  std::string socket_path() const { return api_->target().substr(std::string("unix:").size()); }
  // A VM the fake guest ran and powered off: STOPPED.
  std::string stopped_vm() {
    grpc::ClientContext create_ctx;
    pb::CreateVmResponse created;
    EXPECT_TRUE(vms_->CreateVm(&create_ctx, valid_create_request(), &created).ok());
    EXPECT_EQ(core::wait_created(api_->manager(), *model::VmId::parse(created.vm_id())), model::VmState::kCreated);
    grpc::ClientContext start_ctx;
    pb::StartVmRequest start;
    start.set_vm_id(created.vm_id());
    pb::StartVmResponse started;
    EXPECT_TRUE(vms_->StartVm(&start_ctx, start, &started).ok());
    api_->hypervisor().exit(created.vm_id(), true, "guest powered off");
    EXPECT_EQ(api_->manager().get(*model::VmId::parse(created.vm_id()))->state, model::VmState::kStopped);
    return created.vm_id();
  }
  // The console through the generated stub: its final status.
  grpc::Status console_status(const std::string& vm_id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    auto stream = vms_->StreamVmConsole(&ctx);
    pb::StreamVmConsoleRequest attach;
    attach.mutable_attach()->set_vm_id(vm_id);
    stream->Write(attach);
    pb::StreamVmConsoleResponse response;
    while (stream->Read(&response)) {
    }
    return stream->Finish();
  }

  std::unique_ptr<ApiHarness> api_;
  std::unique_ptr<pb::VMService::Stub> vms_;
};

TEST_F(ConsoleStreamTest, AStoppedVmsConsoleSendsHeadersThenTheStatus) {
  const std::string id = stopped_vm();
  RawConsoleCall call(socket_path());
  ASSERT_TRUE(call.connected());
  // Headers without END_STREAM, then trailers that end it; never one HEADERS+END_STREAM alone.
  EXPECT_EQ(describe(call.attach(id)), (std::vector<std::string>{"HEADERS", "HEADERS+END_STREAM"}));

  grpc::Status status = console_status(id);
  EXPECT_EQ(status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(), "vm " + id +
                                        ": Invalid VM state for operation: Cannot open console for VM in Stopped "
                                        "state. Must be in Running or Paused.");
}

// Every error of the console comes on the stream, as FeOS's do: an unknown VM, a bad attach.
TEST_F(ConsoleStreamTest, OtherConsoleErrorsComeAfterTheHeadersToo) {
  for (const std::string id : {"123e4567-e89b-12d3-a456-426614174000", "../x"}) {
    RawConsoleCall call(socket_path());
    ASSERT_TRUE(call.connected());
    EXPECT_EQ(describe(call.attach(id)), (std::vector<std::string>{"HEADERS", "HEADERS+END_STREAM"})) << id;
  }
  EXPECT_EQ(console_status("123e4567-e89b-12d3-a456-426614174000").error_code(), grpc::NOT_FOUND);
}

// So do the event stream's: an unknown VM, a malformed id.
TEST_F(ConsoleStreamTest, EventStreamErrorsComeAfterTheHeadersToo) {
  for (const std::string id : {"123e4567-e89b-12d3-a456-426614174000", "../x"}) {
    RawConsoleCall call(socket_path());
    ASSERT_TRUE(call.connected());
    EXPECT_EQ(describe(call.events(id)), (std::vector<std::string>{"HEADERS", "HEADERS+END_STREAM"})) << id;
  }
}

}  // namespace
}  // namespace feos::api::testing
