#include "store/spec_codec.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

namespace feos::store {
namespace {

using nlohmann::json;

// Encoders: each unpacks its struct with a structured binding that names every member, so a
// member added to the model without being added here is a compile error.

json cpus_to_json(const model::CpuSpec& cpus) {
  const auto& [boot_vcpus, max_vcpus] = cpus;
  return json::object({{"boot_vcpus", boot_vcpus}, {"max_vcpus", max_vcpus}});
}

json memory_to_json(const model::MemorySpec& memory) {
  const auto& [size_mib, hugepages] = memory;
  return json::object({{"size_mib", size_mib}, {"hugepages", hugepages}});
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
  const auto& [device_id, tap_name, mac] = net;
  return json::object({{"device_id", device_id}, {"tap_name", tap_name}, {"mac", mac}});
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
      {{"address", address}, {"rombar", rombar_name(rombar)}, {"boot_vga", boot_vga}});
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
  return json::object({{"address", address},
                       {"id", id},
                       {"class_code", class_code},
                       {"iommu_group", iommu_group},
                       {"original_driver", original_driver},
                       {"bars", std::move(bar_list)}});
}

json assigned_gpu_to_json(const model::AssignedGpu& gpu) {
  const auto& [request, functions, group_peers, numa_node] = gpu;
  json function_list = json::array();
  for (const auto& function : functions) function_list.push_back(function_to_json(function));
  json peer_list = json::array();
  for (const auto& peer : group_peers) peer_list.push_back(function_to_json(peer));
  return json::object({{"request", gpu_spec_to_json(request)},
                       {"functions", std::move(function_list)},
                       {"group_peers", std::move(peer_list)},
                       {"numa_node", numa_node}});
}

bool is_valid_utf8(std::string_view s) {
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};  // no overlongs
  size_t i = 0;
  while (i < s.size()) {
    const auto lead = static_cast<unsigned char>(s[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    size_t length = 0;
    uint32_t code_point = 0;
    if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code_point = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code_point = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code_point = lead & 0x07;
    } else {
      return false;
    }
    if (s.size() - i < length) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(s[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    if (code_point < kMinForLength[length] || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

// Returns the path of the first string value in `j` that is not valid UTF-8.
std::optional<std::string> find_invalid_utf8(const json& j, const std::string& path) {
  if (j.is_string()) {
    if (!is_valid_utf8(j.get_ref<const std::string&>())) return path;
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) {
      if (auto bad = find_invalid_utf8(j[i], path + "[" + std::to_string(i) + "]")) return bad;
    }
  } else if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      if (auto bad = find_invalid_utf8(value, path + "." + key)) return bad;
    }
  }
  return std::nullopt;
}

// What a value is, for "expected X, got Y" messages. Numbers show their value (short); strings
// do not (they may be long or hold anything).
std::string describe(const json& j) {
  switch (j.type()) {
    case json::value_t::number_unsigned: return "integer " + j.dump();
    case json::value_t::number_integer:
      return (j.get<int64_t>() < 0 ? "negative integer " : "integer ") + j.dump();
    case json::value_t::number_float: return "non-integer number " + j.dump();
    default: return j.type_name();
  }
}

// Reads one JSON object strictly: each key at most once through the typed getters, and
// finish() rejects keys nobody read. `path` ("spec.disks[1]") prefixes every error.
class ObjectReader {
 public:
  static Result<ObjectReader> open(const json& j, std::string path) {
    if (!j.is_object()) {
      return fail(Code::kInvalidArgument, path + ": expected an object, got " + describe(j));
    }
    return ObjectReader(j, std::move(path));
  }

  std::string path_of(std::string_view key) const { return path_ + "." + std::string(key); }

  // Whether `key` is present (for keys added after the first schema).
  bool has(std::string_view key) const { return j_->contains(key); }

  Result<const json*> field(std::string_view key) {
    auto it = j_->find(key);
    if (it == j_->end()) {
      return fail(Code::kInvalidArgument, path_ + ": missing field " + std::string(key));
    }
    read_.push_back(key);
    return &*it;
  }

  Result<std::string> string(std::string_view key) {
    auto value = field(key);
    if (!value) return fail(value.error());
    if (!(*value)->is_string()) return type_error(key, "a string", **value);
    return (*value)->get<std::string>();
  }

  Result<std::optional<std::string>> optional_string(std::string_view key) {
    auto value = field(key);
    if (!value) return fail(value.error());
    if ((*value)->is_null()) return std::optional<std::string>();
    if (!(*value)->is_string()) return type_error(key, "a string or null", **value);
    return std::optional<std::string>((*value)->get<std::string>());
  }

  Result<bool> boolean(std::string_view key) {
    auto value = field(key);
    if (!value) return fail(value.error());
    if (!(*value)->is_boolean()) return type_error(key, "a boolean", **value);
    return (*value)->get<bool>();
  }

  // An unsigned integer that fits T; "2.0", negatives and out-of-range values are rejected.
  template <typename T>
  Result<T> unsigned_integer(std::string_view key) {
    auto value = field(key);
    if (!value) return fail(value.error());
    const char* expected =
        sizeof(T) == 4 ? "an unsigned 32-bit integer" : "an unsigned 64-bit integer";
    // Parsed text holds non-negative integers as unsigned; a json built in code may hold them
    // as signed.
    const json& number = **value;
    const bool non_negative_integer =
        number.is_number_unsigned() || (number.is_number_integer() && number.get<int64_t>() >= 0);
    if (!non_negative_integer || number.get<uint64_t>() > std::numeric_limits<T>::max()) {
      return type_error(key, expected, number);
    }
    return static_cast<T>(number.get<uint64_t>());
  }

  // A signed integer that fits T ("2.0" and out-of-range values are rejected).
  template <typename T>
  Result<T> signed_integer(std::string_view key) {
    auto value = field(key);
    if (!value) return fail(value.error());
    const json& number = **value;
    const char* expected = sizeof(T) == 4 ? "a 32-bit integer" : "a 64-bit integer";
    if (number.is_number_unsigned()) {
      if (number.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
        return type_error(key, expected, number);
      }
      return static_cast<T>(number.get<uint64_t>());
    }
    if (!number.is_number_integer()) return type_error(key, expected, number);
    const int64_t v = number.get<int64_t>();
    if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
      return type_error(key, expected, number);
    }
    return static_cast<T>(v);
  }

  Result<const json*> array(std::string_view key) {
    auto value = field(key);
    if (!value) return fail(value.error());
    if (!(*value)->is_array()) return type_error(key, "an array", **value);
    return *value;
  }

  Result<ObjectReader> object(std::string_view key) {
    auto value = field(key);
    if (!value) return fail(value.error());
    return open(**value, path_of(key));
  }

  // Fails on the first key that no getter read.
  Status finish() const {
    for (const auto& item : j_->items()) {
      if (std::find(read_.begin(), read_.end(), item.key()) == read_.end()) {
        return fail(Code::kInvalidArgument, path_ + ": unknown field \"" + item.key() + "\"");
      }
    }
    return ok();
  }

 private:
  ObjectReader(const json& j, std::string path) : j_(&j), path_(std::move(path)) {}

  tl::unexpected<Error> type_error(std::string_view key, std::string_view expected,
                                   const json& got) const {
    return fail(Code::kInvalidArgument,
                path_of(key) + ": expected " + std::string(expected) + ", got " + describe(got));
  }

  const json* j_;
  std::string path_;
  std::vector<std::string_view> read_;  // keys are string literals of the decoders below
};

// FEOS_TRY for Result<T> values: assigns on success, returns the error otherwise.
#define FEOS_STORE_ASSIGN(lhs, expr)                         \
  do {                                                       \
    auto feos_assign_result_ = (expr);                       \
    if (!feos_assign_result_) return fail(std::move(feos_assign_result_).error()); \
    lhs = std::move(*feos_assign_result_);                   \
  } while (0)

Result<model::CpuSpec> cpus_from_json(ObjectReader reader) {
  model::CpuSpec cpus;
  auto& [boot_vcpus, max_vcpus] = cpus;
  FEOS_STORE_ASSIGN(boot_vcpus, reader.unsigned_integer<uint32_t>("boot_vcpus"));
  FEOS_STORE_ASSIGN(max_vcpus, reader.unsigned_integer<uint32_t>("max_vcpus"));
  FEOS_TRY(reader.finish());
  return cpus;
}

Result<model::MemorySpec> memory_from_json(ObjectReader reader) {
  model::MemorySpec memory;
  auto& [size_mib, hugepages] = memory;
  FEOS_STORE_ASSIGN(size_mib, reader.unsigned_integer<uint64_t>("size_mib"));
  FEOS_STORE_ASSIGN(hugepages, reader.boolean("hugepages"));
  FEOS_TRY(reader.finish());
  return memory;
}

Result<model::BootSpec> boot_from_json(ObjectReader reader) {
  model::BootSpec boot;
  auto& [kernel, initramfs, cmdline] = boot;
  FEOS_STORE_ASSIGN(kernel, reader.string("kernel"));
  FEOS_STORE_ASSIGN(initramfs, reader.string("initramfs"));
  FEOS_STORE_ASSIGN(cmdline, reader.string("cmdline"));
  FEOS_TRY(reader.finish());
  return boot;
}

// A disk format: "raw", "qcow2", or "" (not recorded). The key is absent in records written
// before formats were recorded (schema 3 and older): those read as not recorded.
Result<model::DiskFormat> disk_format_from_json(ObjectReader& reader, std::string_view key) {
  if (!reader.has(key)) return model::DiskFormat::kUnknown;
  auto name = reader.string(key);
  if (!name) return fail(name.error());
  for (auto format : {model::DiskFormat::kUnknown, model::DiskFormat::kRaw, model::DiskFormat::kQcow2}) {
    if (*name == model::disk_format_name(format)) return format;
  }
  return fail(Code::kInvalidArgument,
              reader.path_of(key) + ": unknown disk format \"" + *name + "\" (raw, qcow2 or \"\")");
}

Result<model::DiskSpec> disk_from_json(ObjectReader reader) {
  model::DiskSpec disk;
  auto& [device_id, path, readonly, format] = disk;
  FEOS_STORE_ASSIGN(device_id, reader.string("device_id"));
  FEOS_STORE_ASSIGN(path, reader.string("path"));
  FEOS_STORE_ASSIGN(readonly, reader.boolean("readonly"));
  FEOS_STORE_ASSIGN(format, disk_format_from_json(reader, "format"));
  FEOS_TRY(reader.finish());
  return disk;
}

Result<model::NetSpec> net_from_json(ObjectReader reader) {
  model::NetSpec net;
  auto& [device_id, tap_name, mac] = net;
  FEOS_STORE_ASSIGN(device_id, reader.string("device_id"));
  FEOS_STORE_ASSIGN(tap_name, reader.string("tap_name"));
  FEOS_STORE_ASSIGN(mac, reader.string("mac"));
  FEOS_TRY(reader.finish());
  return net;
}

Result<model::RomBar> rombar_from_json(ObjectReader& reader) {
  auto name = reader.string("rombar");
  if (!name) return fail(name.error());
  for (model::RomBar value : {model::RomBar::kDefault, model::RomBar::kOn, model::RomBar::kOff}) {
    if (*name == rombar_name(value)) return value;
  }
  return fail(Code::kInvalidArgument, reader.path_of("rombar") +
                                          ": expected \"default\", \"on\" or \"off\", got \"" +
                                          *name + "\"");
}

Result<model::GpuSpec> gpu_spec_from_json(ObjectReader reader) {
  model::GpuSpec gpu;
  auto& [address, rombar, boot_vga] = gpu;
  FEOS_STORE_ASSIGN(address, reader.string("address"));
  FEOS_STORE_ASSIGN(rombar, rombar_from_json(reader));
  FEOS_STORE_ASSIGN(boot_vga, reader.boolean("boot_vga"));
  FEOS_TRY(reader.finish());
  return gpu;
}

Result<model::Bar> bar_from_json(ObjectReader reader) {
  model::Bar bar;
  auto& [index, size, is_64bit, prefetchable, is_io] = bar;
  FEOS_STORE_ASSIGN(index, reader.signed_integer<int>("index"));
  FEOS_STORE_ASSIGN(size, reader.unsigned_integer<uint64_t>("size"));
  FEOS_STORE_ASSIGN(is_64bit, reader.boolean("is_64bit"));
  FEOS_STORE_ASSIGN(prefetchable, reader.boolean("prefetchable"));
  FEOS_STORE_ASSIGN(is_io, reader.boolean("is_io"));
  FEOS_TRY(reader.finish());
  return bar;
}

// Declared here, defined after list_from_json (it decodes a list of BARs).
Result<model::PassthroughFunction> function_from_json(ObjectReader reader);
Result<model::AssignedGpu> assigned_gpu_from_json(ObjectReader reader);

// Decodes the array `key` of `reader` element by element with `decode_one`.
template <typename T, typename Decode>
Result<std::vector<T>> list_from_json(ObjectReader& reader, std::string_view key,
                                      Decode decode_one) {
  auto array = reader.array(key);
  if (!array) return fail(array.error());
  std::vector<T> items;
  items.reserve((*array)->size());
  for (size_t i = 0; i < (*array)->size(); ++i) {
    auto element = ObjectReader::open((**array)[i],
                                      reader.path_of(key) + "[" + std::to_string(i) + "]");
    if (!element) return fail(element.error());
    auto item = decode_one(std::move(*element));
    if (!item) return fail(item.error());
    items.push_back(std::move(*item));
  }
  return items;
}

Result<model::PassthroughFunction> function_from_json(ObjectReader reader) {
  model::PassthroughFunction function;
  auto& [address, id, class_code, iommu_group, original_driver, bars] = function;
  FEOS_STORE_ASSIGN(address, reader.string("address"));
  FEOS_STORE_ASSIGN(id, reader.string("id"));
  FEOS_STORE_ASSIGN(class_code, reader.unsigned_integer<uint32_t>("class_code"));
  FEOS_STORE_ASSIGN(iommu_group, reader.string("iommu_group"));
  FEOS_STORE_ASSIGN(original_driver, reader.string("original_driver"));
  FEOS_STORE_ASSIGN(bars, list_from_json<model::Bar>(reader, "bars", bar_from_json));
  FEOS_TRY(reader.finish());
  return function;
}

Result<model::AssignedGpu> assigned_gpu_from_json(ObjectReader reader) {
  model::AssignedGpu gpu;
  auto& [request, functions, group_peers, numa_node] = gpu;
  {
    auto sub = reader.object("request");
    if (!sub) return fail(sub.error());
    FEOS_STORE_ASSIGN(request, gpu_spec_from_json(std::move(*sub)));
  }
  FEOS_STORE_ASSIGN(functions, list_from_json<model::PassthroughFunction>(reader, "functions",
                                                                          function_from_json));
  FEOS_STORE_ASSIGN(group_peers, list_from_json<model::PassthroughFunction>(
                                     reader, "group_peers", function_from_json));
  FEOS_STORE_ASSIGN(numa_node, reader.signed_integer<int>("numa_node"));
  FEOS_TRY(reader.finish());
  return gpu;
}

// Parses JSON text; `what` names the value in the error ("spec", "gpus").
Result<json> parse_json(std::string_view text, const std::string& what) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
    return fail(Code::kInvalidArgument, what + ": not valid JSON: " + e.what());
  }
}

}  // namespace

