#pragma once
// ImageStore over OCI registries (registry_client.h), the FeOS / IronCore image layouts
// (layout.h) and the shared content-addressed cache (blob_cache.h). Pulls are serialized: a
// second VM of the same image waits for the first pull and then finds it cached.
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "image/blob_cache.h"
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
  Result<PulledImage> pull_locked(const Reference& ref, const PullWatch& watch = {});
  // The manifest `key` (tag or digest): from the cache when `key` is a digest there, else fetched
  // and cached under its digest (a later pull by that digest needs no registry).
  Result<Manifest> manifest_locked(RegistryClient& client, const std::string& key);
  // Fetches blob `layer` into the cache; returns the bytes fetched.
  Result<uint64_t> fetch_blob_locked(RegistryClient& client, const Descriptor& layer, const PullWatch& watch);

  const ImageStoreOptions options_;
  std::mutex mutex_;
  BlobCache cache_;
};

}  // namespace feos::image
