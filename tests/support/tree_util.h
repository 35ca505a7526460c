#pragma once
// Filesystem helpers shared by HostBuilder (writing a tree) and FakeKernel (changing it the way
// the kernel does): attribute files, relative symlinks like sysfs's, driver and module
// directories, DRM nodes. Internal to feos_test_support.
#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/error.h"
#include "support/kernel_model.h"

namespace feos::test::detail {

// Creates or truncates `path` and writes `data` (one write). INTERNAL with errno text.
Status write_text(const std::string& path, std::string_view data, mode_t mode = 0644);
// mkdir -p. INTERNAL on failure.
Status make_dirs(const std::string& path);
// `link` -> the path of `target` relative to link's directory (sysfs stores relative links).
// Both absolute and lexically normal. Replaces an existing link. INTERNAL on failure.
Status make_relative_link(const std::string& link, const std::string& target);
// Removes a file, link or directory tree; OK if absent.
Status remove_path(const std::string& path);

// <sysfs>/bus/pci/drivers/<driver>/{bind,unbind,new_id,remove_id,uevent} and, when `module` is
// not empty, its `module` link and <sysfs>/module/<module>/drivers/pci:<driver>.
Status create_driver_dir(const std::string& sysfs_root, const std::string& driver, const std::string& module);
// <sysfs>/module/<module>/{initstate,refcnt,drivers/}.
Status create_module_dir(const std::string& sysfs_root, const std::string& module);

// Rewrites <dev_dir>/uevent's DRIVER= line (removed when `driver` is empty).
Status set_uevent_driver(const std::string& dev_dir, const std::string& driver);
// <dev_dir>/drm/{card<N>,renderD<M>}/{dev,uevent} and <dev_root>/dri/{card<N>,renderD<M>}.
Status create_drm_nodes(const std::string& dev_dir, const std::string& dev_root, const DrmNodes& nodes);
Status remove_drm_nodes(const std::string& dev_dir, const std::string& dev_root, const DrmNodes& nodes);

}  // namespace feos::test::detail
