#include "pci/topology.h"

namespace feos::pci {

Result<Topology> topology_from_device_path(std::string_view path, const Address& address) {
  auto bad = [&](const std::string& why) {
    return fail(Code::kInvalidArgument,
                "PCI device path " + std::string(path) + " of " + address.to_string() + ": " + why);
  };
  Topology out;
  std::vector<Address> chain;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(start, end - start);
    start = end + 1;
    if (out.pcie_root.empty()) {
      // "pci0000:15": "pci", a 4-digit domain, ':', a 2-digit bus.
      if (part.size() == 10 && part.substr(0, 3) == "pci" && part[7] == ':') out.pcie_root = part;
      continue;
    }
    if (part.empty()) continue;
    auto parsed = Address::parse(part);
    if (!parsed) return bad("'" + std::string(part) + "' is not a PCI address");
    chain.push_back(*parsed);
  }
  if (out.pcie_root.empty()) return bad("no root bus (pciDDDD:BB)");
  if (chain.empty() || chain.back() != address) return bad("it does not end in the device");
  chain.pop_back();
  out.bridges = std::move(chain);
  if (out.bridges.size() >= 3) out.switch_upstream = out.bridges[out.bridges.size() - 2];
  return out;
}

Result<Topology> read_topology(const sys::Filesystem& fs, const sys::HostPaths& paths,
                               const Address& address) {
  const std::string link = paths.pci_device(address.to_string());
  auto target = fs.read_link(link);
  if (!target) {
    if (target.error().code == Code::kNotFound)
      return fail(Code::kNotFound, "no PCI device " + address.to_string() + " (" + link + ")");
    return fail(target.error());
  }
  return topology_from_device_path(*target, address);
}

}  // namespace feos::pci
