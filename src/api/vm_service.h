#pragma once
// gRPC VMService (feos.vm.vmm.api.v1) over core::VmManager. Header kept free of grpcpp so that
// the daemon's main does not pay for it.
#include <memory>
#include <string>

namespace grpc {
class Service;
}
namespace feos::core {
class VmManager;
}

namespace feos::api {

// `build_version` is reported by PingVm ("feosd 0.1.0").
std::unique_ptr<grpc::Service> make_vm_service(core::VmManager& manager, std::string build_version);

}  // namespace feos::api
