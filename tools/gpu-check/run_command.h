#pragma once
// Runs a program by argv (never through a shell) and captures its output, with a time limit.
// Used for nvidia-smi, which can hang on a GPU in a bad state.
#include <string>
#include <vector>

namespace feos::gpucheck {

struct CommandResult {
  bool started = false;   // false: the program was not found or could not be executed
  bool timed_out = false; // killed (SIGKILL) after the time limit
  int exit_code = -1;     // valid when started, not timed out and not signalled
  int signal = 0;         // terminating signal, if any
  std::string out;        // stdout (at most 1 MiB kept)
  std::string err;        // stderr (at most 1 MiB kept)
  std::string error;      // why it did not start, or how it ended abnormally
  bool succeeded() const { return started && !timed_out && signal == 0 && exit_code == 0; }
};

// Runs argv[0] (a path, or a name looked up in PATH) with an empty stdin. Precondition:
// argv is not empty. Call before starting threads (it forks).
CommandResult run_command(const std::vector<std::string>& argv, int timeout_ms);

}  // namespace feos::gpucheck
