// A data plugin made in a test as the trainer makes it: from [data] keys (after `plugin = …`) and a
// DataRequest, every key required to be read. The config outlives the source, which keeps reading it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tessera/config.hpp"
#include "tessera/dataset.hpp"
#include "tessera/plugin.hpp"

namespace tessera::test {

inline PluginPtr<DataSource> make_data_source(const std::string& plugin, const std::string& data_toml,
                                              const DataRequest& request, const std::string& file) {
  static std::vector<std::unique_ptr<Config>> keep;
  keep.push_back(std::make_unique<Config>(
      Config::from_string("[data]\nplugin = \"" + plugin + "\"\n" + data_toml, file)));
  keep.back()->section("data").declare("plugin");
  auto source = create_plugin<DataSource>("data", plugin, keep.back()->section("data"), request);
  keep.back()->check_no_unknown_keys();
  return source;
}

}  // namespace tessera::test
