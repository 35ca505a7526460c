#include "vmm/qemu/qmp_client.h"

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_qmp_server.h"
#include "support/temp_dir.h"

namespace feos::vmm::qemu {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;
using testing::FakeQmpServer;
using ::feos::test::TempDir;
using namespace std::chrono_literals;

// Answers the commands every test needs; `extra` handles the rest.
FakeQmpServer::OnRequest standard(FakeQmpServer::OnRequest extra = {}) {
  return [extra](FakeQmpServer& server, const json& request) {
    std::string command = request["execute"];
    if (command == "qmp_capabilities") return server.reply(request, json::object());
    if (command == "query-status")
      return server.reply(request, {{"status", "running"}, {"running", true}});
    if (extra) return extra(server, request);
    server.reply_error(request, "CommandNotFound", "The command " + command + " has not been found");
  };
}

QmpClient::Options fast() {
  QmpClient::Options options;
  options.connect_timeout = 2000ms;
  options.command_timeout = 2000ms;
  return options;
}

// Collects events from the reader thread.
struct EventLog {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<QmpEvent> events;
  QmpClient::EventHandler handler() {
    return [this](const QmpEvent& event) {
      std::lock_guard lock(mutex);
      events.push_back(event);
      cv.notify_all();
    };
  }
  bool wait_for(size_t count) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 2s, [&] { return events.size() >= count; });
  }
};

TEST(QmpClient, ConnectsNegotiatesAndExecutes) {
  TempDir dir;
  FakeQmpServer server(dir / "qmp.sock", standard());
  server.start();
  auto client = QmpClient::connect(dir / "qmp.sock", nullptr, fast());
  ASSERT_TRUE(client) << client.error().to_string();
  EXPECT_EQ((*client)->version(), "7.2.22");
  auto status = (*client)->execute("query-status");
  ASSERT_TRUE(status) << status.error().to_string();
  EXPECT_EQ((*status)["status"], "running");
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0]["execute"], "qmp_capabilities");
  EXPECT_FALSE(requests[0].contains("arguments"));
  EXPECT_EQ(requests[1]["execute"], "query-status");
  EXPECT_NE(requests[0]["id"], requests[1]["id"]);
}

TEST(QmpClient, SendsArguments) {
  TempDir dir;
  FakeQmpServer server(dir / "qmp.sock", standard([](FakeQmpServer& s, const json& request) {
    s.reply(request, request["arguments"]);  // echo
  }));
  server.start();
  auto client = QmpClient::connect(dir / "qmp.sock", nullptr, fast());
  ASSERT_TRUE(client) << client.error().to_string();
  json args = {{"device", "nic0"}, {"value", 3}};
  auto echoed = (*client)->execute("echo", args);
  ASSERT_TRUE(echoed) << echoed.error().to_string();
  EXPECT_EQ(*echoed, args);
}

TEST(QmpClient, ErrorRepliesBecomeErrors) {
  TempDir dir;
  FakeQmpServer server(dir / "qmp.sock", standard([](FakeQmpServer& s, const json& request) {
    if (request["execute"] == "device_del")
      return s.reply_error(request, "DeviceNotFound", "Device 'gpu0' not found");
    s.reply_error(request, "GenericError", "Guest is not running");
  }));
  server.start();
  auto client = QmpClient::connect(dir / "qmp.sock", nullptr, fast());
  ASSERT_TRUE(client) << client.error().to_string();
  auto missing = (*client)->execute("device_del", {{"id", "gpu0"}});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_EQ(missing.error().message, "qmp device_del: Device 'gpu0' not found (DeviceNotFound)");
  auto generic = (*client)->execute("cont");
  ASSERT_FALSE(generic);
  EXPECT_EQ(generic.error().code, Code::kInternal);
  EXPECT_EQ(generic.error().message, "qmp cont: Guest is not running (GenericError)");
}

TEST(QmpClient, UnknownCommandIsUnimplemented) {
  TempDir dir;
  FakeQmpServer server(dir / "qmp.sock", standard());
  server.start();
  auto client = QmpClient::connect(dir / "qmp.sock", nullptr, fast());
  ASSERT_TRUE(client);
  auto result = (*client)->execute("no-such-command");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::kUnimplemented);
}

