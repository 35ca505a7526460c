#pragma once
// proto <-> domain conversions for the VM API. Pure functions, no I/O. Only what the domain
// cannot express is checked here: a oneof left unset, a backend feosd does not offer, an unknown
// enum value, and the GPU address until it is parsed here. Every other bound and rule is
// model::validate()'s (model/limits.h), which vmm runs at create and start.
#include "common/error.h"
#include "feos/vm/vmm/api/v1/vm.pb.h"
#include "model/vm.h"
#include "model/vm_plan.h"

namespace feos::api {

namespace pb = ::feos::vm::vmm::api::v1;

// INVALID_ARGUMENT naming the field (e.g. "config.disks[1]: no backend set",
// "config.gpus[0].address: invalid PCI address ...": GPU addresses are parsed here) on bad input;
// UNIMPLEMENTED for features feosd does not offer (vfio_pci disk/NIC backends for now).
Result<model::VmSpec> spec_from_proto(const pb::VmConfig& config);
pb::VmConfig spec_to_proto(const model::VmSpec& spec);
// The device of AttachDisk / AttachNic: as a disk or NIC of spec_from_proto(), its messages
// naming "disk" / "nic". INVALID_ARGUMENT when none is given or no backend is set; UNIMPLEMENTED
// for vfio_pci.
Result<model::DiskSpec> disk_from_proto(bool present, const pb::DiskConfig& disk);
Result<model::NetSpec> net_from_proto(bool present, const pb::NetConfig& nic);

pb::VmState state_to_proto(model::VmState state);
pb::VmInfo record_to_proto(const model::VmRecord& record);
// The dry run's answer (CreateVmResponse.plan).
feosd::v1::VmPlan plan_to_proto(const model::VmPlan& plan);
// VmEvent with a VmStateChangedEvent packed in `data`.
pb::VmEvent event_to_proto(const model::VmEvent& event);

}  // namespace feos::api
