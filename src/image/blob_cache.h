#pragma once
// The content-addressed store of pulled images under the daemon's state directory, shared by
// every VM:
//   blobs/sha256/<hex>        a verified blob (manifests and disk layers), read-only, named by
//                             its digest; its mtime is the last time it was used (LRU)
//   tmp/                      downloads in progress: renamed into blobs/ only once verified, so
//                             a blob with a wrong digest never becomes visible
//   vms/<vm id>/              a VM's own files over an image (vm_disk.h); vms/<vm id>/image
//                             holds the digest of the disk blob it uses: a pin
//   vms.discarded/<vm id>-<ms>  disks of VMs discarded with --discard-unknown-vms (no pin)
// The blobs' total size is kept under a limit by evicting the least recently used blobs that no
// VM pins. Not thread-safe: the image store calls it under its lock (blob_path, vm_dir and
// create_temp excepted: they touch no state).
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"

namespace feos::image {

class BlobCache {
 public:
  // Creates the directories (0755: the files are read by an unprivileged qemu user) and removes
  // what an interrupted download left in tmp/. INTERNAL when the directories cannot be made.
  static Result<BlobCache> open(std::string dir, uint64_t limit_bytes);

  const std::string& dir() const { return dir_; }
  uint64_t limit_bytes() const { return limit_; }

  // The path blob `digest` has (whether or not it is there).
  std::string blob_path(const std::string& digest) const;
  // Whether the blob is there; marks it used now when it is.
  bool find(const std::string& digest);
  // A new file in tmp/ for a download, opened for writing (the caller closes it).
  Result<std::pair<std::string, int>> create_temp();
  // Moves a verified download into blobs/ under `digest` (read-only, marked used now).
  Status commit(const std::string& temp_path, const std::string& digest);
  // Evicts unused blobs (pinned by no VM, not in `keep`: those pulls in progress use), least
  // recently used first, until `incoming` more bytes fit under the limit beside `reserved` bytes
  // (downloads in flight, not in blobs/ yet). RESOURCE_EXHAUSTED saying what holds the room when
  // they do not.
  Status make_room(uint64_t incoming, const std::set<std::string>& keep, uint64_t reserved = 0);
  // Sum of the blobs' sizes.
  uint64_t used_bytes() const;

  // A VM's directory (vms/<vm id>), its pin, and its removal.
  std::string vm_dir(const std::string& vm_id) const;
  Status pin(const std::string& vm_id, const std::string& digest);
  Status unpin(const std::string& vm_id);
  // The digests VMs pin.
  std::set<std::string> pinned() const;
  // The names under vms/: the ids of the VMs that have a directory here.
  std::vector<std::string> vm_ids() const;
  // Moves vms/<vm id> to vms.discarded/<vm id>-<ms since the epoch> (kept for the operator: the
  // VM's disk, and its "image" file naming the digest the disk needs). It pins nothing there.
  Result<std::string> set_aside(const std::string& vm_id);
  // The digest vms/<vm id>/image names ("" when none).
  std::string pinned_by(const std::string& vm_id) const;

 private:
  BlobCache(std::string dir, uint64_t limit) : dir_(std::move(dir)), limit_(limit) {}
  std::string dir_;
  uint64_t limit_;
};

}  // namespace feos::image
