#include "image/blob_downloads.h"

#include <chrono>
#include <optional>
#include <thread>

namespace feos::image {
namespace {

// How often a waiter looks at its cancel flag and reports progress: the flag is a plain atomic
// (core's), nothing wakes the waiter when it is set.
constexpr std::chrono::milliseconds kPoll{50};

}  // namespace

struct BlobDownloads::Download {
  std::string owner;
  std::atomic<uint64_t> received{0};
  std::atomic<bool> stop{false};
  int waiters = 0;
  bool ended = false;                      // the fetch returned; `result` holds what it gave
  std::optional<Result<uint64_t>> result;
  std::thread thread;
};

BlobDownloads::~BlobDownloads() {
  std::vector<std::shared_ptr<Download>> running;
  {
    std::lock_guard lock(mutex_);
    for (auto& download : threads_) download->stop = true;
    running.swap(threads_);
    in_flight_.clear();
  }
  for (auto& download : running) download->thread.join();
}

void BlobDownloads::reap_locked() {
  std::erase_if(threads_, [](const std::shared_ptr<Download>& download) {
    if (!download->ended) return false;
    download->thread.join();  // it has set `ended`, its last step
    return true;
  });
}

bool BlobDownloads::in_flight(const std::string& digest) const {
  std::lock_guard lock(mutex_);
  return in_flight_.count(digest) > 0;
}

Result<uint64_t> BlobDownloads::get(const std::string& digest, uint64_t size, const std::string& owner, Fetch fetch,
                                    const PullWatch& watch) {
  std::unique_lock lock(mutex_);
  reap_locked();
  std::shared_ptr<Download>& slot = in_flight_[digest];
  if (!slot) {
    auto started = std::make_shared<Download>();
    started->owner = owner;
    // The thread holds only a plain pointer: threads_ keeps the download until it is joined.
    started->thread = std::thread([this, digest, fetch = std::move(fetch), download = started.get()] {
      Result<uint64_t> result =
          fetch(download->stop, [download](uint64_t received) { download->received = received; });
      std::lock_guard lock(mutex_);
      download->result = std::move(result);
      auto it = in_flight_.find(digest);
      if (it != in_flight_.end() && it->second.get() == download) in_flight_.erase(it);
      download->ended = true;
      done_.notify_all();
    });
    threads_.push_back(started);
    slot = std::move(started);
  }
  const std::shared_ptr<Download> download = slot;
  ++download->waiters;
  uint64_t reported = 0;
  while (!download->ended) {
    if (watch.cancel && watch.cancel->load()) {
      // This pull stops waiting; the download goes on for the others, or stops with the last.
      if (--download->waiters == 0) {
        download->stop = true;
        auto it = in_flight_.find(digest);
        if (it != in_flight_.end() && it->second == download) in_flight_.erase(it);
      }
      return fail(Code::kCancelled, "blob " + digest + ": pull cancelled");
    }
    if (const uint64_t received = download->received; received != reported && watch.progress) {
      reported = received;
      lock.unlock();  // the caller's callback takes its own locks
      watch.progress(received, size);
      lock.lock();
      if (download->ended) break;
    }
    done_.wait_for(lock, kPoll);
  }
  --download->waiters;
  Result<uint64_t> result = *download->result;
  const bool others = download->owner != owner;
  lock.unlock();
  if (result && watch.progress && *result != reported) watch.progress(*result, size);
  if (!result && others) return fail(result.error().context("the download for " + download->owner));
  return result;
}

}  // namespace feos::image
