#pragma once
// Room kept aside in the state directory so that a full disk cannot stop DeleteVm: deleting a VM
// writes too (the SQLite WAL, state and events), and deleting is how an operator makes room. The
// reserve is a file of allocated blocks; make_room() gives it up, restore() takes it back.
#include <cstdint>
#include <mutex>
#include <string>

namespace feos::store {

class SpaceReserve {
 public:
  // `path`: the reserve file (in the directory to protect); `bytes` == 0 disables it.
  SpaceReserve(std::string path, uint64_t bytes);

  // Removes the reserve file when its filesystem has less than `bytes` free (or cannot say), so
  // that the writes that follow find room. Returns whether it removed it.
  bool make_room();
  // Allocates the reserve file unless it exists. Gives up quietly (logs once) while the
  // filesystem lacks twice `bytes` free: the reserve must not be what fills the disk.
  void restore();

  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  const uint64_t bytes_;
  std::mutex mutex_;
  bool warned_ = false;  // guarded by mutex_
};

}  // namespace feos::store
