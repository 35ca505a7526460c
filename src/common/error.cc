#include "common/error.h"

#include <cstdio>
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
    case Code::kDataLoss: return "DATA_LOSS";
    case Code::kUnauthenticated: return "UNAUTHENTICATED";
  }
  return "UNKNOWN";
}

std::optional<Code> code_from_number(int number) {
  if (number < 0 || number > static_cast<int>(Code::kUnauthenticated)) return std::nullopt;
  return static_cast<Code>(number);
}

Error Error::context(std::string_view what) const {
  return Error{code, std::string(what) + ": " + message};
}

std::string Error::to_string() const { return std::string(code_name(code)) + ": " + message; }

tl::unexpected<Error> fail_errno(std::string_view what, int errnum, Code code) {
  return fail(code, std::string(what) + ": " + std::strerror(errnum));
}

std::string quote_for_message(std::string_view text) {
  std::string out = "'";
  size_t shown = 0;
  for (char c : text) {
    if (shown == 64) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '\\' && c != '\'') {
      out += c;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    }
    ++shown;
  }
  out += "'";
  return out;
}

}  // namespace feos
