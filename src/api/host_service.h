#pragma once
// gRPC HostDeviceService (feosd.v1): the host's PCI/GPU inventory and passthrough readiness.
#include <memory>

namespace grpc {
class Service;
}
namespace feos::hostdev {
class HostDevices;
}

namespace feos::api {

std::unique_ptr<grpc::Service> make_host_service(hostdev::HostDevices& devices);

}  // namespace feos::api
