#include "vmm/qemu/request_files.h"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>

#include "model/field_path.h"
#include "vmm/qemu/disk_format.h"

namespace feos::vmm::qemu {
namespace {

// realpath(3); nullopt with errno set when it fails.
std::optional<std::string> resolve(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> resolved(::realpath(path.c_str(), nullptr),
                                                       &std::free);
  if (!resolved) return std::nullopt;
  return std::string(resolved.get());
}

std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

std::string describe_roots(const FileRoots& roots) {
  std::string out;
  for (const auto& root : roots) out += (out.empty() ? "" : ", ") + root;
  return out;
}

// Whether canonical `path` is a root or lies below one (roots are canonicalized here).
bool inside_roots(const std::string& path, const FileRoots& roots) {
  for (const auto& root : roots) {
    auto r = resolve(root);
    if (!r) continue;
    if (*r == "/" || path == *r) return true;
    if (path.size() > r->size() && path.compare(0, r->size(), *r) == 0 && path[r->size()] == '/')
      return true;
  }
  return false;
}

// Where the kernel's lookup of an unresolvable `path` ends, resolved: its deepest existing
// ancestor, dangling symbolic links on the way followed to their targets; after too many links,
// the directory of the last one. Only a lookup ending inside a root may be reported as "not
// found" (check_request_file()).
std::optional<std::string> where_lookup_ends(std::string path, int links = 0) {
  if (links > 40) return resolve(parent_of(path));  // the kernel's own limit (ELOOP)
  while (true) {
    if (auto real = resolve(path)) return real;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
      if (n <= 0) return std::nullopt;
      std::string next(target, static_cast<size_t>(n));
      if (next.front() != '/') next = parent_of(path) + "/" + next;
      return where_lookup_ends(next, links + 1);
    }
    if (path == "/") return std::nullopt;
    path = parent_of(path);
  }
}

// Filesystems of kernel interfaces: their "regular files" (/proc/self/mem, sysfs attributes)
// are not disks or kernels, and reading some of them has effects.
const char* kernel_interface_filesystem(long type) {
  switch (type) {
    case PROC_SUPER_MAGIC: return "procfs";
    case SYSFS_MAGIC: return "sysfs";
    case DEBUGFS_MAGIC: return "debugfs";
    case TRACEFS_MAGIC: return "tracefs";
    case SECURITYFS_MAGIC: return "securityfs";
    case SELINUX_MAGIC: return "selinuxfs";
    case SMACK_MAGIC: return "smackfs";
    case CGROUP_SUPER_MAGIC: return "cgroup";
    case CGROUP2_SUPER_MAGIC: return "cgroup2";
    case BPF_FS_MAGIC: return "bpf";
    case EFIVARFS_MAGIC: return "efivarfs";
    case PSTOREFS_MAGIC: return "pstore";
    case BINFMTFS_MAGIC: return "binfmt_misc";
    case NSFS_MAGIC: return "nsfs";
    case 0x62656570: return "configfs";  // CONFIGFS_MAGIC, not in linux/magic.h
    default: return nullptr;
  }
}

std::string describe_type(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

ReservedDirs feosd_reserved_dirs(const std::string& state_dir) {
  return {{state_dir + "/images", "feosd's image cache",
           "its images are shared by the VMs that use them and its disks are each one VM's own", true},
          {state_dir, "feosd's state directory",
           "its database and the VMs' runtime files (UEFI variable stores, console logs, ignition) are the daemon's "
           "own"}};
}

Result<std::string> check_request_file(const std::string& path, const std::string& field,
                                       const FileRoots& roots, const ReservedDirs& reserved) {
  const std::string shown = field + ": " + quote_for_message(path);
  if (path.empty() || path.front() != '/')
    return fail(Code::kInvalidArgument, shown + " is not an absolute path");
  auto outside = [&] {
    return fail(Code::kPermissionDenied,
                shown + " is not a file inside the image roots (" + describe_roots(roots) + ")");
  };
  auto reserved_dir = [&](const std::string& real) -> std::optional<Error> {
    for (const auto& dir : reserved)
      if (inside_roots(real, {dir.path}))
        return Error{Code::kInvalidArgument,
                     shown + " is inside " + dir.what + " (" + dir.path + "): " + dir.why + "; a request may not name them"};
    return std::nullopt;
  };
  errno = 0;
  auto real = resolve(path);
  if (!real) {
    int err = errno;
    std::optional<std::string> end;
    if (!roots.empty() || !reserved.empty()) end = where_lookup_ends(path);
    if (!roots.empty() && (!end || !inside_roots(*end, roots))) return outside();
    if (end)
      if (auto refused = reserved_dir(*end)) return fail(std::move(*refused));
    if (err == ENOENT || err == ENOTDIR) return fail(Code::kNotFound, shown + " not found");
    if (err == ELOOP || err == ENAMETOOLONG)
      return fail(Code::kInvalidArgument, shown + " cannot be resolved: " + std::strerror(err));
    return fail_errno(shown + ": resolve", err);
  }
  if (!roots.empty() && !inside_roots(*real, roots)) return outside();
  if (auto refused = reserved_dir(*real)) return fail(std::move(*refused));
  struct stat st {};
  if (::stat(real->c_str(), &st) != 0) return fail_errno(shown + ": stat", errno);
  if (S_ISBLK(st.st_mode) && !roots.empty()) return *real;
  if (!S_ISREG(st.st_mode))
    return fail(
        Code::kInvalidArgument,
        shown + " is " + describe_type(st.st_mode) + ", not a regular file" +
            (S_ISBLK(st.st_mode) ? " (block devices only inside --image-root directories)" : ""));
  struct statfs fs {};
  if (::statfs(real->c_str(), &fs) != 0) return fail_errno(shown + ": statfs", errno);
  if (const char* name = kernel_interface_filesystem(static_cast<long>(fs.f_type)))
    return fail(Code::kInvalidArgument, shown + " is a " + name + " file, not a regular file");
  return *real;
}

namespace {

// The format an image of the chain opens in (see resolve_image_chain()). `top`: the spec's
// image with its recorded format; otherwise a backing file with the format its overlay records.
Result<model::DiskFormat> format_of(ImageMagic magic, bool top, model::DiskFormat recorded,
                                    const std::string& backing_format, const std::string& shown) {
  const bool qcow2 = magic == ImageMagic::kQcow2;
  if (top) {
    if (recorded == model::DiskFormat::kQcow2 && !qcow2)
      return fail(
          Code::kFailedPrecondition,
          shown + " was recorded as qcow2 when the VM was created but has no qcow2 header now");
    if (recorded != model::DiskFormat::kUnknown) return recorded;
    return qcow2 ? model::DiskFormat::kQcow2 : model::DiskFormat::kRaw;
  }
  if (backing_format == "raw") return model::DiskFormat::kRaw;
  if (backing_format == "qcow2" && !qcow2)
    return fail(Code::kInvalidArgument, shown + " is not a qcow2 image, as its overlay records");
  if (qcow2) return model::DiskFormat::kQcow2;
  if (magic != ImageMagic::kNone)
    return fail(Code::kInvalidArgument, shown + " is a " + std::string(magic_name(magic)) +
                                            " image: a backing file must be raw or qcow2");
  return model::DiskFormat::kRaw;
}

// A registry image's disk is feosd's own: the cached image (as create's admission checks it), or
// the VM's overlay over it. The overlay is written by the VM's qemu, so the backing file its header
// names is trusted only when it is a cached image: never another VM's disk or a file of the roots.
Status check_store_chain(const ImageChain& chain, const ReservedDirs& reserved) {
  auto cached_image = [&](const ImageFile& image) {
    for (const auto& dir : reserved) {
      auto cache = dir.image_cache ? resolve(dir.path) : std::nullopt;  // the chain's paths are resolved
      if (!cache) continue;
      const std::string blobs = *cache + "/blobs/sha256/";
      if (!image.path.starts_with(blobs)) continue;
      const std::string name = image.path.substr(blobs.size());
      return name.size() == 64 && name.find_first_not_of("0123456789abcdef") == std::string::npos &&
             image.format == model::DiskFormat::kRaw;
    }
    return false;
  };
  const bool overlay =
      chain.size() == 2 && chain[0].format == model::DiskFormat::kQcow2 && chain[0].data_file.empty();
  if ((chain.size() == 1 || overlay) && cached_image(chain.back())) return ok();
  std::string shape;
  for (const auto& image : chain) shape += (shape.empty() ? "" : " -> ") + quote_for_message(image.path);
  return fail(Code::kFailedPrecondition,
              std::string(model::field::kImageRef) +
                  ": the disk over a registry image must be one qcow2 overlay of an image in feosd's image "
                  "cache, but its chain is " + shape +
                  " (its header was changed after create; delete the VM and create it again)");
}

}  // namespace

Result<ImageChain> resolve_image_chain(const std::string& path, model::DiskFormat format,
                                       const std::string& field, const FileRoots& roots,
                                       const ReservedDirs& reserved) {
  ImageChain chain;
  std::string named = path;  // as named: a relative backing name is relative to its directory
  std::string what = field;
  std::string backing_format;  // what the overlay's header records for `named`
  while (true) {
    if (chain.size() == kMaxChainImages)
      return fail(Code::kInvalidArgument, field + ": backing chain longer than " +
                                              std::to_string(kMaxChainImages) + " images");
    const std::string shown = what + ": " + quote_for_message(named);
    auto real = check_request_file(named, what, roots, reserved);
    if (!real) return fail(real.error());
    for (const auto& earlier : chain)
      if (earlier.path == *real)
        return fail(Code::kInvalidArgument, shown + " is already in the chain (a loop)");
    auto head = read_image_head(*real);
    if (!head) return fail(head.error().context(what));
    auto opened =
        format_of(detect_image_magic(*head), chain.empty(), format, backing_format, shown);
    if (!opened) return fail(opened.error());
    ImageFile image{*real, *opened, ""};
    if (image.format != model::DiskFormat::kQcow2) {
      chain.push_back(std::move(image));
      return chain;
    }
    auto header = parse_qcow2_header(*head);
    if (!header) return fail(header.error().context(shown));
    if (!header->data_file.empty()) {
      auto data = check_request_file(
          header->data_file, field + " (data file of " + quote_for_message(named) + ")", roots,
          reserved);
      if (!data) return fail(data.error());
      image.data_file = std::move(*data);
    }
    chain.push_back(std::move(image));
    if (header->backing_file.empty()) return chain;
    std::string next = header->backing_file;
    if (next.front() != '/') next = named.substr(0, named.rfind('/') + 1) + next;
    what = field + " (backing file of " + quote_for_message(named) + ")";
    backing_format = header->backing_format;
    named = std::move(next);
  }
}

Result<CheckedFiles> check_spec_files(const model::VmSpec& spec, const FileRoots& roots,
                                      const ReservedDirs& reserved) {
  CheckedFiles out{spec, {}, {}, {}};
  // The chain of one image; its format is recorded unless it was already.
  auto chain_of = [&](const std::string& path, const std::string& field, model::DiskFormat& format,
                      const ReservedDirs& refused) -> Result<ImageChain> {
    auto chain = resolve_image_chain(path, format, field, roots, refused);
    if (chain && format == model::DiskFormat::kUnknown) format = chain->front().format;
    return chain;
  };
  if (!out.spec.image_path.empty()) {
    // A registry image's disk is the VM's own overlay in the cache, over the cached image.
    const bool from_store = model::names_registry_image(out.spec.image_ref);
    auto chain = chain_of(out.spec.image_path, model::field::kImageRef, out.spec.image_format,
                          from_store ? ReservedDirs{} : reserved);
    if (!chain) return fail(chain.error());
    if (from_store) FEOS_TRY(check_store_chain(*chain, reserved));
    out.images.root = std::move(*chain);
  }
  for (size_t i = 0; i < out.spec.disks.size(); ++i) {
    auto& disk = out.spec.disks[i];
    auto chain = chain_of(disk.path, model::field::disk(i, "path"), disk.format, reserved);
    if (!chain) return fail(chain.error());
    out.images.disks.push_back(std::move(*chain));
  }
  auto boot_file = [&](const std::string& path, const std::string& field,
                       std::string& resolved) -> Status {
    if (path.empty()) return ok();
    auto real = check_request_file(path, field, roots, reserved);
    if (!real) return fail(real.error());
    resolved = std::move(*real);
    return ok();
  };
  FEOS_TRY(boot_file(spec.boot.kernel, model::field::kBootKernel, out.kernel));
  FEOS_TRY(boot_file(spec.boot.initramfs, model::field::kBootInitramfs, out.initramfs));
  return out;
}

}  // namespace feos::vmm::qemu
