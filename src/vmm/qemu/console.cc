#include "vmm/qemu/console.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.h"
#include "sys/waker.h"
#include "vmm/qemu/unix_socket.h"

namespace feos::vmm::qemu {

namespace {

struct Subscriber {
  int token = 0;
  Console::OnOutput on_output;
  Console::OnClosed on_closed;
  std::string replay;  // retained output not yet delivered
  bool replay_pending = true;
  std::atomic<bool> active{true};
};

using Subscribers = std::vector<std::shared_ptr<Subscriber>>;

}  // namespace

struct QemuConsole::State {
  State(std::string vm_id, std::string socket_path, UniqueFd socket, UniqueFd log, sys::Waker waker,
        Options options)
      : vm_id(std::move(vm_id)),
        socket_path(std::move(socket_path)),
        socket(std::move(socket)),
        log(std::move(log)),
        waker(std::move(waker)),
        options(std::move(options)) {}

  void reader_loop();
  void deliver(const Subscribers& subscribers, std::string_view chunk);
  void append_log(std::string_view chunk);
  bool on_reader_thread() const {
    std::lock_guard lock(mutex);
    return reader_id == std::this_thread::get_id();
  }

  const std::string vm_id;
  const std::string socket_path;
  UniqueFd socket;  // guarded by write_mutex against the reader's final reset
  UniqueFd log;
  sys::Waker waker;
  const Options options;
  bool log_failed = false;  // reader thread only: warn once

  mutable std::mutex mutex;
  std::condition_variable done_cv;
  std::string retained;
  Subscribers subscribers;
  int next_token = 1;
  bool stopping = false;
  bool closed = false;       // no more output will come; the final subscriber list is taken
  bool reader_done = false;  // on_closed delivered, the loop has ended
  std::thread::id reader_id;

  std::mutex delivery_mutex;  // held by the reader while it runs callbacks
  std::mutex write_mutex;
};

Result<std::shared_ptr<QemuConsole>> QemuConsole::open(const std::string& vm_id,
                                                       const std::string& socket_path,
                                                       const std::string& log_path,
                                                       Options options) {
  // O_NOFOLLOW: a qemu running as another user can create entries in the runtime dir.
  UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640));
  if (!log) return fail_errno("vm " + vm_id + ": open console log " + log_path, errno);
  auto socket = connect_unix(socket_path, options.connect_timeout, options.keep_trying);
  if (!socket) return fail(socket.error().context("vm " + vm_id + ": console"));
  auto waker = sys::Waker::create();
  if (!waker) return fail(waker.error());
  auto state = std::make_shared<State>(vm_id, socket_path, std::move(*socket), std::move(log),
                                       std::move(*waker), std::move(options));
  {
    std::lock_guard lock(state->mutex);
    std::thread reader([state] { state->reader_loop(); });
    state->reader_id = reader.get_id();
    reader.detach();  // ends after close() or EOF; holds the state until then
  }
  return std::shared_ptr<QemuConsole>(new QemuConsole(state));
}

QemuConsole::~QemuConsole() { close(); }

void QemuConsole::close() {
  std::unique_lock lock(state_->mutex);
  state_->stopping = true;
  state_->waker.wake();
  if (state_->reader_id == std::this_thread::get_id()) return;
  state_->done_cv.wait(lock, [&] { return state_->reader_done; });
}

bool QemuConsole::is_closed() const {
  std::lock_guard lock(state_->mutex);
  return state_->closed;
}

std::string QemuConsole::recent_output() const {
  std::lock_guard lock(state_->mutex);
  return state_->retained;
}

int QemuConsole::subscribe(OnOutput on_output, OnClosed on_closed) {
  auto subscriber = std::make_shared<Subscriber>();
  subscriber->on_output = std::move(on_output);
  subscriber->on_closed = std::move(on_closed);
  std::unique_lock lock(state_->mutex);
  subscriber->token = state_->next_token++;
  subscriber->replay = state_->retained;
  if (state_->closed) {
    // The reader has taken its last subscriber list: nothing will deliver for us any more.
    lock.unlock();
    if (!subscriber->replay.empty() && subscriber->on_output) subscriber->on_output(subscriber->replay);
    if (subscriber->on_closed) subscriber->on_closed();
    return subscriber->token;
  }
  state_->subscribers.push_back(subscriber);
  lock.unlock();
  state_->waker.wake();  // the reader delivers the replay now, not with the next output
  return subscriber->token;
}

