#pragma once
// The ONE place where domain errors become gRPC statuses.
#include <grpcpp/support/status.h>

#include "common/error.h"

namespace feos::api {

grpc::Status to_grpc(const Error& error);
inline grpc::Status to_grpc(const Status& status) { return status ? grpc::Status::OK : to_grpc(status.error()); }

}  // namespace feos::api
