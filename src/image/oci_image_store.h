#pragma once
// ImageStore over OCI registries (registry_client.h), the FeOS / IronCore image layouts
// (layout.h) and the shared content-addressed cache (blob_cache.h). Pulls run in parallel: the
// store's lock guards only the cache's bookkeeping, never a request to a registry. A blob that
// several pulls need at once is downloaded once (blob_downloads.h); eviction leaves the blobs
// that pulls in progress use and counts the room that downloads in flight will take.
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "image/blob_cache.h"
#include "image/blob_downloads.h"
#include "image/image_store.h"
#include "image/layout.h"
#include "image/registry_client.h"
#include "image/vm_disk.h"

namespace feos::image {

struct ImageStoreOptions {
  std::string cache_dir;                         // <state dir>/images
  uint64_t cache_limit_bytes = 100ull << 30;     // --image-cache-size
  uint64_t max_blob_bytes = 64ull << 30;         // --image-max-blob-size
  RegistryOptions registry;
  std::string qemu_img = "/usr/bin/qemu-img";
  std::optional<DiskOwner> disk_owner;           // the qemu user, when qemu runs as one
  std::string architecture;                      // of index entries; "" = this host's
};

class OciImageStore final : public ImageStore {
 public:
  // Opens the cache (BlobCache::open's errors).
  static Result<std::unique_ptr<OciImageStore>> open(ImageStoreOptions options);

  Result<PulledImage> pull(std::string_view ref, const PullWatch& watch = {}) override;
  Status check(std::string_view ref) const override;
  Result<std::string> attach(const std::string& vm_id, const PulledImage& image) override;
  Status release(const std::string& vm_id) override;
  Result<std::vector<std::string>> remove_unknown_vms(const std::set<std::string>& known,
                                                      const std::set<std::string>& set_aside) override;

 private:
  OciImageStore(ImageStoreOptions options, BlobCache cache)
      : options_(std::move(options)), cache_(std::move(cache)) {}

  // The blobs one pull in progress reads or is about to use, held from when it finds them until
  // it returns (attach(): until the VM pins its disk). Eviction leaves them.
  class InUse {
   public:
    explicit InUse(OciImageStore& store) : store_(store) {}
    ~InUse();
    InUse(const InUse&) = delete;
    InUse& operator=(const InUse&) = delete;
    void add_locked(const std::string& digest);

   private:
    OciImageStore& store_;
    std::vector<std::string> digests_;
  };

  Result<PulledImage> pull_using(const Reference& ref, const PullWatch& watch, InUse& use);
  // The manifest `key` (tag or digest): from the cache when `key` is a digest there, else fetched
  // and cached under its digest (a later pull by that digest needs no registry).
  Result<Manifest> manifest(RegistryClient& client, const std::string& key, InUse& use);
  // A download's fetch (blob_downloads.h): room in the cache, blob `layer` into tmp/, then into
  // the cache unless `stop` was set. Returns the bytes fetched (0: it was cached meanwhile).
  Result<uint64_t> download(RegistryClient& client, const Descriptor& layer, const std::atomic<bool>& stop,
                            const std::function<void(uint64_t)>& received);
  std::set<std::string> in_use_locked() const;

  const ImageStoreOptions options_;
  std::mutex mutex_;  // guards cache_, in_use_, reserved_
  BlobCache cache_;
  std::map<std::string, int> in_use_;  // digest -> pulls that use it (InUse)
  uint64_t reserved_ = 0;              // bytes of downloads in flight: room they will take
  BlobDownloads downloads_;            // last: its destructor joins fetches that use the above
};

}  // namespace feos::image
