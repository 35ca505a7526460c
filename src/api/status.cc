#include "api/status.h"

#include "common/log.h"

namespace feos::api {

grpc::Status to_grpc(const Error& error) {
  // Codes share gRPC's numbering (common/error.h); internal failures are logged once, here.
  if (error.code == Code::kInternal || error.code == Code::kUnknown)
    log::get("api")->error("request failed: {}", error.to_string());
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(error.code)), error.message);
}

}  // namespace feos::api
