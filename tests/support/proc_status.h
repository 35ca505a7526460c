#pragma once
// Reading a process's /proc/<pid>/status in tests. Header-only, so that tests which do not link
// feos_test_support can use it too.
#include <fstream>
#include <sstream>
#include <string>

namespace feos::test {

// The text of /proc/<pid>/status ("" when the process is gone).
inline std::string read_proc_status(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The value of "Key:" in a /proc/<pid>/status text, whitespace squeezed ("65534 65534 ...");
// "<no Key>" when there is no such line.
inline std::string status_field(const std::string& status, const std::string& key) {
  std::istringstream in(status);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream words(line.substr(key.size() + 1));
    std::string word, out;
    while (words >> word) out += (out.empty() ? "" : " ") + word;
    return out;
  }
  return "<no " + key + ">";
}

}  // namespace feos::test
