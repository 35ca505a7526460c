#pragma once
// gRPC HostDeviceService (feosd.v1): the host's PCI/GPU inventory and passthrough readiness.
#include <memory>

namespace grpc {
class Service;
}
namespace feos::hostdev {
class HostInventory;
}
namespace feos::vmm {
class Hypervisor;
}

namespace feos::api {

// `inventory` and `hypervisor` must outlive the service. The hypervisor answers how many GPUs of
// each model one VM holds (CheckHost's capacity).
std::unique_ptr<grpc::Service> make_host_service(const hostdev::HostInventory& inventory,
                                                 const vmm::Hypervisor& hypervisor);

}  // namespace feos::api
