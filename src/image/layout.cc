#include "image/layout.h"

#include <sys/utsname.h>

#include <array>
#include <nlohmann/json.hpp>

#include "image/reference.h"

namespace feos::image {
namespace {

using nlohmann::json;

constexpr std::string_view kRootfs = "application/vnd.ironcore.image.rootfs";
constexpr std::string_view kLegacyRootfs = "application/vnd.ironcore.image.rootfs.v1alpha1.rootfs";
constexpr std::array<std::string_view, 2> kConfigs = {"application/vnd.ironcore.image.config.v1+json",
                                                      "application/vnd.ironcore.image.config.v1alpha1+json"};
// Layers an IronCore image may carry besides its rootfs (not used for a disk, not fetched).
constexpr std::array<std::string_view, 9> kOtherLayers = {
    "application/vnd.ironcore.image.initramfs",  "application/vnd.ironcore.image.kernel",
    "application/vnd.ironcore.image.squashfs",   "application/vnd.ironcore.image.uki",
    "application/vnd.ironcore.image.iso",        "application/vnd.ironcore.image.initramfs.v1alpha1.initramfs",
    "application/vnd.ironcore.image.vmlinuz.v1alpha1.vmlinuz",
    "application/vnd.ironcore.image.squashfs.v1alpha1.squashfs", "application/vnd.ironcore.image.cmdline"};
constexpr std::array<std::string_view, 3> kManifests = {"application/vnd.oci.image.manifest.v1+json",
                                                        "application/vnd.ironcore.image.artifacts.v1+json",
                                                        "application/vnd.docker.distribution.manifest.v2+json"};
constexpr std::array<std::string_view, 2> kIndexes = {"application/vnd.oci.image.index.v1+json",
                                                      "application/vnd.docker.distribution.manifest.list.v2+json"};

template <size_t N>
bool one_of(const std::array<std::string_view, N>& list, std::string_view value) {
  for (auto item : list)
    if (item == value) return true;
  return false;
}

Error refused(const std::string& what) { return Error{Code::kFailedPrecondition, what}; }

std::string string_at(const json& object, const char* key) {
  return object.is_object() && object.contains(key) && object[key].is_string() ? object[key].get<std::string>() : "";
}

Result<Descriptor> descriptor(const json& value, const std::string& where) {
  Descriptor out;
  out.media_type = string_at(value, "mediaType");
  out.digest = string_at(value, "digest");
  if (!is_sha256_digest(out.digest))
    return fail(refused(where + ": digest " + quote_for_message(out.digest) + " is not sha256: and 64 hex digits"));
  if (!value.contains("size") || !value["size"].is_number_unsigned())
    return fail(refused(where + ": no size"));
  out.size = value["size"].get<uint64_t>();
  return out;
}

Result<ManifestStep> read_index(const json& body, const std::string& architecture) {
  if (!body.contains("manifests") || !body["manifests"].is_array())
    return fail(refused("image index without manifests"));
  std::optional<Descriptor> pick;
  bool pick_virtualization = false;
  for (size_t i = 0; i < body["manifests"].size(); ++i) {
    const json& entry = body["manifests"][i];
    const json platform = entry.is_object() && entry.contains("platform") ? entry["platform"] : json::object();
    if (string_at(platform, "architecture") != architecture || string_at(platform, "os") != "linux") continue;
    FEOS_ASSIGN_OR_RETURN(Descriptor d, descriptor(entry, "image index entry " + std::to_string(i)));
    const json annotations = entry.contains("annotations") ? entry["annotations"] : json::object();
    const bool virtualization = string_at(annotations, "variant") == "virtualization";
    if (!pick || (virtualization && !pick_virtualization)) {
      pick = d;
      pick_virtualization = virtualization;
    }
  }
  if (!pick) return fail(refused("image index has no entry for linux/" + architecture));
  return ManifestStep{true, *pick};
}

}  // namespace

std::string host_architecture() {
  utsname name{};
  uname(&name);
  std::string machine = name.machine;
  if (machine == "x86_64") return "amd64";
  if (machine == "aarch64") return "arm64";
  return machine;
}

Result<ManifestStep> read_manifest(const std::string& media_type, const std::string& text,
                                   const std::string& architecture) {
  json body = json::parse(text, nullptr, false);
  if (!body.is_object()) return fail(refused("the manifest is not a JSON object"));
  std::string type = media_type;
  // Registries answer with the type the manifest was pushed with; a generic one defers to the body.
  if (type.empty() || type == "application/json" || type == "application/octet-stream")
    type = string_at(body, "mediaType");
  // mediaType is optional in a manifest (and a cached one has no Content-Type): its keys tell.
  if (type.empty())
    type = body.contains("manifests") ? std::string(kIndexes[0]) : std::string(kManifests[0]);
  if (one_of(kIndexes, type)) return read_index(body, architecture);
  if (!one_of(kManifests, type))
    return fail(refused("unknown manifest media type " + quote_for_message(type)));
  if (!body.contains("config")) return fail(refused("manifest without config"));
  const std::string config = string_at(body["config"], "mediaType");
  if (!one_of(kConfigs, config))
    return fail(refused("unknown config media type " + quote_for_message(config) +
                        " (not a FeOS / IronCore VM image)"));
  if (!body.contains("layers") || !body["layers"].is_array()) return fail(refused("manifest without layers"));
  std::optional<Descriptor> rootfs;
  for (size_t i = 0; i < body["layers"].size(); ++i) {
    FEOS_ASSIGN_OR_RETURN(Descriptor layer, descriptor(body["layers"][i], "layer " + std::to_string(i)));
    if (layer.media_type == kRootfs || (layer.media_type == kLegacyRootfs && !rootfs)) rootfs = layer;
    else if (layer.media_type != kLegacyRootfs && !one_of(kOtherLayers, layer.media_type))
      return fail(refused("layer " + std::to_string(i) + " has unknown media type " +
                          quote_for_message(layer.media_type)));
  }
  if (!rootfs)
    return fail(refused("missing layer: no rootfs layer (" + std::string(kLegacyRootfs) + " or " +
                        std::string(kRootfs) + ")"));
  return ManifestStep{false, *rootfs};
}

}  // namespace feos::image
