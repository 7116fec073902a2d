#include "tessera/train/checkpoint_args.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/train/saved_model.hpp"

namespace tessera {

namespace {

// [model] keys of how the run trains, not of what the model is: the run's own values stay.
const std::vector<std::string> kRunKeys = {"hidden_dropout",        "attention_dropout",    "init_method_std",
                                           "recompute_granularity", "recompute_method",     "recompute_num_layers",
                                           "recompute_activations"};

}  // namespace

Config with_checkpoint_args(const Config& config) {
  const ConfigSection ck = config.section("checkpoint");
  if (!ck.get_bool("use_checkpoint_args", false)) return config;
  const std::string load = ck.get_string("load", "");
  if (load.empty())
    throw ConfigError(fmt::format("checkpoint.use_checkpoint_args = true ({}) needs checkpoint.load: the checkpoint "
                                  "whose model and tokenizer the run takes",
                                  ck.origin("use_checkpoint_args")));
  const SavedModel saved = open_saved_model(load);
  const std::string origin = fmt::format("{} (checkpoint.use_checkpoint_args)", saved.folder.string());
  std::vector<std::string> changed;
  Config out = config.with_section_from(saved.config, "model", origin, kRunKeys, changed);
  out = out.with_section_from(saved.config, "tokenizer", origin, {}, changed);
  log_info("checkpoint.use_checkpoint_args: [model] and [tokenizer] from {}{}{}", saved.describe(),
           changed.empty() ? ", as the config has them" : "; changed: ",
           fmt::join(changed, "; "));
  return out;
}

}  // namespace tessera
