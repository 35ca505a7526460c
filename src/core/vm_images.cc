// The VM manager's side of registry images (image::ImageStore): the reference checked at create,
// the pull in create's background part with its progress events, each VM's own disk over the
// cached image, and the event that says what was pulled.
#include <chrono>

#include "common/log.h"
#include "core/vm_config.h"
#include "core/vm_manager.h"
#include "core/vm_manager_detail.h"
#include "model/field_path.h"
#include "model/limits.h"

namespace feos::core {
namespace {

// A pull in progress reports at most this often.
constexpr std::chrono::seconds kProgressEvery{2};

}  // namespace

Result<model::VmSpec> VmManager::normalize_with_image(model::VmSpec spec) const {
  // An over-long reference is left to normalize_spec(), which refuses it with the limit.
  if (!images_ || !model::names_registry_image(spec.image_ref) || spec.image_ref.size() > model::kMaxImageRef)
    return normalize_spec(std::move(spec));
  if (auto checked = images_->check(spec.image_ref); !checked)
    return fail(checked.error().context(std::string(model::field::kImageRef)));
  spec.image_path.clear();  // the pull's, in create's background part
  return spec;
}

Status VmManager::pull_image(const std::string& id, model::VmSpec& spec, const std::atomic<bool>& cancel) {
  auto emit = [&](std::string text) {
    std::lock_guard lock(mutex_);
    auto it = vms_.find(id);
    if (it == vms_.end()) return;
    if (auto emitted = emit_locked(it->second, "image", std::move(text)); !emitted)
      log::get("vm")->error("vm={} event not stored: {}", id, emitted.error().to_string());
  };
  emit("pulling image " + spec.image_ref);
  auto last = std::chrono::steady_clock::now();
  image::PullWatch watch;
  watch.cancel = &cancel;
  watch.progress = [&](uint64_t received, uint64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last < kProgressEvery || received == total) return;
    last = now;
    emit("pulling image " + spec.image_ref + ": " + std::to_string(received) + " of " + std::to_string(total) +
         " bytes (" + std::to_string(total ? received * 100 / total : 0) + "%)");
  };
  auto pulled = images_->pull(spec.image_ref, watch);
  if (!pulled) return fail(pulled.error().context("image pull failed: " + std::string(model::field::kImageRef)));
  emit(detail::describe_pull(*pulled));
  // The pulled disk goes through the hypervisor's checks as a local image_ref does at CreateVm.
  spec.image_path = pulled->disk_path;
  auto admitted = hypervisor_.admit(spec);
  if (!admitted) return fail(admitted.error());
  spec = std::move(*admitted);
  return attach_image(id, *pulled, spec);
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
