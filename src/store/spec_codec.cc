#include "store/spec_codec.h"

#include <cstdint>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/strict_json.h"
#include "store/topology_codec.h"

namespace feos::store {
namespace {

using nlohmann::json;
using strict_json::ObjectReader;

// Encoders: each unpacks its struct with a structured binding that names every member, so a
// member added to the model without being added here is a compile error.

json cpus_to_json(const model::CpuSpec& cpus) {
  const auto& [boot_vcpus, max_vcpus] = cpus;
  return json::object({{"boot_vcpus", boot_vcpus}, {"max_vcpus", max_vcpus}});
}

json memory_to_json(const model::MemorySpec& memory) {
  const auto& [size_mib, hugepages, hugepage_size] = memory;
  json out = json::object({{"size_mib", size_mib}, {"hugepages", hugepages}});
  // Only when named: records of VMs without it read the same as before the field existed.
  if (hugepage_size != model::HugepageSize::kHostDefault) out["hugepage_size"] = model::hugepage_size_name(hugepage_size);
  return out;
}

json boot_to_json(const model::BootSpec& boot) {
  const auto& [kernel, initramfs, cmdline] = boot;
  return json::object({{"kernel", kernel}, {"initramfs", initramfs}, {"cmdline", cmdline}});
}

json disk_to_json(const model::DiskSpec& disk) {
  const auto& [device_id, path, readonly, format] = disk;
  return json::object({{"device_id", device_id},
                       {"path", path},
                       {"readonly", readonly},
                       {"format", model::disk_format_name(format)}});
}

json net_to_json(const model::NetSpec& net) {
  const auto& [device_id, tap_name, mac, tap_created] = net;
  return json::object({{"device_id", device_id}, {"tap_name", tap_name}, {"mac", mac}, {"tap_created", tap_created}});
}

const char* rombar_name(model::RomBar rombar) {
  switch (rombar) {
    case model::RomBar::kDefault: return "default";
    case model::RomBar::kOn: return "on";
    case model::RomBar::kOff: return "off";
  }
  return "default";  // unreachable: every enumerator is listed above
}

json gpu_spec_to_json(const model::GpuSpec& gpu) {
  const auto& [address, rombar, boot_vga] = gpu;
  return json::object(
      {{"address", address.to_string()}, {"rombar", rombar_name(rombar)}, {"boot_vga", boot_vga}});
}

json bar_to_json(const model::Bar& bar) {
  const auto& [index, size, is_64bit, prefetchable, is_io] = bar;
  return json::object({{"index", index},
                       {"size", size},
                       {"is_64bit", is_64bit},
                       {"prefetchable", prefetchable},
                       {"is_io", is_io}});
}

json function_to_json(const model::PassthroughFunction& function) {
  const auto& [address, id, class_code, iommu_group, original_driver, bars] = function;
  json bar_list = json::array();
  for (const auto& bar : bars) bar_list.push_back(bar_to_json(bar));
  return json::object({{"address", address.to_string()},
                       {"id", id},
                       {"class_code", class_code},
                       {"iommu_group", iommu_group ? iommu_group->to_string() : std::string()},
                       {"original_driver", original_driver},
                       {"bars", std::move(bar_list)}});
}

json assigned_gpu_to_json(const model::AssignedGpu& gpu) {
  const auto& [request, functions, group_peers, numa_node, fabric, peer_path] = gpu;
  auto list_of = [](const std::vector<model::PassthroughFunction>& list) {
    json out = json::array();
    for (const auto& function : list) out.push_back(function_to_json(function));
    return out;
  };
  json out = json::object({{"request", gpu_spec_to_json(request)},
                           {"functions", list_of(functions)},
                           {"group_peers", list_of(group_peers)},
                           {"numa_node", numa_node}});
  // Only a VM with a whole HGX board has one: other records stay as before.
  if (!fabric.empty()) out["fabric"] = list_of(fabric);
  // Only GPUs whose place was read have one: records without it stay as before.
  if (peer_path != model::GpuPeerPath{}) out["peer_path"] = detail::peer_path_to_json(peer_path);
  return out;
}

// Decoders: each binds every member too (the same compile error), reads each key once through
// the strict reader and then finish()es, so an unknown key is an error.

// An IOMMU group stored as its number's text, "" for none. Errors: "<path>: invalid IOMMU group ...".
Result<std::optional<pci::IommuGroup>> group_from_json(ObjectReader& reader, std::string_view key) {
  FEOS_ASSIGN_OR_RETURN(const std::string text, reader.string(key));
  if (text.empty()) return std::optional<pci::IommuGroup>();
  auto group = pci::IommuGroup::parse(text);
  if (!group) return fail(group.error().context(reader.path_of(key)));
  return std::optional<pci::IommuGroup>(*group);
}

// A PCI address stored as its canonical text. Errors: "<path>: invalid PCI address ...".
Result<pci::Address> address_from_json(ObjectReader& reader, std::string_view key) {
  FEOS_ASSIGN_OR_RETURN(const std::string text, reader.string(key));
  auto address = pci::Address::parse(text);
  if (!address) return fail(address.error().context(reader.path_of(key)));
  return *address;
}

Result<model::CpuSpec> cpus_from_json(ObjectReader reader) {
  model::CpuSpec cpus;
  auto& [boot_vcpus, max_vcpus] = cpus;
  FEOS_ASSIGN_OR_RETURN(boot_vcpus, reader.unsigned_integer<uint32_t>("boot_vcpus"));
  FEOS_ASSIGN_OR_RETURN(max_vcpus, reader.unsigned_integer<uint32_t>("max_vcpus"));
  FEOS_TRY(reader.finish());
  return cpus;
}

Result<model::MemorySpec> memory_from_json(ObjectReader reader) {
  model::MemorySpec memory;
  auto& [size_mib, hugepages, hugepage_size] = memory;
  FEOS_ASSIGN_OR_RETURN(size_mib, reader.unsigned_integer<uint64_t>("size_mib"));
  FEOS_ASSIGN_OR_RETURN(hugepages, reader.boolean("hugepages"));
  if (reader.has("hugepage_size")) {
    FEOS_ASSIGN_OR_RETURN(std::string name, reader.string("hugepage_size"));
    if (name == model::hugepage_size_name(model::HugepageSize::k2M)) hugepage_size = model::HugepageSize::k2M;
    else if (name == model::hugepage_size_name(model::HugepageSize::k1G)) hugepage_size = model::HugepageSize::k1G;
    else return fail(Code::kInvalidArgument, reader.path_of("hugepage_size") + ": unknown size \"" + name + "\" (2M or 1G)");
  }
  FEOS_TRY(reader.finish());
  return memory;
}

Result<model::BootSpec> boot_from_json(ObjectReader reader) {
  model::BootSpec boot;
  auto& [kernel, initramfs, cmdline] = boot;
  FEOS_ASSIGN_OR_RETURN(kernel, reader.string("kernel"));
  FEOS_ASSIGN_OR_RETURN(initramfs, reader.string("initramfs"));
  FEOS_ASSIGN_OR_RETURN(cmdline, reader.string("cmdline"));
  FEOS_TRY(reader.finish());
  return boot;
}

// A disk format: "raw", "qcow2", or "" (not recorded). The key is absent in records written
// before formats were recorded (schema 3 and older): those read as not recorded.
Result<model::DiskFormat> disk_format_from_json(ObjectReader& reader, std::string_view key) {
  if (!reader.has(key)) return model::DiskFormat::kUnknown;
  FEOS_ASSIGN_OR_RETURN(const std::string name, reader.string(key));
  for (auto format : {model::DiskFormat::kUnknown, model::DiskFormat::kRaw, model::DiskFormat::kQcow2}) {
    if (name == model::disk_format_name(format)) return format;
  }
  return fail(Code::kInvalidArgument,
              reader.path_of(key) + ": unknown disk format \"" + name + "\" (raw, qcow2 or \"\")");
}

json firmware_to_json(const model::FirmwareSpec& firmware) {
  const auto& [kind, secure_boot] = firmware;
  return json::object({{"kind", model::firmware_name(kind)}, {"secure_boot", secure_boot}});
}

Result<model::FirmwareSpec> firmware_from_json(ObjectReader reader) {
  model::FirmwareSpec firmware;
  auto& [kind, secure_boot] = firmware;
  FEOS_ASSIGN_OR_RETURN(const std::string name, reader.string("kind"));
  if (name == model::firmware_name(model::FirmwareKind::kUefi))
    kind = model::FirmwareKind::kUefi;
  else if (name != model::firmware_name(model::FirmwareKind::kBios))
    return fail(Code::kInvalidArgument, reader.path_of("kind") + ": unknown firmware \"" + name + "\" (bios or uefi)");
  FEOS_ASSIGN_OR_RETURN(secure_boot, reader.boolean("secure_boot"));
  FEOS_TRY(reader.finish());
  return firmware;
}

json gpu_count_to_json(const model::GpuCount& by_count) {
  const auto& [count, gpu_model, p2p] = by_count;
  return json::object({{"count", count}, {"model", gpu_model}, {"p2p", p2p}});
}

Result<model::GpuCount> gpu_count_from_json(ObjectReader reader) {
  model::GpuCount by_count;
  auto& [count, gpu_model, p2p] = by_count;
  FEOS_ASSIGN_OR_RETURN(count, reader.unsigned_integer<uint32_t>("count"));
  FEOS_ASSIGN_OR_RETURN(gpu_model, reader.string("model"));
  FEOS_ASSIGN_OR_RETURN(p2p, reader.boolean("p2p"));
  FEOS_TRY(reader.finish());
  return by_count;
}

Result<model::DiskSpec> disk_from_json(ObjectReader reader) {
  model::DiskSpec disk;
  auto& [device_id, path, readonly, format] = disk;
  FEOS_ASSIGN_OR_RETURN(device_id, reader.string("device_id"));
  FEOS_ASSIGN_OR_RETURN(path, reader.string("path"));
  FEOS_ASSIGN_OR_RETURN(readonly, reader.boolean("readonly"));
  FEOS_ASSIGN_OR_RETURN(format, disk_format_from_json(reader, "format"));
  FEOS_TRY(reader.finish());
  return disk;
}

Result<model::NetSpec> net_from_json(ObjectReader reader) {
  model::NetSpec net;
  auto& [device_id, tap_name, mac, tap_created] = net;
  FEOS_ASSIGN_OR_RETURN(device_id, reader.string("device_id"));
  FEOS_ASSIGN_OR_RETURN(tap_name, reader.string("tap_name"));
  FEOS_ASSIGN_OR_RETURN(mac, reader.string("mac"));
  // Records stored before feosd removed the taps it created have none: such a tap stays.
  if (reader.has("tap_created")) {
    FEOS_ASSIGN_OR_RETURN(tap_created, reader.boolean("tap_created"));
  }
  FEOS_TRY(reader.finish());
  return net;
}

Result<model::RomBar> rombar_from_json(ObjectReader& reader) {
  FEOS_ASSIGN_OR_RETURN(const std::string name, reader.string("rombar"));
  for (model::RomBar value : {model::RomBar::kDefault, model::RomBar::kOn, model::RomBar::kOff}) {
    if (name == rombar_name(value)) return value;
  }
  return fail(Code::kInvalidArgument, reader.path_of("rombar") +
                                          ": expected \"default\", \"on\" or \"off\", got \"" +
                                          name + "\"");
}

Result<model::GpuSpec> gpu_spec_from_json(ObjectReader reader) {
  model::GpuSpec gpu;
  auto& [address, rombar, boot_vga] = gpu;
  FEOS_ASSIGN_OR_RETURN(address, address_from_json(reader, "address"));
  FEOS_ASSIGN_OR_RETURN(rombar, rombar_from_json(reader));
  FEOS_ASSIGN_OR_RETURN(boot_vga, reader.boolean("boot_vga"));
  FEOS_TRY(reader.finish());
  return gpu;
}

Result<model::Bar> bar_from_json(ObjectReader reader) {
  model::Bar bar;
  auto& [index, size, is_64bit, prefetchable, is_io] = bar;
  FEOS_ASSIGN_OR_RETURN(index, reader.signed_integer<int>("index"));
  FEOS_ASSIGN_OR_RETURN(size, reader.unsigned_integer<uint64_t>("size"));
  FEOS_ASSIGN_OR_RETURN(is_64bit, reader.boolean("is_64bit"));
  FEOS_ASSIGN_OR_RETURN(prefetchable, reader.boolean("prefetchable"));
  FEOS_ASSIGN_OR_RETURN(is_io, reader.boolean("is_io"));
  FEOS_TRY(reader.finish());
  return bar;
}

Result<model::PassthroughFunction> function_from_json(ObjectReader reader) {
  model::PassthroughFunction function;
  auto& [address, id, class_code, iommu_group, original_driver, bars] = function;
  FEOS_ASSIGN_OR_RETURN(address, address_from_json(reader, "address"));
  FEOS_ASSIGN_OR_RETURN(id, reader.string("id"));
  FEOS_ASSIGN_OR_RETURN(class_code, reader.unsigned_integer<uint32_t>("class_code"));
  FEOS_ASSIGN_OR_RETURN(iommu_group, group_from_json(reader, "iommu_group"));
  FEOS_ASSIGN_OR_RETURN(original_driver, reader.string("original_driver"));
  FEOS_ASSIGN_OR_RETURN(bars, reader.objects<model::Bar>("bars", bar_from_json));
  FEOS_TRY(reader.finish());
  return function;
}

Result<model::AssignedGpu> assigned_gpu_from_json(ObjectReader reader) {
  model::AssignedGpu gpu;
  auto& [request, functions, group_peers, numa_node, fabric, peer_path] = gpu;
  FEOS_ASSIGN_OR_RETURN(request, reader.object<model::GpuSpec>("request", gpu_spec_from_json));
  FEOS_ASSIGN_OR_RETURN(functions, reader.objects<model::PassthroughFunction>(
                                       "functions", function_from_json));
  FEOS_ASSIGN_OR_RETURN(group_peers, reader.objects<model::PassthroughFunction>(
                                         "group_peers", function_from_json));
  FEOS_ASSIGN_OR_RETURN(numa_node, reader.signed_integer<int>("numa_node"));
  // Absent in records written before NVSwitch fabrics (and in every record without one).
  if (reader.has("fabric")) {
    FEOS_ASSIGN_OR_RETURN(fabric, reader.objects<model::PassthroughFunction>("fabric", function_from_json));
  }
  // Absent in records written before GPUDirect cliques: no place known, so no clique.
  if (reader.has("peer_path")) {
    FEOS_ASSIGN_OR_RETURN(peer_path, reader.object<model::GpuPeerPath>("peer_path", detail::peer_path_from_json));
  }
  FEOS_TRY(reader.finish());
  return gpu;
}

}  // namespace

json spec_to_json(const model::VmSpec& spec) {
  const auto& [cpus, memory, image_ref, image_path, image_format, disks, nets, ignition, boot,
               gpus, firmware, gpu_count, gpu_p2p, guest_numa] = spec;
  json gpu_list = json::array();
  for (const auto& gpu : gpus) gpu_list.push_back(gpu_spec_to_json(gpu));
  json disk_list = json::array();
  for (const auto& disk : disks) disk_list.push_back(disk_to_json(disk));
  json net_list = json::array();
  for (const auto& net : nets) net_list.push_back(net_to_json(net));
  json out = json::object({
      {"cpus", cpus_to_json(cpus)},
      {"memory", memory_to_json(memory)},
      {"image_ref", image_ref},
      {"image_path", image_path},
      {"image_format", model::disk_format_name(image_format)},
      {"disks", std::move(disk_list)},
      {"nets", std::move(net_list)},
      {"ignition", ignition ? json(*ignition) : json(nullptr)},
      {"boot", boot_to_json(boot)},
      {"gpus", std::move(gpu_list)},
      {"firmware", firmware_to_json(firmware)},
  });
  if (gpu_count) out["gpu_count"] = gpu_count_to_json(*gpu_count);
  // Written only when chosen: specs without a choice stay as before.
  if (gpu_p2p != model::GpuP2pSpec{}) out["gpu_p2p"] = detail::gpu_p2p_to_json(gpu_p2p);
  if (guest_numa != model::GuestNumaMode::kDefault) out["guest_numa"] = model::guest_numa_name(guest_numa);
  return out;
}

Result<model::VmSpec> spec_from_json(const json& j) {
  FEOS_ASSIGN_OR_RETURN(ObjectReader reader, ObjectReader::open(j, "spec"));
  model::VmSpec spec;
  auto& [cpus, memory, image_ref, image_path, image_format, disks, nets, ignition, boot, gpus,
         firmware, gpu_count, gpu_p2p, guest_numa] = spec;
  FEOS_ASSIGN_OR_RETURN(cpus, reader.object<model::CpuSpec>("cpus", cpus_from_json));
  FEOS_ASSIGN_OR_RETURN(memory, reader.object<model::MemorySpec>("memory", memory_from_json));
  FEOS_ASSIGN_OR_RETURN(image_ref, reader.string("image_ref"));
  FEOS_ASSIGN_OR_RETURN(image_path, reader.string("image_path"));
  FEOS_ASSIGN_OR_RETURN(image_format, disk_format_from_json(reader, "image_format"));
  FEOS_ASSIGN_OR_RETURN(disks, reader.objects<model::DiskSpec>("disks", disk_from_json));
  FEOS_ASSIGN_OR_RETURN(nets, reader.objects<model::NetSpec>("nets", net_from_json));
  FEOS_ASSIGN_OR_RETURN(ignition, reader.optional_string("ignition"));
  FEOS_ASSIGN_OR_RETURN(boot, reader.object<model::BootSpec>("boot", boot_from_json));
  FEOS_ASSIGN_OR_RETURN(gpus, reader.objects<model::GpuSpec>("gpus", gpu_spec_from_json));
  // Records stored before firmware was a choice boot BIOS, as they did.
  if (reader.has("firmware")) {
    FEOS_ASSIGN_OR_RETURN(firmware, reader.object<model::FirmwareSpec>("firmware", firmware_from_json));
  }
  // Written only when GPUs were asked by count (and absent from records stored before that could be).
  if (reader.has("gpu_count")) {
    FEOS_ASSIGN_OR_RETURN(gpu_count, reader.object<model::GpuCount>("gpu_count", gpu_count_from_json));
  }
  // Both absent from records stored before they were choices: auto cliques, the daemon's NUMA.
  if (reader.has("gpu_p2p")) {
    FEOS_ASSIGN_OR_RETURN(gpu_p2p, reader.object<model::GpuP2pSpec>("gpu_p2p", detail::gpu_p2p_from_json));
  }
  if (reader.has("guest_numa")) {
    FEOS_ASSIGN_OR_RETURN(guest_numa, detail::guest_numa_from_json(reader, "guest_numa"));
  }
  FEOS_TRY(reader.finish());
  return spec;
}

Result<std::string> encode_spec(const model::VmSpec& spec) {
  const json j = spec_to_json(spec);
  if (auto bad = strict_json::find_invalid_utf8(j, "spec")) {
    return fail(Code::kInvalidArgument, *bad + ": string is not valid UTF-8");
  }
  return j.dump();
}

Result<model::VmSpec> decode_spec(std::string_view text) {
  FEOS_ASSIGN_OR_RETURN(const json j, strict_json::parse(text, "spec"));
  return spec_from_json(j);
}

json assigned_gpus_to_json(const std::vector<model::AssignedGpu>& gpus) {
  json list = json::array();
  for (const auto& gpu : gpus) list.push_back(assigned_gpu_to_json(gpu));
  return list;
}

Result<std::vector<model::AssignedGpu>> assigned_gpus_from_json(const json& j) {
  return strict_json::objects_of<model::AssignedGpu>(j, "gpus", assigned_gpu_from_json);
}

Result<std::string> encode_assigned_gpus(const std::vector<model::AssignedGpu>& gpus) {
  const json j = assigned_gpus_to_json(gpus);
  if (auto bad = strict_json::find_invalid_utf8(j, "gpus")) {
    return fail(Code::kInvalidArgument, *bad + ": string is not valid UTF-8");
  }
  return j.dump();
}

Result<std::vector<model::AssignedGpu>> decode_assigned_gpus(std::string_view text) {
  FEOS_ASSIGN_OR_RETURN(const json j, strict_json::parse(text, "gpus"));
  return assigned_gpus_from_json(j);
}

}  // namespace feos::store
