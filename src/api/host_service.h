#pragma once
// gRPC HostDeviceService (feosd.v1): the host's PCI/GPU inventory and passthrough readiness.
#include <memory>

namespace grpc {
class Service;
}
namespace feos::hostdev {
class HostInventory;
}

namespace feos::api {

// `inventory` must outlive the service.
std::unique_ptr<grpc::Service> make_host_service(const hostdev::HostInventory& inventory);

}  // namespace feos::api
