#include "plugin_defaults.hpp"

#include <utility>

#include "tessera/train/components.hpp"

namespace tessera::app {

Config with_plugin_defaults(const Config& config) {
  const std::string origin = "tessera's plugin defaults";
  Config out = config;
  for (const auto& [section, name] : {std::pair{"model", "gpt"},
                                      {"tokenizer", kDefaultTokenizer},
                                      {"data", "gpt_indexed"},
                                      {"optimizer", "adam"}})
    out = out.with_default(section, "plugin", name, origin);
  // Only a pipeline needs a schedule: with one stage the trainer accumulates gradients itself.
  const ParallelSizes sizes = read_parallel_sizes(config);
  if (sizes.pp > 1) out = out.with_default("schedule", "plugin", sizes.vpp > 1 ? "interleaved" : "1f1b", origin);
  return out;
}

}  // namespace tessera::app
