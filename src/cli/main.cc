// feosctl: command-line client of feosd. Parses the command line (pure, cli/command_line.h), then
// hands the invocation to the gRPC client (cli/client.h).
#include <google/protobuf/stubs/logging.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "cli/client.h"
#include "cli/command_line.h"
#include "cli/format.h"
#include "sys/filesystem.h"

int main(int argc, char** argv) {
  using namespace feos::cli;
  // A closed stdout (feosctl ... | head) must end output quietly, not kill us mid-call.
  std::signal(SIGPIPE, SIG_IGN);
  // Protobuf's own warnings (e.g. while rendering JSON) would break the one-line error contract.
  google::protobuf::SetLogHandler(nullptr);

  std::unique_ptr<feos::sys::Filesystem> fs = feos::sys::make_posix_filesystem();
  CommandLineEnv env;
  if (const char* socket = std::getenv(kSocketEnv)) env.socket_env = socket;
  std::error_code ec;
  std::filesystem::path cwd = std::filesystem::current_path(ec);
  env.cwd = ec ? "/" : cwd.string();
  env.fs = fs.get();

  auto parsed = parse_command_line(std::vector<std::string>(argv + 1, argv + argc), env);
  if (!parsed) {
    std::cerr << error_line(feos::code_name(parsed.error().code), parsed.error().message)
              << std::endl;
    return kExitUsage;
  }
  if (parsed->help) {
    std::cout << *parsed->help;
    return kExitOk;
  }
  return run(parsed->invocation);
}
