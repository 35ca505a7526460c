// The registry credentials file (registry_client.h, load_credentials): read strictly, so that a
// misspelt key is an error at daemon start rather than an anonymous pull at create.
#include <fstream>
#include <sstream>

#include "common/strict_json.h"
#include "image/registry_client.h"

namespace feos::image {

Result<std::map<std::string, Credentials>> load_credentials(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail(Code::kNotFound, path + ": cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = strict_json::parse(text.str(), path);
  if (!parsed) return fail(parsed.error());
  auto root = strict_json::ObjectReader::open(*parsed, "");
  if (!root) return fail(root.error().context(path));
  if (auto keys = root->only_keys({"registries"}); !keys) return fail(keys.error().context(path));
  auto registries = root->field("registries");
  if (!registries) return fail(registries.error().context(path));
  if (!(*registries)->is_object())
    return fail(Code::kInvalidArgument, path + ": registries: expected an object of registry hosts");
  std::map<std::string, Credentials> out;
  for (const auto& [host, entry] : (*registries)->items()) {
    auto reader = strict_json::ObjectReader::open(entry, "registries." + host);
    Credentials credentials;
    auto read = [&]() -> Status {
      if (!reader) return fail(reader.error());
      FEOS_TRY(reader->only_keys({"username", "password"}));
      FEOS_ASSIGN_OR_RETURN(credentials.username, reader->string("username"));
      FEOS_ASSIGN_OR_RETURN(credentials.password, reader->string("password"));
      return ok();
    }();
    if (!read) return fail(read.error().context(path));
    out[host] = std::move(credentials);
  }
  return out;
}

}  // namespace feos::image
