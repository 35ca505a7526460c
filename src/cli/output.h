#pragma once
// Where feosctl's results and errors go: a result to stdout (table text or JSON), an error as the
// one line "feosctl: error: <CODE>: <message>" to stderr, each returning the exit status that
// goes with it.
#include <google/protobuf/message.h>
#include <grpcpp/support/status.h>

#include <string>
#include <string_view>

#include "cli/command_line.h"
#include "common/error.h"

namespace feos::cli {

// Prints error_line(code_name, message) to stderr. Returns `exit_code`.
int print_error(std::string_view code_name, std::string_view message, int exit_code);

// print_error with the name of `error`'s code and its message.
int print_error(const Error& error, int exit_code);

// Prints the error of a failed call: gRPC's code name and message, "<context>: " before the
// message when `context` is given. Returns kExitServerError.
int report(const grpc::Status& status, std::string_view context = {});

// Prints `message` as indented JSON when inv asks for -o json, else `text` as it is. Returns
// kExitOk, or kExitServerError after an INTERNAL line when the message cannot be rendered.
int print_result(const Invocation& inv, const google::protobuf::Message& message,
                 const std::string& text);

}  // namespace feos::cli