TEST(QmpClient, DeliversEventsInOrderAroundReplies) {
  TempDir dir;
  FakeQmpServer server(dir / "qmp.sock", standard([](FakeQmpServer& s, const json& request) {
    s.event("STOP", nullptr);  // before the reply, as qemu does for "stop"
    s.reply(request, json::object());
    s.event("SHUTDOWN", {{"guest", true}, {"reason", "guest-shutdown"}});
  }));
  server.start();
  EventLog log;
  auto client = QmpClient::connect(dir / "qmp.sock", log.handler(), fast());
  ASSERT_TRUE(client) << client.error().to_string();
  ASSERT_TRUE((*client)->execute("stop"));
  ASSERT_TRUE(log.wait_for(2));
  std::lock_guard lock(log.mutex);
  EXPECT_EQ(log.events[0].name, "STOP");
  EXPECT_TRUE(log.events[0].data.is_object());
  EXPECT_TRUE(log.events[0].data.empty());
  EXPECT_EQ(log.events[1].name, "SHUTDOWN");
  EXPECT_EQ(log.events[1].data["reason"], "guest-shutdown");
}

TEST(QmpClient, MatchesOutOfOrderRepliesById) {
  TempDir dir;
  std::mutex m;
  json held;
  FakeQmpServer server(dir / "qmp.sock", standard([&](FakeQmpServer& s, const json& request) {
    std::lock_guard lock(m);
    if (request["execute"] == "first") {
      held = request;  // answered after "second"
      return;
    }
    s.reply(request, "second-result");
    s.reply(held, "first-result");
  }));
  server.start();
  auto client = QmpClient::connect(dir / "qmp.sock", nullptr, fast());
  ASSERT_TRUE(client);
  auto first = std::async(std::launch::async, [&] { return (*client)->execute("first"); });
  // Wait until the server holds "first" before sending "second".
  for (int i = 0; i < 200 && server.requests().size() < 2; ++i) std::this_thread::sleep_for(5ms);
  auto second = (*client)->execute("second");
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ(*second, "second-result");
  auto first_result = first.get();
  ASSERT_TRUE(first_result) << first_result.error().to_string();
  EXPECT_EQ(*first_result, "first-result");
}

TEST(QmpClient, CommandTimesOutAndClientStaysUsable) {
  TempDir dir;
  std::mutex m;
  json late;
  FakeQmpServer server(dir / "qmp.sock", standard([&](FakeQmpServer& s, const json& request) {
    std::lock_guard lock(m);
    if (request["execute"] == "hang") {
      late = request;
      return;
    }
    s.reply(late, "too late");  // ignored: its caller gave up
    s.reply(request, "fine");
  }));
  server.start();
  auto client = QmpClient::connect(dir / "qmp.sock", nullptr, fast());
  ASSERT_TRUE(client);
  auto start = std::chrono::steady_clock::now();
  auto hung = (*client)->execute("hang", nullptr, 150ms);
  auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(hung);
  EXPECT_EQ(hung.error().code, Code::kDeadlineExceeded);
  EXPECT_THAT(hung.error().message, HasSubstr("qmp hang: no reply within 150 ms"));
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 1500ms);
  auto next = (*client)->execute("next");
  ASSERT_TRUE(next) << next.error().to_string();
  EXPECT_EQ(*next, "fine");
}

TEST(QmpClient, ConnectRetriesUntilTheServerListens) {
  TempDir dir;
  FakeQmpServer server(dir / "qmp.sock", standard());
  auto late_start = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(300ms);
    server.start();
  });
  auto start = std::chrono::steady_clock::now();
  auto client = QmpClient::connect(dir / "qmp.sock", nullptr, fast());
  late_start.get();
  ASSERT_TRUE(client) << client.error().to_string();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
}

TEST(QmpClient, ConnectTimesOutWithoutServer) {
  TempDir dir;
  auto options = fast();
  options.connect_timeout = 200ms;
  auto start = std::chrono::steady_clock::now();
  auto client = QmpClient::connect(dir / "qmp.sock", nullptr, options);
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code, Code::kDeadlineExceeded);
  EXPECT_THAT(client.error().message, HasSubstr(dir / "qmp.sock"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
}

TEST(QmpClient, ConnectStopsWhenKeepTryingSaysSo) {
  TempDir dir;
  auto options = fast();
  options.connect_timeout = 10s;
  options.keep_trying = [] { return false; };  // e.g. qemu already exited
  auto start = std::chrono::steady_clock::now();
  auto client = QmpClient::connect(dir / "qmp.sock", nullptr, options);
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code, Code::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

TEST(QmpClient, RejectsANonQmpGreeting) {
  TempDir dir;
  FakeQmpServer server(dir / "qmp.sock", standard());
  server.start(R"({"hello": "world"})");
  auto client = QmpClient::connect(dir / "qmp.sock", nullptr, fast());
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code, Code::kInternal);
  EXPECT_THAT(client.error().message, HasSubstr("not a QMP greeting"));
}

TEST(QmpClient, PeerCloseFailsPendingCommandsAndMarksClosed) {
  TempDir dir;
  FakeQmpServer server(dir / "qmp.sock", standard([](FakeQmpServer& s, const json&) {
    s.event("SHUTDOWN", {{"guest", false}, {"reason", "host-qmp-quit"}});
    s.close_client();  // like qemu exiting on "quit" before it replies
  }));
  server.start();
  EventLog log;
  auto client = QmpClient::connect(dir / "qmp.sock", log.handler(), fast());
  ASSERT_TRUE(client);
  EXPECT_FALSE((*client)->is_closed());
  auto quit = (*client)->execute("quit");
  ASSERT_FALSE(quit);
  EXPECT_EQ(quit.error().code, Code::kUnavailable);
  EXPECT_THAT(quit.error().message, HasSubstr("connection ended before the reply"));
  EXPECT_TRUE((*client)->wait_closed(2s));
  // The event sent before the close was delivered before the client reported closed.
  {
    std::lock_guard lock(log.mutex);
    ASSERT_EQ(log.events.size(), 1u);
    EXPECT_EQ(log.events[0].data["reason"], "host-qmp-quit");
  }
  auto after = (*client)->execute("query-status");
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, Code::kUnavailable);
}

