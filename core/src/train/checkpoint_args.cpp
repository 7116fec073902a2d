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

// [parallel] keys that decide which rank holds which weights: the layout a checkpoint's files follow
// (the data-parallel size is what the world size leaves).
const std::vector<std::string> kModelParallelKeys = {
    "tensor_model_parallel_size",         "pipeline_model_parallel_size",
    "virtual_pipeline_model_parallel_size", "num_layers_per_virtual_pipeline_stage",
    "pipeline_model_parallel_split_rank",  "decoder_first_pipeline_num_layers",
    "decoder_last_pipeline_num_layers",    "num_layers_in_first_pipeline_stage",
    "num_layers_in_last_pipeline_stage",   "account_for_embedding_in_pipeline_split",
    "account_for_loss_in_pipeline_split"};

}  // namespace

Config with_checkpoint_args(const Config& config) {
  const ConfigSection ck = config.section("checkpoint");
  const bool model_args = ck.get_bool("use_checkpoint_args", false);
  const bool mp_args = ck.get_bool("use_mp_args_from_checkpoint_args", false);
  if (!model_args && !mp_args) return config;
  const char* key = model_args ? "use_checkpoint_args" : "use_mp_args_from_checkpoint_args";
  const std::string load = ck.get_string("load", "");
  if (load.empty())
    throw ConfigError(fmt::format("checkpoint.{} = true ({}) needs checkpoint.load: the checkpoint whose {} the run "
                                  "takes",
                                  key, ck.origin(key), model_args ? "model and tokenizer" : "parallel layout"));
  const SavedModel saved = open_saved_model(load);
  Config out = config;
  // Takes what `merge` copies from the checkpoint's config (its values named as coming from the
  // checkpoint's folder through `flag`) and logs every value that changed.
  const auto take = [&](const char* flag, const char* what, const auto& merge) {
    const std::string origin = fmt::format("{} (checkpoint.{})", saved.folder.string(), flag);
    std::vector<std::string> changed;
    out = merge(origin, changed);
    log_info("checkpoint.{}: {} from {}{}{}", flag, what, saved.describe(),
             changed.empty() ? ", as the config has it" : "; changed: ", fmt::join(changed, "; "));
  };
  if (model_args)
    take("use_checkpoint_args", "[model] and [tokenizer]", [&](const std::string& origin, std::vector<std::string>& changed) {
      return out.with_section_from(saved.config, "model", origin, kRunKeys, changed)
          .with_section_from(saved.config, "tokenizer", origin, {}, changed);
    });
  if (mp_args)
    take("use_mp_args_from_checkpoint_args", "the tensor- and pipeline-parallel layout",
         [&](const std::string& origin, std::vector<std::string>& changed) {
           return out.with_keys_from(saved.config, "parallel", origin, kModelParallelKeys, changed);
         });
  return out;
}

}  // namespace tessera
