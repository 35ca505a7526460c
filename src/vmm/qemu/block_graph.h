#pragma once
// The block graph qemu is given for a VM's disks: every image file feosd read and checked
// (check_spec_files(), request_files.h), linked explicitly with -blockdev, so that qemu follows
// nothing an image's metadata names: no backing file name, no external data file name, no format
// probe. Rendering it is pure.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/vm.h"

namespace feos::vmm::qemu {

// One image file of a disk.
struct ImageFile {
  std::string path;  // resolved (no symbolic link left): qemu opens exactly this file
  model::DiskFormat format = model::DiskFormat::kRaw;  // kRaw or kQcow2
  std::string data_file;  // qcow2: its external data file, resolved; "" when it has none
};

// One disk's images, top (the file the spec names) first; a qcow2 image's backing file is the
// next image, and the last image has none.
using ImageChain = std::vector<ImageFile>;

struct BlockGraph {
  ImageChain root;                // spec.image_path's; empty when the spec has no root image
  std::vector<ImageChain> disks;  // spec.disks[i]'s
};

// The values of the -blockdev options for `chain`, in the order qemu needs them (a node before
// the nodes that refer to it: the bottom of the chain first). The top image's format node is
// `node` (the device's drive=), image k > 0 of the chain `<node>-b<k>`; an image's file node is
// `<its name>-file`, its data file's `<its name>-data`. File nodes (driver=file) use the key=value
// syntax, since a filename may hold bytes JSON cannot carry; format nodes are JSON, since only
// JSON can write `"backing": null` (the bottom image), and name their file, data file and backing
// nodes. The top image and its data file are read-only when `readonly`; the images below always.
// Precondition: `chain` is not empty.
// The same nodes as QMP blockdev-add arguments, in the same order (a hot-plugged disk).
std::vector<nlohmann::ordered_json> blockdev_nodes(const ImageChain& chain, const std::string& node,
                                                   bool readonly);
std::vector<std::string> blockdev_values(const ImageChain& chain, const std::string& node,
                                         bool readonly);

}  // namespace feos::vmm::qemu