TEST(QmpClient, ExecuteFromTheEventHandlerIsRefused) {
  TempDir dir;
  FakeQmpServer server(dir / "qmp.sock", standard([](FakeQmpServer& s, const json& request) {
    s.reply(request, json::object());
    s.event("RESUME", nullptr);
  }));
  server.start();
  QmpClient* raw = nullptr;
  std::promise<Status> inner;
  auto client = QmpClient::connect(
      dir / "qmp.sock",
      [&](const QmpEvent&) {
        auto result = raw->execute("query-status");
        inner.set_value(result ? ok() : fail(result.error()));
      },
      fast());
  ASSERT_TRUE(client);
  raw = client->get();
  ASSERT_TRUE((*client)->execute("cont"));
  auto future = inner.get_future();
  ASSERT_EQ(future.wait_for(2s), std::future_status::ready);
  auto result = future.get();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::kFailedPrecondition);
}

TEST(QmpClient, CloseIsIdempotentAndFailsLaterCommands) {
  TempDir dir;
  FakeQmpServer server(dir / "qmp.sock", standard());
  server.start();
  auto client = QmpClient::connect(dir / "qmp.sock", nullptr, fast());
  ASSERT_TRUE(client);
  (*client)->close();
  (*client)->close();
  EXPECT_TRUE((*client)->is_closed());
  auto result = (*client)->execute("query-status");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Code::kUnavailable);
}

// The parsers the reader thread uses, on lines captured from qemu 7.2 (-qmp stdio).
TEST(QmpParse, GreetingVersion) {
  auto version = parse_qmp_greeting(
      R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}})"
      "\r");
  ASSERT_TRUE(version) << version.error().to_string();
  EXPECT_EQ(*version, "7.2.22");
  auto bare = parse_qmp_greeting(R"({"QMP": {"capabilities": []}})");
  ASSERT_TRUE(bare);
  EXPECT_EQ(*bare, "unknown");
  auto wrong = parse_qmp_greeting(R"({"return": {}})");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, Code::kInternal);
  EXPECT_EQ(wrong.error().message, R"(not a QMP greeting: {"return": {}})");
}

TEST(QmpParse, ClassifiesLines) {
  auto reply = parse_qmp_message(
      R"({"return": {"status": "running", "singlestep": false, "running": true}, "id": 2})");
  ASSERT_EQ(reply.kind, QmpMessage::Kind::kReply);
  EXPECT_EQ(reply.id, 2u);
  EXPECT_EQ(reply.body["return"]["status"], "running");

  auto event = parse_qmp_message(
      R"({"timestamp": {"seconds": 1795496374, "microseconds": 374077}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}})");
  ASSERT_EQ(event.kind, QmpMessage::Kind::kEvent);
  EXPECT_EQ(event.event.name, "SHUTDOWN");
  EXPECT_EQ(event.event.data["reason"], "host-qmp-quit");
  auto stop = parse_qmp_message(R"({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"})");
  ASSERT_EQ(stop.kind, QmpMessage::Kind::kEvent);
  EXPECT_EQ(stop.event.data, json::object());

  // qemu's answer to a line it could not parse carries no id.
  EXPECT_EQ(parse_qmp_message(
                R"({"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'garbage'"}})")
                .kind,
            QmpMessage::Kind::kUnmatched);
  EXPECT_EQ(parse_qmp_message(R"({"return": {}, "id": -1})").kind, QmpMessage::Kind::kUnmatched);
  EXPECT_EQ(parse_qmp_message(R"({"return": {}, "id": "1"})").kind, QmpMessage::Kind::kUnmatched);
  EXPECT_EQ(parse_qmp_message("garbage").kind, QmpMessage::Kind::kUnparsable);
  EXPECT_EQ(parse_qmp_message("[1, 2]").kind, QmpMessage::Kind::kUnparsable);
  EXPECT_EQ(parse_qmp_message("").kind, QmpMessage::Kind::kUnparsable);
}

