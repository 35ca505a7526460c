#pragma once
// The ONE place where domain errors become gRPC statuses.
#include <grpcpp/support/status.h>

#include "common/error.h"

namespace feos::api {

// Longest status message a client gets (longer ones are cut at a UTF-8 boundary, ending "...").
inline constexpr size_t kMaxStatusMessageBytes = 1024;

// The error's code (gRPC's numbering) and its message with control bytes escaped (\xNN), cut to
// kMaxStatusMessageBytes. INTERNAL and UNKNOWN errors are logged here, once.
grpc::Status to_grpc(const Error& error);
inline grpc::Status to_grpc(const Status& status) { return status ? grpc::Status::OK : to_grpc(status.error()); }

}  // namespace feos::api
