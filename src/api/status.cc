#include "api/status.h"

#include "common/log.h"
#include "common/text.h"

namespace feos::api {

grpc::Status to_grpc(const Error& error) {
  // Codes share gRPC's numbering (common/error.h); internal failures are logged once, here.
  if (error.code == Code::kInternal || error.code == Code::kUnknown)
    log::get("api")->error("request failed: {}", escape_controls(error.message));
  // Whatever a message carries (request text is quoted where it is built; a hypervisor's own
  // words are not), clients get one printable line of bounded length.
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(error.code)),
                      cut_utf8(escape_controls(error.message), kMaxStatusMessageBytes));
}

}  // namespace feos::api