TEST(QmpParse, ReplyResults) {
  auto value = qmp_reply_result("query-kvm", json::parse(R"({"return": {"enabled": false, "present": true}, "id": 4})"));
  ASSERT_TRUE(value);
  EXPECT_EQ((*value)["present"], true);
  auto empty = qmp_reply_result("cont", json::parse(R"({"id": 4})"));
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, json::object());

  auto missing = qmp_reply_result(
      "device_del", json::parse(R"({"id": 7, "error": {"class": "DeviceNotFound", "desc": "Device 'gpu0' not found"}})"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_EQ(missing.error().message, "qmp device_del: Device 'gpu0' not found (DeviceNotFound)");
  auto odd = qmp_reply_result("stop", json::parse(R"({"id": 1, "error": [1]})"));
  ASSERT_FALSE(odd);
  EXPECT_EQ(odd.error().code, Code::kInternal);
  EXPECT_EQ(odd.error().message, "qmp stop: [1] (GenericError)");
}

// Found by a hand-written input to fuzz/qmp_reply_fuzzer (ASan: stack-overflow): copying and
// printing a nlohmann::json value recurse once per nesting level, so a reply like
// {"return": [[[[...]]]], "id": 1} 30000 levels deep overflowed the reader thread's stack. Lines
// deeper than QEMU's own limit are now unparsable.
TEST(QmpParse, RefusesNestingBeyondQemusLimit) {
  auto nested = [](int levels, const std::string& shape) {
    return shape.substr(0, shape.find('@')) + std::string(levels, '[') + std::string(levels, ']') +
           shape.substr(shape.find('@') + 1);
  };
  const std::string reply = R"({"return": @, "id": 1})";
  const std::string event = R"({"event": "X", "data": {"a": @}})";
  EXPECT_EQ(parse_qmp_message(nested(30000, reply)).kind, QmpMessage::Kind::kUnparsable);
  EXPECT_EQ(parse_qmp_message(nested(30000, event)).kind, QmpMessage::Kind::kUnparsable);
  EXPECT_EQ(parse_qmp_message(nested(kMaxQmpNesting, reply)).kind, QmpMessage::Kind::kUnparsable);
  auto deep_ok = parse_qmp_message(nested(kMaxQmpNesting - 1, reply));
  ASSERT_EQ(deep_ok.kind, QmpMessage::Kind::kReply);
  EXPECT_TRUE(qmp_reply_result("x", deep_ok.body));
  EXPECT_FALSE(parse_qmp_greeting(nested(30000, R"({"QMP": @})")));
}

// Found by a hand-written input to fuzz/qmp_reply_fuzzer (UBSan): get<int>() of 1e300 is an
// out-of-range float-to-int conversion, which is undefined behaviour.
TEST(QmpParse, VersionNumbersMustBeIntegers) {
  auto version = parse_qmp_greeting(
      R"({"QMP": {"version": {"qemu": {"micro": 1e300, "minor": 2, "major": 7}}, "capabilities": []}})");
  ASSERT_TRUE(version);
  EXPECT_EQ(*version, "unknown");
  EXPECT_EQ(qmp_version_string(json::parse(R"({"major": 7, "minor": 2, "micro": 22})")), "7.2.22");
  EXPECT_FALSE(qmp_version_string(json::parse(R"({"major": 7, "minor": 2, "micro": 2.5})")));
  EXPECT_FALSE(qmp_version_string(json::parse(R"({"major": -7, "minor": 2, "micro": 22})")));
  EXPECT_FALSE(qmp_version_string(json::parse(R"({"major": 4294967296, "minor": 2, "micro": 22})")));
  EXPECT_FALSE(qmp_version_string(json::parse(R"({"major": 7, "minor": 2})")));
  EXPECT_FALSE(qmp_version_string(json::parse(R"([7, 2, 22])")));
  auto odd = parse_qmp_greeting(R"({"QMP": {"version": [1]}})");
  ASSERT_TRUE(odd);
  EXPECT_EQ(*odd, "unknown");
}

}  // namespace
}  // namespace feos::vmm::qemu
