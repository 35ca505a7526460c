#pragma once
// The project's one error type. Every fallible function returns Result<T> (or Status for no value).
// Codes mirror gRPC's so the API layer maps them one to one; messages are built where the failure
// is found and name the VM, device address or path involved. Callers add context with `context()`.
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace feos {

enum class Code {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,         // not produced by feosd; named for clients that show gRPC codes
  kUnauthenticated = 16,  // gRPC's own (TLS); named for the same reason
};

// Short upper-case name of a code, e.g. "FAILED_PRECONDITION" (gRPC's names).
std::string_view code_name(Code code);
// The code with gRPC's number `number`; nullopt outside 0..16.
std::optional<Code> code_from_number(int number);

struct Error {
  Code code = Code::kUnknown;
  std::string message;

  // Returns a copy whose message is "<what>: <message>", keeping the code.
  Error context(std::string_view what) const;
  // "CODE: message", for logs and the CLI.
  std::string to_string() const;
};

template <typename T>
using Result = tl::expected<T, Error>;
using Status = tl::expected<void, Error>;

// `return fail(Code::kNotFound, "vm " + id + " not found");`
inline tl::unexpected<Error> fail(Code code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}
inline tl::unexpected<Error> fail(Error error) { return tl::unexpected<Error>(std::move(error)); }

// An error from a failed system call: INTERNAL (or `code`) with "<what>: <strerror(errnum)>".
tl::unexpected<Error> fail_errno(std::string_view what, int errnum, Code code = Code::kInternal);

inline Status ok() { return {}; }

// Quotes untrusted text (request fields, file contents) for an error message: printable ASCII as
// is, everything else as \xNN, at most 64 characters (then "..."), in single quotes. Messages go to
// logs and terminals: a request must not inject lines or escape sequences into them.
std::string quote_for_message(std::string_view text);

}  // namespace feos

// Propagate an error from an expression returning Result/Status: FEOS_TRY(fs.write(...));
#define FEOS_TRY(expr)                                   \
  do {                                                   \
    auto feos_try_result_ = (expr);                      \
    if (!feos_try_result_) return ::feos::fail(std::move(feos_try_result_).error()); \
  } while (0)

// Declare-and-assign the value of a Result, or propagate its error:
//   FEOS_ASSIGN_OR_RETURN(auto rows, ledger.list(vm_id));
//   FEOS_ASSIGN_OR_RETURN(spec.cpus, read_cpus(json));
#define FEOS_ASSIGN_OR_RETURN(lhs, expr) \
  FEOS_ASSIGN_OR_RETURN_IMPL_(FEOS_CONCAT_(feos_assign_result_, __LINE__), lhs, expr)
#define FEOS_ASSIGN_OR_RETURN_IMPL_(result, lhs, expr)                  \
  auto result = (expr);                                                 \
  if (!result) return ::feos::fail(std::move(result).error());          \
  lhs = std::move(*result)
#define FEOS_CONCAT_(a, b) FEOS_CONCAT_INNER_(a, b)
#define FEOS_CONCAT_INNER_(a, b) a##b
