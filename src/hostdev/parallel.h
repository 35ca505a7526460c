#pragma once
// Internal to src/hostdev: helpers that prepare (host_devices.cc) and release (release.cc) share.
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

namespace feos::hostdev::detail {

// Runs `work(i)` for i in [0, n), each on its own thread (the calling thread takes the last one).
template <typename Work>
void run_parallel(size_t n, Work work) {
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (size_t i = 0; i + 1 < n; ++i) threads.emplace_back([&work, i] { work(i); });
  if (n > 0) work(n - 1);
  for (auto& t : threads) t.join();
}

// Joins `items` with "; ".
inline std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += "; ";
    out += item;
  }
  return out;
}

}  // namespace feos::hostdev::detail
