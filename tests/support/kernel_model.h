#pragma once
// What the fake kernel must know about a host that its sysfs tree does not say: which driver the
// kernel would bind to each device when probing without an override (its "native" driver), which
// devices get DRM nodes when bound, and which module provides each driver.
#include <map>
#include <string>

namespace feos::test {

struct DrmNodes {
  int card = 0;    // <dev>/drm/card<card>, <dev_root>/dri/card<card>
  int render = 0;  // <dev>/drm/renderD<render>, <dev_root>/dri/renderD<render>; -1: none (KMS-only)
  friend bool operator==(const DrmNodes&, const DrmNodes&) = default;
};

struct KernelModel {
  // bdf -> driver that probing binds when no driver_override is set. A device missing here gets
  // the driver it is bound to when the FakeKernel is created (none if unbound).
  std::map<std::string, std::string> native_drivers{};
  // bdf -> DRM nodes the device has while bound to its native driver.
  std::map<std::string, DrmNodes> drm{};
  // driver -> module ("" for built-in drivers). Drivers missing here use module_of_driver().
  std::map<std::string, std::string> driver_modules{};
};

// The module that provides `driver` on a stock Linux kernel: "vfio-pci" -> "vfio_pci",
// "nvidia-nvswitch" -> "nvidia", "xhci_hcd" -> "xhci_pci", "pcieport" -> "" (built in); any other
// name with '-' replaced by '_'.
std::string module_of_driver(const std::string& driver);

}  // namespace feos::test
