// QemuHypervisor's live device changes over QMP: disks and NICs plugged into the hot-plug ports
// every VM gets at start (hotplug_ports.h), and unplugged once the guest released them.
#include <optional>

#include "common/log.h"
#include "sys/tap.h"
#include "vmm/qemu/hotplug_ports.h"
#include "vmm/qemu/qemu_hypervisor.h"
#include "vmm/qemu/run_as_taps.h"

namespace feos::vmm::qemu {
namespace {

using nlohmann::json;

std::shared_ptr<spdlog::logger> logger() { return log::get("qemu"); }

// Where a device sits among the VM's hot-plug ports, from QMP query-pci.
struct PortUse {
  int ports = 0;                 // hot-plug ports the VM has
  std::optional<int> free_port;  // the first empty one
  std::optional<int> holding;    // the one holding the device asked about
};

// The devices of a query-pci bus list, bridges followed.
template <typename Visit>
void each_device(const json& devices, const Visit& visit) {
  if (!devices.is_array()) return;
  for (const auto& device : devices) {
    if (!device.is_object()) continue;
    visit(device);
    if (device.contains("pci_bridge") && device["pci_bridge"].is_object())
      each_device(device["pci_bridge"].value("devices", json::array()), visit);
  }
}

std::string qdev_id(const json& device) {
  auto it = device.find("qdev_id");
  return it != device.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Result<PortUse> port_use(QemuProcess& vm, const std::string& device_id) {
  FEOS_ASSIGN_OR_RETURN(json buses, vm.execute("query-pci", nullptr));
  PortUse use;
  if (!buses.is_array()) return use;
  for (const auto& bus : buses) {
    each_device(bus.value("devices", json::array()), [&](const json& device) {
      const std::string id = qdev_id(device);
      for (int k = 0; k < kMaxHotplugPorts; ++k) {
        if (id != hotplug_port_id(k)) continue;
        ++use.ports;
        json behind = device.contains("pci_bridge") ? device["pci_bridge"].value("devices", json::array())
                                                    : json::array();
        if (behind.empty() && (!use.free_port || k < *use.free_port)) use.free_port = k;
        for (const auto& child : behind)
          if (child.is_object() && qdev_id(child) == device_id) use.holding = k;
      }
    });
  }
  return use;
}

Error no_free_port(const std::string& vm_id, int ports) {
  const std::string what = ports == 0 ? "has no hot-plug ports (it started with --hotplug-ports 0, or under an "
                                        "older feosd)"
                                      : "has all its " + std::to_string(ports) + " hot-plug ports in use";
  return Error{Code::kResourceExhausted,
               "vm " + vm_id + " " + what + " (reserved at the VM's start, feosd --hotplug-ports); detach a device, "
                   "or shut the VM down and attach it then: it is plugged at the next start"};
}

// Drops what `prefix` names among the block nodes that nothing uses: the nodes of a disk
// (its top node and those named from it, block_graph.h). A node still in use stays (qemu refuses
// to delete it), so a node whose parents go first follows in a later round.
void delete_block_nodes(QemuProcess& vm, const std::string& prefix) {
  auto nodes = vm.execute("query-named-block-nodes", json{{"flat", true}});
  if (!nodes || !nodes->is_array()) return;
  std::vector<std::string> left;
  for (const auto& node : *nodes) {
    std::string name = node.value("node-name", "");
    if (name == prefix || name.starts_with(prefix + "-")) left.push_back(name);
  }
  for (size_t round = 0; round <= left.size() && !left.empty(); ++round)
    std::erase_if(left, [&](const std::string& name) {
      return static_cast<bool>(vm.execute("blockdev-del", json{{"node-name", name}}));
    });
  for (const auto& name : left) logger()->warn("vm={} block node {} could not be deleted", vm.vm_id(), name);
}

}  // namespace

Result<model::DiskSpec> QemuHypervisor::attach_disk(const std::string& vm_id, const model::DiskSpec& disk) {
  auto in_vm = [&](const Error& e) { return e.context("vm " + vm_id); };
  FEOS_ASSIGN_OR_RETURN(auto vm, attached_process(vm_id));
  // The same checks as at start: the files within the image roots, the recorded format.
  FEOS_ASSIGN_OR_RETURN(ImageChain chain, resolve_image_chain(disk.path, disk.format, "disk.path",
                                                              config_.image_roots, config_.reserved_dirs)
                                              .map_error(in_vm));
  // As at start: a request's files are never given to qemu's user, who must reach them already.
  // Nothing is granted: the daemon's own files (its state directory, the image cache) are refused above.
  if (config_.run_as)
    FEOS_TRY(permissions_.check_access(*config_.run_as, chain_access_checks("disk.path", chain, !disk.readonly, disk.path))
                 .map_error(in_vm));
  FEOS_ASSIGN_OR_RETURN(PortUse use, port_use(*vm, disk.device_id).map_error(in_vm));
  if (use.holding)
    return fail(Code::kAlreadyExists, "vm " + vm_id + ": device " + disk.device_id + " is plugged already");
  if (!use.free_port) return fail(no_free_port(vm_id, use.ports));
  const int k = *use.free_port;
  const std::string node = hotplug_disk_node(k);
  delete_block_nodes(*vm, node);  // what an unplug that timed out left in this port
  for (const auto& value : blockdev_nodes(chain, node, disk.readonly)) {
    if (auto added = vm->execute("blockdev-add", json(value)); !added) {
      delete_block_nodes(*vm, node);
      return fail(in_vm(added.error()));
    }
  }
  json device{{"driver", "virtio-blk-pci"}, {"id", disk.device_id}, {"drive", node},
              {"bus", hotplug_port_id(k)}, {"serial", disk.device_id}};
  if (auto added = vm->execute("device_add", device); !added) {
    delete_block_nodes(*vm, node);
    return fail(in_vm(added.error()));
  }
  logger()->info("disk plugged vm={} device={} port={} path={}", vm_id, disk.device_id, hotplug_port_id(k), disk.path);
  model::DiskSpec plugged = disk;
  plugged.format = chain.front().format;
  return plugged;
}

Result<bool> QemuHypervisor::attach_nic(const std::string& vm_id, const model::NetSpec& nic) {
  auto in_vm = [&](const Error& e) { return e.context("vm " + vm_id); };
  FEOS_ASSIGN_OR_RETURN(auto vm, attached_process(vm_id));
  // qemu's user opens the tap through <dev>/net/tun, and an existing tap must be made for it (a
  // missing one is created for it below).
  if (config_.run_as) {
    FEOS_TRY(permissions_.check_access(*config_.run_as, {tun_access_check(paths_, "nic.tap_name")}).map_error(in_vm));
    if (fs_.exists(paths_.net_interface(nic.tap_name)))
      FEOS_TRY(check_tap_for_user(fs_, paths_, *config_.run_as, nic.tap_name, "nic.tap_name").map_error(in_vm));
  }
  FEOS_ASSIGN_OR_RETURN(PortUse use, port_use(*vm, nic.device_id).map_error(in_vm));
  if (use.holding)
    return fail(Code::kAlreadyExists, "vm " + vm_id + ": device " + nic.device_id + " is plugged already");
  if (!use.free_port) return fail(no_free_port(vm_id, use.ports));
  std::optional<uid_t> owner;
  std::optional<gid_t> group;
  if (config_.run_as) {
    owner = config_.run_as->uid;
    group = config_.run_as->gid;
  }
  FEOS_ASSIGN_OR_RETURN(bool created, sys::ensure_tap(nic.tap_name, owner, group).map_error(in_vm));
  if (created) logger()->info("tap created vm={} tap={}", vm_id, nic.tap_name);
  const int k = *use.free_port;
  const std::string netdev = hotplug_netdev_id(k);
  (void)vm->execute("netdev_del", json{{"id", netdev}});  // left by an unplug that timed out
  // script=no: the tap exists; qemu runs no ifup script.
  json backend{{"type", "tap"}, {"id", netdev}, {"ifname", nic.tap_name}, {"script", "no"}, {"downscript", "no"}};
  // A tap made here goes again when the plug fails.
  auto unplugged = [&](const Error& error) {
    if (created) (void)remove_created_tap(nic.tap_name);
    return fail(in_vm(error));
  };
  if (auto added = vm->execute("netdev_add", backend); !added) return unplugged(added.error());
  json device{{"driver", "virtio-net-pci"}, {"id", nic.device_id}, {"netdev", netdev}, {"bus", hotplug_port_id(k)}};
  if (!nic.mac.empty()) device["mac"] = nic.mac;
  if (auto added = vm->execute("device_add", device); !added) {
    (void)vm->execute("netdev_del", json{{"id", netdev}});
    return unplugged(added.error());
  }
  logger()->info("NIC plugged vm={} device={} port={} tap={}", vm_id, nic.device_id, hotplug_port_id(k), nic.tap_name);
  return created;
}

Status QemuHypervisor::remove_created_tap(const std::string& tap_name) {
  FEOS_ASSIGN_OR_RETURN(bool removed, sys::remove_tap(tap_name));
  if (removed) logger()->info("tap removed tap={}", tap_name);
  return ok();
}

Status QemuHypervisor::detach_disk(const std::string& vm_id, const std::string& device_id) {
  return unplug(vm_id, device_id, true);
}

Status QemuHypervisor::detach_nic(const std::string& vm_id, const std::string& device_id) {
  return unplug(vm_id, device_id, false);
}

Status QemuHypervisor::unplug(const std::string& vm_id, const std::string& device_id, bool disk) {
  auto in_vm = [&](const Error& e) { return e.context("vm " + vm_id); };
  FEOS_ASSIGN_OR_RETURN(auto vm, attached_process(vm_id));
  FEOS_ASSIGN_OR_RETURN(PortUse use, port_use(*vm, device_id).map_error(in_vm));
  if (!use.holding) {
    // Gone already (a guest that released it after an earlier detach timed out): its backend
    // goes when the port is used again, or with the process.
    auto exists = vm->execute("qom-list", json{{"path", "/machine/peripheral/" + device_id}});
    if (!exists && exists.error().code == Code::kNotFound) return ok();
    if (!exists) return fail(in_vm(exists.error()));
    return fail(Code::kFailedPrecondition,
                "vm " + vm_id + ": device " + device_id +
                    " was plugged at the VM's start on its root bus, which has no hot-plug: shut the VM down and "
                    "detach it then");
  }
  const int k = *use.holding;
  vm->forget_deleted(device_id);
  auto requested = vm->execute("device_del", json{{"id", device_id}});
  // A request that timed out earlier may still be pending in qemu ("Device X is already in the
  // process of unplug"): wait for it again.
  const bool pending = !requested && requested.error().message.find("process of unplug") != std::string::npos;
  if (!requested && !pending && requested.error().code != Code::kNotFound) return fail(in_vm(requested.error()));
  if ((requested || pending) && !vm->wait_deleted(device_id, config_.unplug_timeout)) {
    return fail(Code::kDeadlineExceeded,
                "vm " + vm_id + ": the guest did not release device " + device_id + " within " +
                    std::to_string(config_.unplug_timeout.count() / 1000) +
                    " s (it needs a running OS with PCIe hot-plug, Linux's pciehp); the device stays attached and "
                    "in the VM's spec: retry the detach later, or shut the VM down and detach it then");
  }
  if (disk) delete_block_nodes(*vm, hotplug_disk_node(k));
  else (void)vm->execute("netdev_del", json{{"id", hotplug_netdev_id(k)}});
  logger()->info("device unplugged vm={} device={} port={}", vm_id, device_id, hotplug_port_id(k));
  return ok();
}

}  // namespace feos::vmm::qemu
