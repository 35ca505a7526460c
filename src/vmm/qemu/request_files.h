#pragma once
// The host files a VM spec names (root image, disks, kernel, initramfs) and every file those
// images name in turn (qcow2 backing files and external data files), checked on the real
// filesystem when the VM is created (formats are recorded then) and again right before qemu
// starts (a file may have changed meanwhile). qemu runs with root's reach by default, so a request
// must not be able to make it open just any host file: qemu is given exactly the files checked
// here, by their resolved paths, as an explicit block graph (block_graph.h).
#include <string>
#include <vector>

#include "common/error.h"
#include "model/vm.h"
#include "vmm/qemu/block_graph.h"

namespace feos::vmm::qemu {

// Where request files may live (--image-root). Empty: anywhere.
using FileRoots = std::vector<std::string>;

// A directory of feosd's own files that requests may not name, inside the roots or not; `what`
// names it and `why` says what it holds, in the refusal.
struct ReservedDir {
  std::string path;
  std::string what;
  std::string why;
  bool image_cache = false;  // feosd's image cache: a registry image's disk lies only here
};
using ReservedDirs = std::vector<ReservedDir>;

// What feosd reserves of its state directory: the image cache (<state dir>/images), whose images
// every VM of an image shares read-only and whose disks are each one VM's own (only feosd puts a
// VM's root image there: a registry image's disk), then the rest: the database, the lock and the
// VMs' runtime files (UEFI variable stores, console logs, ignition). A request naming feosd.db as
// a disk would let a guest write the daemon's records.
ReservedDirs feosd_reserved_dirs(const std::string& state_dir);

// Returns `path` resolved through every symbolic link. It must be absolute and resolve to a
// regular file, or to a block device inside a root, that is not on a kernel interface filesystem
// (procfs, sysfs, debugfs, ...: /proc/self/mem is a "regular file"); with `roots`, the resolved
// path must lie inside one of them. Messages start with "<field>: " and show `path` only as given
// (quote_for_message), never what it resolves to.
// Errors, in this order:
//  - with `roots`: PERMISSION_DENIED "<field>: '<path>' is not a file inside the image roots
//    (<roots>)" for every path whose lookup does not end inside a root, whether it exists or not
//    (a missing file counts as inside only when the lookup, dangling symbolic links followed, stops
//    at a directory inside a root): one answer that tells nothing about the rest of the host;
//  - INVALID_ARGUMENT "<field>: '<path>' is inside <what> (<dir>): <why>; ..." for a path whose
//    resolved target (or, when it does not exist, where its lookup ends) lies inside one of the
//    `reserved` directories (the first that holds it): realpath-resolved, so no symbolic link
//    leads around it;
//  - NOT_FOUND "<field>: '<path>' not found";
//  - INVALID_ARGUMENT for a relative path, a symbolic link loop, a directory, character device,
//    FIFO, socket, a block device without roots, or a kernel interface file;
//  - INTERNAL with the errno text for other failures.
Result<std::string> check_request_file(const std::string& path, const std::string& field,
                                       const FileRoots& roots, const ReservedDirs& reserved = {});

// Longest image chain accepted: far beyond real use; it stops loops that resolve differently.
inline constexpr size_t kMaxChainImages = 16;

// The image chain of one disk (block_graph.h). The top image is `path`, opened in `format` as
// recorded at create; kUnknown (not recorded yet): qcow2 when it has the qcow2 magic, else raw.
// A raw image ends the chain, whatever its bytes look like. A qcow2 header is read with
// parse_qcow2_header(); its backing file (a relative name is relative to the directory of the
// image as named) is opened in the backing format the header records, or, when it records none,
// as qcow2 when it has the qcow2 magic and as raw when it has no magic at all; its external data
// file is checked as a plain file. Every file goes through check_request_file() (with `reserved`).
// Errors: check_request_file()'s, the field of a backing file reading "<field> (backing file of
// '<image>')" and of a data file "<field> (data file of '<image>')"; read_image_head()'s;
// INVALID_ARGUMENT "<field>: '<image>': qcow2 ..." for a header parse_qcow2_header() refuses;
// FAILED_PRECONDITION when the top image was recorded as qcow2 but has no qcow2 header now;
// INVALID_ARGUMENT when a backing file recorded as qcow2 is not one, when a backing file without
// a recorded format has the magic of another format (VMDK, VDI, VHDX, ...: feosd reads only raw
// and qcow2, and those formats can name files of their own), when the chain comes back to one of
// its images, or when it is longer than kMaxChainImages.
Result<ImageChain> resolve_image_chain(const std::string& path, model::DiskFormat format,
                                       const std::string& field, const FileRoots& roots,
                                       const ReservedDirs& reserved = {});

// Every file of a spec, checked.
struct CheckedFiles {
  model::VmSpec spec;     // the spec, each image's format recorded (one recorded already is kept)
  BlockGraph images;      // the disks' image chains: all qemu is given of the disks
  std::string kernel;     // boot.kernel resolved; "" when none
  std::string initramfs;  // boot.initramfs resolved; "" when none
};

// resolve_image_chain() for the root image ("config.image_ref") and each disk
// ("config.disks[i].path"), then check_request_file() for the kernel and initramfs. No file of
// them may lie in `reserved`, except those of the root image when the spec's image_ref names a
// registry image (model::names_registry_image(): feosd's image store made image_path, the VM's
// own disk over a cached image, and nothing of the request's). Errors: theirs.
Result<CheckedFiles> check_spec_files(const model::VmSpec& spec, const FileRoots& roots,
                                      const ReservedDirs& reserved = {});

}  // namespace feos::vmm::qemu