json spec_to_json(const model::VmSpec& spec) {
  const auto& [cpus, memory, image_ref, image_path, image_format, disks, nets, ignition, boot,
               gpus] = spec;
  json gpu_list = json::array();
  for (const auto& gpu : gpus) gpu_list.push_back(gpu_spec_to_json(gpu));
  json disk_list = json::array();
  for (const auto& disk : disks) disk_list.push_back(disk_to_json(disk));
  json net_list = json::array();
  for (const auto& net : nets) net_list.push_back(net_to_json(net));
  return json::object({
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
  });
}

Result<model::VmSpec> spec_from_json(const json& j) {
  auto reader = ObjectReader::open(j, "spec");
  if (!reader) return fail(reader.error());
  model::VmSpec spec;
  auto& [cpus, memory, image_ref, image_path, image_format, disks, nets, ignition, boot, gpus] = spec;
  {
    auto sub = reader->object("cpus");
    if (!sub) return fail(sub.error());
    FEOS_STORE_ASSIGN(cpus, cpus_from_json(std::move(*sub)));
  }
  {
    auto sub = reader->object("memory");
    if (!sub) return fail(sub.error());
    FEOS_STORE_ASSIGN(memory, memory_from_json(std::move(*sub)));
  }
  FEOS_STORE_ASSIGN(image_ref, reader->string("image_ref"));
  FEOS_STORE_ASSIGN(image_path, reader->string("image_path"));
  FEOS_STORE_ASSIGN(image_format, disk_format_from_json(*reader, "image_format"));
  FEOS_STORE_ASSIGN(disks, list_from_json<model::DiskSpec>(*reader, "disks", disk_from_json));
  FEOS_STORE_ASSIGN(nets, list_from_json<model::NetSpec>(*reader, "nets", net_from_json));
  FEOS_STORE_ASSIGN(ignition, reader->optional_string("ignition"));
  {
    auto sub = reader->object("boot");
    if (!sub) return fail(sub.error());
    FEOS_STORE_ASSIGN(boot, boot_from_json(std::move(*sub)));
  }
  FEOS_STORE_ASSIGN(gpus, list_from_json<model::GpuSpec>(*reader, "gpus", gpu_spec_from_json));
  FEOS_TRY(reader->finish());
  return spec;
}

