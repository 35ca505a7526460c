#include "support/tree_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace feos::test {

std::string module_of_driver(const std::string& driver) {
  static const std::map<std::string, std::string> kKnown = {
      {"vfio-pci", "vfio_pci"},        {"nvidia-nvswitch", "nvidia"}, {"nvidia-gpu", "i2c_nvidia_gpu"},
      {"xhci_hcd", "xhci_pci"},        {"pcieport", ""},              {"virtio-pci", ""},
      {"i801_smbus", "i2c_i801"},      {"ahci", "ahci"},              {"ehci-pci", "ehci_pci"},
      {"intel_pmc_core", "intel_pmc_core"}, {"shpchp", ""},
  };
  if (auto it = kKnown.find(driver); it != kKnown.end()) return it->second;
  std::string out = driver;
  for (char& c : out)
    if (c == '-') c = '_';
  return out;
}

}  // namespace feos::test

namespace feos::test::detail {
namespace fs = std::filesystem;

Status write_text(const std::string& path, std::string_view data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return fail_errno("create " + path, errno);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return fail_errno("write " + path, err);
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return ok();
}

Status make_dirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return fail(Code::kInternal, "mkdir " + path + ": " + ec.message());
  return ok();
}

Status make_relative_link(const std::string& link, const std::string& target) {
  fs::path l(link);
  fs::path rel = fs::path(target).lexically_relative(l.parent_path());
  std::error_code ec;
  fs::remove(l, ec);
  fs::create_symlink(rel, l, ec);
  if (ec) return fail(Code::kInternal, "symlink " + link + " -> " + rel.string() + ": " + ec.message());
  return ok();
}

Status remove_path(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return fail(Code::kInternal, "remove " + path + ": " + ec.message());
  return ok();
}

Status create_driver_dir(const std::string& sysfs_root, const std::string& driver, const std::string& module) {
  const std::string dir = sysfs_root + "/bus/pci/drivers/" + driver;
  FEOS_TRY(make_dirs(dir));
  for (const char* name : {"bind", "unbind", "new_id", "remove_id", "uevent"})
    FEOS_TRY(write_text(dir + "/" + name, "", 0200));
  if (!module.empty()) {
    const std::string mod_dir = sysfs_root + "/module/" + module;
    FEOS_TRY(create_module_dir(sysfs_root, module));
    FEOS_TRY(make_relative_link(dir + "/module", mod_dir));
    FEOS_TRY(make_relative_link(mod_dir + "/drivers/pci:" + driver, dir));
  }
  return ok();
}

Status create_module_dir(const std::string& sysfs_root, const std::string& module) {
  const std::string dir = sysfs_root + "/module/" + module;
  FEOS_TRY(make_dirs(dir + "/drivers"));
  FEOS_TRY(write_text(dir + "/initstate", "live\n", 0444));
  FEOS_TRY(write_text(dir + "/refcnt", "0\n", 0444));
  return ok();
}

Status set_uevent_driver(const std::string& dev_dir, const std::string& driver) {
  const std::string path = dev_dir + "/uevent";
  std::ifstream in(path);
  std::string out;
  if (!driver.empty()) out = "DRIVER=" + driver + "\n";
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("DRIVER=", 0) != 0) out += line + "\n";
  return write_text(path, out);
}

Status create_drm_nodes(const std::string& dev_dir, const std::string& dev_root, const DrmNodes& nodes) {
  const std::string card = "card" + std::to_string(nodes.card);
  const std::string render = "renderD" + std::to_string(nodes.render);
  std::vector<std::pair<std::string, int>> minors = {{card, nodes.card}};
  if (nodes.render >= 0) minors.emplace_back(render, nodes.render);
  for (const auto& [name, minor] : minors) {
    const std::string dir = dev_dir + "/drm/" + name;
    FEOS_TRY(make_dirs(dir));
    FEOS_TRY(write_text(dir + "/dev", "226:" + std::to_string(minor) + "\n", 0444));
    FEOS_TRY(write_text(dir + "/uevent",
                        "MAJOR=226\nMINOR=" + std::to_string(minor) + "\nDEVNAME=dri/" + name + "\nDEVTYPE=drm_minor\n"));
    FEOS_TRY(make_dirs(dev_root + "/dri"));
    FEOS_TRY(write_text(dev_root + "/dri/" + name, ""));
  }
  return ok();
}

Status remove_drm_nodes(const std::string& dev_dir, const std::string& dev_root, const DrmNodes& nodes) {
  FEOS_TRY(remove_path(dev_dir + "/drm"));
  FEOS_TRY(remove_path(dev_root + "/dri/card" + std::to_string(nodes.card)));
  if (nodes.render >= 0) FEOS_TRY(remove_path(dev_root + "/dri/renderD" + std::to_string(nodes.render)));
  return ok();
}

}  // namespace feos::test::detail
