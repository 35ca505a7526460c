#include "vmm/qemu/block_graph.h"

#include <nlohmann/json.hpp>

#include "vmm/qemu/qemu_options.h"

namespace feos::vmm::qemu {
namespace {

std::string file_node(const std::string& name, const std::string& path, bool readonly) {
  return QemuOpts()
      .set("driver", "file")
      .set("node-name", name)
      .set("filename", path)
      .set("read-only", readonly ? "on" : "off")
      .render();
}

}  // namespace

std::vector<std::string> blockdev_values(const ImageChain& chain, const std::string& node,
                                         bool readonly) {
  auto name_of = [&](size_t k) { return k == 0 ? node : node + "-b" + std::to_string(k); };
  std::vector<std::string> out;
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
    out.push_back(format.dump());
  }
  return out;
}

}  // namespace feos::vmm::qemu