Result<std::string> encode_spec(const model::VmSpec& spec) {
  const json j = spec_to_json(spec);
  if (auto bad = find_invalid_utf8(j, "spec")) {
    return fail(Code::kInvalidArgument, *bad + ": string is not valid UTF-8");
  }
  return j.dump();
}

Result<model::VmSpec> decode_spec(std::string_view text) {
  auto j = parse_json(text, "spec");
  if (!j) return fail(j.error());
  return spec_from_json(*j);
}

json assigned_gpus_to_json(const std::vector<model::AssignedGpu>& gpus) {
  json list = json::array();
  for (const auto& gpu : gpus) list.push_back(assigned_gpu_to_json(gpu));
  return list;
}

Result<std::vector<model::AssignedGpu>> assigned_gpus_from_json(const json& j) {
  if (!j.is_array()) {
    return fail(Code::kInvalidArgument, "gpus: expected an array, got " + describe(j));
  }
  std::vector<model::AssignedGpu> gpus;
  gpus.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    auto element = ObjectReader::open(j[i], "gpus[" + std::to_string(i) + "]");
    if (!element) return fail(element.error());
    auto gpu = assigned_gpu_from_json(std::move(*element));
    if (!gpu) return fail(gpu.error());
    gpus.push_back(std::move(*gpu));
  }
  return gpus;
}

Result<std::string> encode_assigned_gpus(const std::vector<model::AssignedGpu>& gpus) {
  const json j = assigned_gpus_to_json(gpus);
  if (auto bad = find_invalid_utf8(j, "gpus")) {
    return fail(Code::kInvalidArgument, *bad + ": string is not valid UTF-8");
  }
  return j.dump();
}

Result<std::vector<model::AssignedGpu>> decode_assigned_gpus(std::string_view text) {
  auto j = parse_json(text, "gpus");
  if (!j) return fail(j.error());
  return assigned_gpus_from_json(*j);
}

}  // namespace feos::store