void QemuConsole::unsubscribe(int token) {
  std::shared_ptr<Subscriber> removed;
  {
    std::lock_guard lock(state_->mutex);
    auto& list = state_->subscribers;
    for (auto it = list.begin(); it != list.end(); ++it) {
      if ((*it)->token == token) {
        removed = *it;
        list.erase(it);
        break;
      }
    }
  }
  if (!removed) return;
  removed->active = false;
  // Wait out a delivery in progress, so no callback runs after we return.
  if (!state_->on_reader_thread()) std::lock_guard wait(state_->delivery_mutex);
}

Status QemuConsole::write(std::string_view input) {
  {
    std::lock_guard lock(state_->mutex);
    if (state_->closed || state_->stopping)
      return fail(Code::kUnavailable, "vm " + state_->vm_id + ": console is closed");
  }
  std::lock_guard write_lock(state_->write_mutex);
  if (!state_->socket) return fail(Code::kUnavailable, "vm " + state_->vm_id + ": console is closed");
  auto written = write_all(state_->socket.get(), input, state_->options.write_timeout,
                           "console " + state_->socket_path);
  if (!written) return fail(written.error().context("vm " + state_->vm_id));
  return ok();
}

void QemuConsole::State::append_log(std::string_view chunk) {
  while (!chunk.empty()) {
    ssize_t n = ::write(log.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (!log_failed)
        log::get("qemu")->warn("console log write failed vm={} error=\"{}\"", vm_id,
                               std::strerror(errno));
      log_failed = true;
      return;
    }
    chunk.remove_prefix(static_cast<size_t>(n));
  }
}

void QemuConsole::State::deliver(const Subscribers& list, std::string_view chunk) {
  std::lock_guard delivering(delivery_mutex);
  for (const auto& subscriber : list) {
    if (subscriber->replay_pending) {
      subscriber->replay_pending = false;
      std::string replay = std::move(subscriber->replay);
      if (!replay.empty() && subscriber->active && subscriber->on_output) subscriber->on_output(replay);
    }
    if (!chunk.empty() && subscriber->active && subscriber->on_output) subscriber->on_output(chunk);
  }
}

void QemuConsole::State::reader_loop() {
  char chunk[16384];
  std::string end_reason = "closed by qemu";
  while (true) {
    Subscribers list;
    {
      std::lock_guard lock(mutex);
      list = subscribers;
      if (stopping) {
        end_reason = "closed by the daemon";
        break;
      }
    }
    deliver(list, {});  // pending replays of new subscribers
    pollfd fds[2] = {{socket.get(), POLLIN, 0}, {waker.fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      end_reason = std::string("poll: ") + std::strerror(errno);
      break;
    }
    if (fds[1].revents != 0) waker.drain();
    if (fds[0].revents == 0) continue;
    ssize_t n = ::read(socket.get(), chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      if (n < 0) end_reason = std::string("read: ") + std::strerror(errno);
      break;
    }
    std::string_view data(chunk, static_cast<size_t>(n));
    append_log(data);
    {
      // Appending and taking the subscriber list under one lock: a new subscriber's replay
      // either contains this chunk or it receives the chunk live, never both or neither.
      std::lock_guard lock(mutex);
      retained.append(data);
      if (retained.size() > options.retain_bytes)
        retained.erase(0, retained.size() - options.retain_bytes);
      list = subscribers;
    }
    deliver(list, data);
  }
  log::get("qemu")->debug("console closed vm={} reason=\"{}\"", vm_id, end_reason);
  Subscribers list;
  {
    std::lock_guard lock(mutex);
    closed = true;
    list = subscribers;
  }
  {
    std::lock_guard write_lock(write_mutex);
    socket.reset();
  }
  deliver(list, {});
  {
    std::lock_guard delivering(delivery_mutex);
    for (const auto& subscriber : list)
      if (subscriber->active && subscriber->on_closed) subscriber->on_closed();
  }
  {
    std::lock_guard lock(mutex);
    subscribers.clear();
    reader_done = true;
  }
  done_cv.notify_all();
}

}  // namespace feos::vmm::qemu
