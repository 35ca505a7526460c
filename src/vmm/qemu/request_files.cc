#include "vmm/qemu/request_files.h"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <memory>

#include "vmm/qemu/disk_format.h"

namespace feos::vmm::qemu {
namespace {

std::string describe_roots(const FileRoots& roots) {
  std::string out;
  for (const auto& root : roots) out += (out.empty() ? "" : ", ") + root;
  return out;
}

// Whether canonical `path` is `root` itself or lies below it (root canonicalized here).
bool inside(const std::string& path, const std::string& root) {
  std::unique_ptr<char, decltype(&std::free)> resolved(::realpath(root.c_str(), nullptr), &std::free);
  if (!resolved) return false;
  std::string r = resolved.get();
  if (r == "/") return true;
  return path.size() > r.size() && path.compare(0, r.size(), r) == 0 && path[r.size()] == '/';
}

}  // namespace

Status check_request_file(const std::string& path, const std::string& field, const FileRoots& roots) {
  errno = 0;
  std::unique_ptr<char, decltype(&std::free)> resolved(::realpath(path.c_str(), nullptr), &std::free);
  if (!resolved) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return fail(Code::kNotFound, field + ": " + path + " not found");
    return fail_errno(field + ": resolve " + path, err);
  }
  const std::string real = resolved.get();
  bool allowed = roots.empty();
  for (const auto& root : roots) allowed = allowed || inside(real, root);
  if (!allowed) {
    return fail(Code::kPermissionDenied,
                field + ": " + path + (real == path ? "" : " (resolves to " + real + ")") +
                    " is outside the directories VMs may use (" + describe_roots(roots) + ")");
  }
  struct stat st {};
  if (::stat(real.c_str(), &st) != 0) return fail_errno(field + ": stat " + real, errno);
  if (S_ISREG(st.st_mode)) return ok();
  if (S_ISBLK(st.st_mode) && !roots.empty()) return ok();
  return fail(Code::kInvalidArgument,
              field + ": " + path + " is not a regular file" +
                  (S_ISBLK(st.st_mode) ? " (block devices only inside --image-root directories)" : ""));
}

namespace {

// qemu's own limit on a backing chain is far lower in practice; this only stops a loop.
constexpr int kMaxBackingDepth = 16;

Result<model::DiskFormat> check_image_at_depth(const std::string& path, const std::string& field,
                                               const FileRoots& roots, int depth) {
  if (depth > kMaxBackingDepth)
    return fail(Code::kInvalidArgument, field + ": backing chain longer than " +
                                            std::to_string(kMaxBackingDepth) + " images (a loop?)");
  FEOS_TRY(check_request_file(path, field, roots));
  auto info = inspect_disk_image(path);
  if (!info) return fail(info.error().context(field));
  if (!info->backing_file.empty()) {
    std::string backing = info->backing_file;
    if (backing.front() != '/') backing = path.substr(0, path.rfind('/') + 1) + backing;
    auto backing_format =
        check_image_at_depth(backing, field + " (backing file of " + path + ")", roots, depth + 1);
    if (!backing_format) return fail(backing_format.error());
  }
  return info->format;
}

}  // namespace

Result<model::DiskFormat> check_disk_image(const std::string& path, const std::string& field,
                                           const FileRoots& roots) {
  return check_image_at_depth(path, field, roots, 0);
}

Result<model::VmSpec> check_spec_files(const model::VmSpec& spec, const FileRoots& roots) {
  model::VmSpec out = spec;
  auto record = [&](const std::string& path, const std::string& field,
                    model::DiskFormat& format) -> Status {
    auto found = check_disk_image(path, field, roots);
    if (!found) return fail(found.error());
    if (format == model::DiskFormat::kUnknown) format = *found;
    return ok();
  };
  if (!out.image_path.empty()) FEOS_TRY(record(out.image_path, "image_ref", out.image_format));
  for (size_t i = 0; i < out.disks.size(); ++i)
    FEOS_TRY(record(out.disks[i].path, "disks[" + std::to_string(i) + "].path", out.disks[i].format));
  if (!out.boot.kernel.empty()) FEOS_TRY(check_request_file(out.boot.kernel, "boot.kernel", roots));
  if (!out.boot.initramfs.empty())
    FEOS_TRY(check_request_file(out.boot.initramfs, "boot.initramfs", roots));
  return out;
}

}  // namespace feos::vmm::qemu
