#include "vmm/qemu/block_graph.h"

#include <nlohmann/json.hpp>

#include "vmm/qemu/qemu_options.h"

namespace feos::vmm::qemu {
namespace {

nlohmann::ordered_json file_node(const std::string& name, const std::string& path, bool readonly) {
  return {{"driver", "file"}, {"node-name", name}, {"filename", path}, {"read-only", readonly}};
}

}  // namespace

std::vector<nlohmann::ordered_json> blockdev_nodes(const ImageChain& chain, const std::string& node,
                                                   bool readonly) {
  auto name_of = [&](size_t k) { return k == 0 ? node : node + "-b" + std::to_string(k); };
  std::vector<nlohmann::ordered_json> out;
  for (size_t k = chain.size(); k-- > 0;) {
    const ImageFile& image = chain[k];
    const std::string name = name_of(k);
    const bool image_readonly = k > 0 || readonly;
    out.push_back(file_node(name + "-file", image.path, image_readonly));
    // Insertion order kept: the argv reads like the graph (golden tests compare it).
    const bool qcow2 = image.format == model::DiskFormat::kQcow2;
    nlohmann::ordered_json format = {{"driver", qcow2 ? "qcow2" : "raw"},
                                     {"node-name", name},
                                     {"file", name + "-file"}};
    if (qcow2) {
      if (!image.data_file.empty()) {
        out.push_back(file_node(name + "-data", image.data_file, image_readonly));
        format["data-file"] = name + "-data";
      }
      format["backing"] = k + 1 < chain.size() ? nlohmann::ordered_json(name_of(k + 1)) : nullptr;
    }
    format["read-only"] = image_readonly;
    out.push_back(std::move(format));
  }
  return out;
}

std::vector<std::string> blockdev_values(const ImageChain& chain, const std::string& node,
                                         bool readonly) {
  std::vector<std::string> out;
  for (const auto& value : blockdev_nodes(chain, node, readonly)) {
    if (value["driver"] != "file") {
      out.push_back(value.dump());
      continue;
    }
    out.push_back(QemuOpts()
                      .set("driver", "file")
                      .set("node-name", value["node-name"].get<std::string>())
                      .set("filename", value["filename"].get<std::string>())
                      .set("read-only", value["read-only"].get<bool>() ? "on" : "off")
                      .render());
  }
  return out;
}

}  // namespace feos::vmm::qemu
