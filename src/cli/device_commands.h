#pragma once
// feosctl vm disk attach|detach and vm nic attach|detach: a disk or tap NIC added to or removed
// from a VM (live when it runs, else in its definition).
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "cli/command_line.h"
#include "common/error.h"

namespace feos::cli {

struct DeviceCommands {
  CLI::App* disk_attach = nullptr;
  CLI::App* disk_detach = nullptr;
  CLI::App* nic_attach = nullptr;
  CLI::App* nic_detach = nullptr;
  std::string vm_id;
  std::string argument;  // the device spec (attach) or its id (detach)
};

// Adds the "disk" and "nic" groups under `vm`.
void add_device_commands(CLI::App& vm, DeviceCommands& commands);

// When one of the commands was selected: fills inv's command, vm_id and request (a disk spec
// parsed as --disk's, a NIC spec as --tap's, relative paths against `cwd`) and returns true.
// INVALID_ARGUMENT for an empty ID or DEVICE_ID and the spec errors of parse_disk_spec() and
// parse_tap_spec().
Result<bool> finish_device_command(const DeviceCommands& commands, Invocation& inv, std::string_view cwd);

}  // namespace feos::cli
