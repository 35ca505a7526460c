#pragma once
// The seam core sees for VM images from a registry (header only, as vmm/hypervisor.h): core asks
// for an image by its `image_ref` and gets local files back; how they are fetched, verified and
// cached is the implementation's (oci_image_store.h). Tests give core a fake.
#include <atomic>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace feos::image {

struct PulledImage {
  std::string reference;        // the reference as parsed ("registry/repo:tag")
  std::string registry_url;     // "https://registry:port"
  std::string manifest_digest;  // of the image manifest the disk came from
  std::string disk_digest;      // of the disk layer
  std::string disk_path;        // the cached disk (read-only, raw); attach() gives a VM its own
  uint64_t bytes_pulled = 0;    // disk bytes fetched by this pull (0: all from the cache)
  uint64_t bytes_total = 0;     // the disk layer's size
};

// What a caller sees of a pull in progress, and how it stops one.
struct PullWatch {
  // Called from the pulling thread as disk bytes arrive (bytes so far, the layer's size; every
  // 50 ms at most), also while the pull waits for another pull's download of the same blob; not
  // for cached images.
  std::function<void(uint64_t received, uint64_t total)> progress;
  // Once set, the pull ends CANCELLED (within a second while it fetches a manifest, within 50 ms
  // while it waits for the disk's download). The download goes on for other pulls that wait for
  // it; stopped when none is left, it caches nothing partial.
  const std::atomic<bool>* cancel = nullptr;
};

class ImageStore {
 public:
  virtual ~ImageStore() = default;
  // Makes the image `ref` names available locally: its manifest (always asked for a tag, from the
  // cache for a digest), then the disk layer unless cached. Pulls run in parallel; a disk layer
  // several of them need at once is downloaded once. Errors name the reference and the
  // registry's URL; codes as registry_client.h and layout.h give them, INVALID_ARGUMENT for a
  // malformed reference.
  virtual Result<PulledImage> pull(std::string_view ref, const PullWatch& watch = {}) = 0;
  // Whether `ref` is a well-formed reference (INVALID_ARGUMENT naming it), without any I/O: what
  // CreateVm checks before it answers.
  virtual Status check(std::string_view ref) const = 0;
  // Gives VM `vm_id` its own disk over `image` (pulled again by digest if it was evicted
  // meanwhile) and keeps the image from eviction until release(vm_id). Returns the disk's path
  // (qcow2). A VM that had a disk gets a new, empty one.
  virtual Result<std::string> attach(const std::string& vm_id, const PulledImage& image) = 0;
  // Removes the VM's disk and lets its image be evicted. OK when it has none.
  virtual Status release(const std::string& vm_id) = 0;
  // At start, before any attach(): the disks of VMs the caller does not know. `known` holds every
  // VM id the database has; a disk of any other VM was left by a create cut short between
  // attach() and recording the VM, and would pin its image forever: it is removed. Those in
  // `set_aside` (VMs whose guest ran, discarded with --discard-unknown-vms: their disks may hold
  // the guest's data) are moved out of the way instead, unpinned. Each is logged; one that cannot
  // be removed is logged as an error and left (the daemon still starts). Returns the ids handled.
  virtual Result<std::vector<std::string>> remove_unknown_vms(const std::set<std::string>& known,
                                                              const std::set<std::string>& set_aside) = 0;
};

}  // namespace feos::image
