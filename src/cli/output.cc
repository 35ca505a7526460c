#include "cli/output.h"

#include <iostream>

#include "cli/format.h"
#include "cli/json_format.h"

namespace feos::cli {

int print_error(std::string_view code_name, std::string_view message, int exit_code) {
  std::cerr << error_line(code_name, message) << std::endl;
  return exit_code;
}

int print_error(const Error& error, int exit_code) {
  return print_error(code_name(error.code), error.message, exit_code);
}

int report(const grpc::Status& status, std::string_view context) {
  std::string message = status.error_message();
  if (!context.empty()) message = std::string(context) + ": " + message;
  return print_error(grpc_code_name(status.error_code()), message, kExitServerError);
}

int print_result(const Invocation& inv, const google::protobuf::Message& message,
                 const std::string& text) {
  if (inv.global.output == OutputFormat::kJson) {
    auto json = to_json(message, /*pretty=*/true);
    if (!json) return print_error(json.error(), kExitServerError);
    std::cout << *json << std::endl;
  } else {
    std::cout << text << std::flush;
  }
  return kExitOk;
}

}  // namespace feos::cli
