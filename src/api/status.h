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

// In a handler: declare-and-assign the value of a Result, or return its error as a gRPC status.
//   FEOS_GRPC_ASSIGN_OR_RETURN(const model::VmId id, model::VmId::parse(req->vm_id()));
#define FEOS_GRPC_ASSIGN_OR_RETURN(lhs, expr) \
  FEOS_GRPC_ASSIGN_OR_RETURN_IMPL_(FEOS_CONCAT_(feos_grpc_result_, __LINE__), lhs, expr)
#define FEOS_GRPC_ASSIGN_OR_RETURN_IMPL_(result, lhs, expr)      \
  auto result = (expr);                                         \
  if (!result) return ::feos::api::to_grpc(result.error());      \
  lhs = std::move(*result)

}  // namespace feos::api
