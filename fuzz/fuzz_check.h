#pragma once
// Shared by the fuzz targets: an invariant check that stops the fuzzer with a message. libFuzzer
// treats abort() as a crash, saves the input and exits non-zero.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/error.h"

#define FUZZ_CHECK(cond, ...)                                                          \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, "  " __VA_ARGS__);                                          \
      std::fprintf(stderr, "\n");                                                      \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

namespace feos::fuzz {

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// Every error the parsers return names a code and says something.
inline void check_error(const Error& e, Code expected, std::string_view what) {
  FUZZ_CHECK(e.code == expected, "%.*s: code %s, expected %s: %s", static_cast<int>(what.size()),
             what.data(), std::string(code_name(e.code)).c_str(),
             std::string(code_name(expected)).c_str(), e.message.c_str());
  FUZZ_CHECK(!e.message.empty(), "%.*s: empty error message", static_cast<int>(what.size()), what.data());
}

}  // namespace feos::fuzz
