#pragma once
// Which blob of a FeOS / IronCore VM image becomes the VM's disk. Two layouts are read:
//  - FeOS's (ironcore-image v1alpha1): an OCI image manifest, config
//    application/vnd.ironcore.image.config.v1alpha1+json, the disk in the layer
//    application/vnd.ironcore.image.rootfs.v1alpha1.rootfs (beside vmlinuz, initramfs, squashfs);
//  - IronCore's newer one (ironcore-image v1): config application/vnd.ironcore.image.config.v1+json,
//    the disk in application/vnd.ironcore.image.rootfs (beside kernel, initramfs, squashfs, uki,
//    iso), its manifests also of type application/vnd.ironcore.image.artifacts.v1+json, possibly
//    behind an OCI image index with one entry per architecture.
// As ironcore-image's own reader, an image with a layer of any other type is refused: it is not a
// VM image feosd understands. Every error here is FAILED_PRECONDITION naming the media type.
#include <cstdint>
#include <string>

#include "common/error.h"

namespace feos::image {

struct Descriptor {
  std::string media_type;
  std::string digest;  // sha256:...
  uint64_t size = 0;
};

// What a manifest says to do next.
struct ManifestStep {
  bool is_index = false;
  Descriptor next;  // is_index: the manifest for this host's architecture; else the disk layer
};

// Reads a manifest of `media_type` (the registry's Content-Type; an empty one is taken from the
// body's mediaType). An index yields the entry for linux and `architecture` (OCI's names: amd64,
// arm64), preferring one annotated variant=virtualization; a manifest yields its rootfs layer
// (the newer type when both are there). Errors: FAILED_PRECONDITION for an unknown manifest,
// config or layer media type, no rootfs layer, no entry for the architecture, or JSON that is not
// a manifest.
Result<ManifestStep> read_manifest(const std::string& media_type, const std::string& body,
                                   const std::string& architecture);

// This host's architecture in OCI's words ("amd64", "arm64").
std::string host_architecture();

}  // namespace feos::image
