#pragma once
// One logger per component ("vm", "qemu", "store", ...), key=value fields in messages:
//   log::get("vm")->info("state change vm={} from={} to={}", id, a, b);
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace feos::log {

// Returns the named component logger, creating it on first use (stderr sink, shared level).
std::shared_ptr<spdlog::logger> get(const std::string& component);

// Sets the level of every component logger ("debug", "info", "warn", "error").
void set_level(const std::string& level);

}  // namespace feos::log
