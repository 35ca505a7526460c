#pragma once
// The blob downloads in flight, by digest: a blob that several pulls need at once (two VMs of one
// image, two images sharing a disk layer) is downloaded once. Each download runs in a thread of
// its own, not in the pull that started it, so a pull that gives up (its VM deleted) leaves it to
// the others; when the last one gives up the download is stopped. A failed download fails every
// pull that waited for it and is forgotten: the next pull tries again.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.h"
#include "image/image_store.h"

namespace feos::image {

class BlobDownloads {
 public:
  // What a download's thread runs: fetches the blob (stopping, and keeping nothing, once `stop`
  // is set), telling `received` the bytes so far as they arrive; returns the bytes fetched.
  using Fetch =
      std::function<Result<uint64_t>(const std::atomic<bool>& stop, const std::function<void(uint64_t)>& received)>;

  BlobDownloads() = default;
  BlobDownloads(const BlobDownloads&) = delete;
  BlobDownloads& operator=(const BlobDownloads&) = delete;
  // Stops every download and waits for its thread (the fetches use their owner's cache).
  ~BlobDownloads();

  // Waits for blob `digest` of `size` bytes: joins its download in flight, else starts one that
  // runs `fetch`. `owner` names the pull ("image 'r/a:1' (registry https://r)"): an error of a
  // download that another owner started says whose it was. Calls `watch.progress` from this
  // thread (every 50 ms while bytes arrive) and ends CANCELLED within 50 ms of `watch.cancel`.
  Result<uint64_t> get(const std::string& digest, uint64_t size, const std::string& owner, Fetch fetch,
                       const PullWatch& watch);

  // Whether a download of `digest` is in flight (one that lost all its waiters is not).
  bool in_flight(const std::string& digest) const;

 private:
  struct Download;
  // Joins the threads of downloads that have ended (their last step was to say so).
  void reap_locked();

  mutable std::mutex mutex_;
  std::condition_variable done_;
  std::map<std::string, std::shared_ptr<Download>> in_flight_;  // by digest; only those with waiters
  std::vector<std::shared_ptr<Download>> threads_;              // every download not yet joined
};

}  // namespace feos::image
