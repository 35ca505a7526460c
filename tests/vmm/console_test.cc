#include "vmm/qemu/console.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace feos::vmm::qemu {
namespace {

using ::feos::test::TempDir;
using namespace std::chrono_literals;

// Stands in for qemu's console chardev (server=on): accepts one client.
class FakeConsoleServer {
 public:
  explicit FakeConsoleServer(const std::string& path) {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listen_fd_, 1), 0);
    accepted_ = std::async(std::launch::async, [this] {
      return ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    });
  }
  ~FakeConsoleServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    int fd = client();
    if (fd >= 0) ::close(fd);
    ::close(listen_fd_);
  }
  int client() {
    if (client_fd_ == -2) client_fd_ = accepted_.get();
    return client_fd_;
  }
  void send(const std::string& data) {
    ASSERT_EQ(::write(client(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  }
  // Reads until `want` bytes arrived or 2 s passed.
  std::string receive(size_t want) {
    std::string got;
    auto deadline = std::chrono::steady_clock::now() + 2s;
    while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
      pollfd p{client(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      ssize_t n = ::read(client(), buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }
  bool sees_eof() {
    pollfd p{client(), POLLIN, 0};
    if (::poll(&p, 1, 2000) <= 0) return false;
    char c;
    return ::read(client(), &c, 1) == 0;
  }
  void hang_up() { ::shutdown(client(), SHUT_RDWR); }

 private:
  int listen_fd_ = -1;
  int client_fd_ = -2;
  std::future<int> accepted_;
};

// Collects one subscriber's callbacks.
struct Reader {
  std::mutex mutex;
  std::condition_variable cv;
  std::string output;
  std::vector<std::string> chunks;
  int closed = 0;
  Console::OnOutput on_output() {
    return [this](std::string_view bytes) {
      std::lock_guard lock(mutex);
      output.append(bytes);
      chunks.emplace_back(bytes);
      cv.notify_all();
    };
  }
  Console::OnClosed on_closed() {
    return [this] {
      std::lock_guard lock(mutex);
      ++closed;
      cv.notify_all();
    };
  }
  bool wait_output(const std::string& text) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 2s, [&] { return output == text; });
  }
  bool wait_closed() {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 2s, [&] { return closed > 0; });
  }
  std::string get() {
    std::lock_guard lock(mutex);
    return output;
  }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ConsoleTest : public ::testing::Test {
 protected:
  std::shared_ptr<QemuConsole> open(size_t retain = QemuConsole::kDefaultRetainBytes) {
    QemuConsole::Options options;
    options.connect_timeout = 2s;
    options.retain_bytes = retain;
    auto console = QemuConsole::open("vm-1", dir_ / "console.sock", dir_ / "console.log", options);
    EXPECT_TRUE(console) << console.error().to_string();
    return console ? *console : nullptr;
  }
  TempDir dir_;
  FakeConsoleServer server_{dir_ / "console.sock"};
};

TEST_F(ConsoleTest, FansOutLiveOutputAndLogsIt) {
  auto console = open();
  Reader a, b;
  console->subscribe(a.on_output(), a.on_closed());
  console->subscribe(b.on_output(), b.on_closed());
  server_.send("booting\n");
  ASSERT_TRUE(a.wait_output("booting\n"));
  ASSERT_TRUE(b.wait_output("booting\n"));
  server_.send("FEOS-TEST-GUEST-READY\n");
  ASSERT_TRUE(a.wait_output("booting\nFEOS-TEST-GUEST-READY\n"));
  EXPECT_EQ(console->recent_output(), "booting\nFEOS-TEST-GUEST-READY\n");
  console->close();
  EXPECT_EQ(read_file(dir_ / "console.log"), "booting\nFEOS-TEST-GUEST-READY\n");
}

TEST_F(ConsoleTest, NewSubscriberGetsReplayThenLive) {
  auto console = open();
  Reader first;
  console->subscribe(first.on_output(), first.on_closed());
  server_.send("early output\n");
  ASSERT_TRUE(first.wait_output("early output\n"));
  Reader late;
  console->subscribe(late.on_output(), late.on_closed());
  // The replay arrives without waiting for new output.
  ASSERT_TRUE(late.wait_output("early output\n"));
  server_.send("live\n");
  ASSERT_TRUE(late.wait_output("early output\nlive\n"));
  std::lock_guard lock(late.mutex);
  EXPECT_EQ(late.chunks.front(), "early output\n");
}

TEST_F(ConsoleTest, RetainsOnlyTheLastBytes) {
  auto console = open(16);
  Reader watcher;
  console->subscribe(watcher.on_output(), watcher.on_closed());
  std::string text = "0123456789abcdefghijklmnopqrstuvwxyz";
  server_.send(text);
  ASSERT_TRUE(watcher.wait_output(text));
  EXPECT_EQ(console->recent_output(), text.substr(text.size() - 16));
  Reader late;
  console->subscribe(late.on_output(), late.on_closed());
  ASSERT_TRUE(late.wait_output(text.substr(text.size() - 16)));
  console->close();
  EXPECT_EQ(read_file(dir_ / "console.log"), text);  // the log keeps everything
}

TEST_F(ConsoleTest, WriteSendsInput) {
  auto console = open();
  ASSERT_TRUE(console->write("hello\n"));
  EXPECT_EQ(server_.receive(6), "hello\n");
}

TEST_F(ConsoleTest, UnsubscribedReaderGetsNothingMore) {
  auto console = open();
  Reader kept, dropped;
  console->subscribe(kept.on_output(), kept.on_closed());
  int token = console->subscribe(dropped.on_output(), dropped.on_closed());
  server_.send("one\n");
  ASSERT_TRUE(dropped.wait_output("one\n"));
  console->unsubscribe(token);
  server_.send("two\n");
  ASSERT_TRUE(kept.wait_output("one\ntwo\n"));
  console->close();
  EXPECT_EQ(dropped.get(), "one\n");
  EXPECT_EQ(dropped.closed, 0);
  EXPECT_EQ(kept.closed, 1);
}

TEST_F(ConsoleTest, PeerHangupClosesTheConsole) {
  auto console = open();
  Reader reader;
  console->subscribe(reader.on_output(), reader.on_closed());
  server_.send("bye\n");
  ASSERT_TRUE(reader.wait_output("bye\n"));
  server_.hang_up();
  ASSERT_TRUE(reader.wait_closed());
  EXPECT_TRUE(console->is_closed());
  auto written = console->write("x");
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().code, Code::kUnavailable);
  // A subscriber after the end still gets the retained output, then on_closed, at once.
  Reader late;
  console->subscribe(late.on_output(), late.on_closed());
  EXPECT_EQ(late.get(), "bye\n");
  EXPECT_EQ(late.closed, 1);
  std::lock_guard lock(reader.mutex);
  EXPECT_EQ(reader.closed, 1);
}

TEST_F(ConsoleTest, CloseDisconnectsAndNotifiesOnce) {
  auto console = open();
  Reader reader;
  console->subscribe(reader.on_output(), reader.on_closed());
  console->close();
  EXPECT_EQ(reader.closed, 1);  // close() returns after the reader finished
  console->close();
  EXPECT_EQ(reader.closed, 1);
  EXPECT_TRUE(server_.sees_eof());
}

TEST_F(ConsoleTest, SubscriberMayDropTheLastReferenceFromACallback) {
  auto console = open();
  std::promise<void> done;
  auto held = std::make_shared<std::shared_ptr<QemuConsole>>(console);
  console->subscribe([held](std::string_view) { held->reset(); },
                     [&done] { done.set_value(); });
  console.reset();
  server_.send("x");
  // Dropping the last reference closed the console from inside the callback.
  EXPECT_EQ(done.get_future().wait_for(2s), std::future_status::ready);
  EXPECT_TRUE(server_.sees_eof());
}

TEST_F(ConsoleTest, DroppingTheLastReferenceDisconnects) {
  Reader reader;
  {
    auto console = open();
    console->subscribe(reader.on_output(), reader.on_closed());
  }
  EXPECT_EQ(reader.closed, 1);
  EXPECT_TRUE(server_.sees_eof());
}

TEST(ConsoleOpen, FailsWithoutServer) {
  TempDir dir;
  QemuConsole::Options options;
  options.connect_timeout = 100ms;
  auto console = QemuConsole::open("vm-1", dir / "console.sock", dir / "console.log", options);
  ASSERT_FALSE(console);
  EXPECT_EQ(console.error().code, Code::kDeadlineExceeded);
  EXPECT_THAT(console.error().message, ::testing::HasSubstr("vm vm-1: console"));
}

}  // namespace
}  // namespace feos::vmm::qemu
