#include "common/error.h"

#include <cstring>

namespace feos {

std::string_view code_name(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kCancelled: return "CANCELLED";
    case Code::kUnknown: return "UNKNOWN";
    case Code::kInvalidArgument: return "INVALID_ARGUMENT";
    case Code::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case Code::kNotFound: return "NOT_FOUND";
    case Code::kAlreadyExists: return "ALREADY_EXISTS";
    case Code::kPermissionDenied: return "PERMISSION_DENIED";
    case Code::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case Code::kFailedPrecondition: return "FAILED_PRECONDITION";
    case Code::kAborted: return "ABORTED";
    case Code::kOutOfRange: return "OUT_OF_RANGE";
    case Code::kUnimplemented: return "UNIMPLEMENTED";
    case Code::kInternal: return "INTERNAL";
    case Code::kUnavailable: return "UNAVAILABLE";
  }
  return "UNKNOWN";
}

Error Error::context(std::string_view what) const {
  return Error{code, std::string(what) + ": " + message};
}

std::string Error::to_string() const { return std::string(code_name(code)) + ": " + message; }

tl::unexpected<Error> fail_errno(std::string_view what, int errnum, Code code) {
  return fail(code, std::string(what) + ": " + std::strerror(errnum));
}

}  // namespace feos
