#pragma once
// gRPC VMService (feos.vm.vmm.api.v1) over core::VmManager. Header kept free of grpcpp so that
// the daemon's main does not pay for it.
#include <chrono>
#include <memory>
#include <string>

namespace grpc {
class Service;
}
namespace feos::core {
class VmManager;
}

namespace feos::api {

struct StreamLimits {
  // StreamVmEvents and StreamVmConsole calls open at once; each holds a server thread. Past it a
  // new stream is RESOURCE_EXHAUSTED.
  int max_streams = 64;
  // A console stream must send its attach message within this time, else the server ends it.
  std::chrono::milliseconds attach_timeout{10000};
};

// `build_version` is reported by PingVm ("feosd 0.1.0").
std::unique_ptr<grpc::Service> make_vm_service(core::VmManager& manager, std::string build_version,
                                               StreamLimits limits = {});

}  // namespace feos::api
