// The VM manager's side of registry images (image::ImageStore): pulling at create, each VM's own
// disk over the cached image, and the event that says what was pulled.
#include "core/vm_config.h"
#include "core/vm_manager.h"
#include "core/vm_manager_detail.h"
#include "model/field_path.h"
#include "model/limits.h"

namespace feos::core {

Result<model::VmSpec> VmManager::normalize_with_image(model::VmSpec spec,
                                                      std::optional<image::PulledImage>& pulled) const {
  // An over-long reference is left to normalize_spec(), which refuses it with the limit.
  if (!images_ || !model::names_registry_image(spec.image_ref) || spec.image_ref.size() > model::kMaxImageRef)
    return normalize_spec(std::move(spec));
  auto got = images_->pull(spec.image_ref);
  if (!got) return fail(got.error().context(std::string(model::field::kImageRef)));
  spec.image_path = got->disk_path;
  pulled = std::move(*got);
  return spec;
}

Status VmManager::attach_image(const std::string& vm_id, const image::PulledImage& image, model::VmSpec& spec) {
  auto disk = images_->attach(vm_id, image);
  if (!disk) return fail(disk.error().context(std::string(model::field::kImageRef)));
  spec.image_path = std::move(*disk);
  spec.image_format = model::DiskFormat::kQcow2;
  return ok();
}

std::string detail::describe_pull(const image::PulledImage& image) {
  const std::string pulled = image.bytes_pulled == 0
                                 ? "from the cache, 0 bytes pulled"
                                 : std::to_string(image.bytes_pulled) + " bytes pulled from " + image.registry_url;
  return "image " + image.reference + " (" + image.manifest_digest + "): disk " + std::to_string(image.bytes_total) +
         " bytes, " + pulled;
}

}  // namespace feos::core
