// Saved models that stand on their own: the folder `tessera train` writes with [checkpoint] save
// (config.toml + model.safetensors) and every resumable checkpoint folder carry their tokenizer files
// (tokenizer/ beside the config, named relative to it), so they work from any working directory and
// after the training data or vocabulary files are gone. `tessera generate --load` reads any of them.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "tessera/config.hpp"
#include "tessera/nn/parameter.hpp"
#include "tessera/tokenizer.hpp"

namespace tessera {

// Copies the files the tokenizer read (the [tokenizer] keys it lists in Tokenizer::file_keys()) into
// `folder`/tokenizer/ and returns the config as TOML with those keys naming the copies relative to
// `folder` ("tokenizer/<name>"). Other paths (data, checkpoints) are kept as they are: they are the
// run's, not the model's.
std::string config_for_saved_folder(const Config& config, const Tokenizer& tokenizer,
                                    const std::filesystem::path& folder);

// A saved model found at --load: a final-weights folder (config.toml, model.safetensors), a checkpoint
// folder (metadata.json, model_tp{t}_pp{p}.safetensors), or a checkpoint save folder (its latest
// checkpoint, by latest_checkpointed_iteration.txt).
struct SavedModel {
  std::filesystem::path folder;  // the folder holding the weights
  Config config;                 // its config, "tokenizer/<name>" files resolved against `folder`
  bool checkpoint = false;       // model_tp{t}_pp{p}.safetensors shards, else model.safetensors
  int tensor_parallel = 1, pipeline_parallel = 1;  // the checkpoint's shards (1, 1 for final weights)
  std::int64_t iteration = -1;  // a checkpoint's iteration (-1: final weights)
  std::string describe() const;
};
SavedModel open_saved_model(const std::filesystem::path& load);

// Fills `params` (a one-process model built from saved.config) from the saved files: tensor-parallel
// shards are joined and pipeline stages collected; vocabulary padding the files do not hold stays
// zero. Every tensor in the files must be one of the model's, every parameter must be there with its
// shape, and every value must be finite: FormatError naming the file and tensor otherwise.
void load_saved_weights(const SavedModel& saved, const std::vector<Parameter*>& params);

// Whose parameters load_saved_weights fills: one process's whole model (the default), or one rank's
// of another layout — tensor-parallel rank `tp_rank` of `tp_size` takes its shard of each split
// tensor (Parameter::tp_split_dim, tp_split_blocks; the vocabulary padded as this layout pads it) —
// whatever layout wrote the files. `whole_model` false (a pipeline stage): the files may hold tensors
// that are not among `params` (the other stages'); under expert parallelism (`ep` > 1) they hold the
// other ranks' experts too, which are not counted as unused. `keep_padding`: where the files hold exactly this
// layout's padded rows (a checkpoint of a layout with the same padded vocabulary), the padding rows
// are loaded too — the loss sees the padded logits (as Megatron-LM's), so evaluating reproduces
// training only with them. Returns the names of the tensors whose padding rows were not in the files
// (zeroed instead: final weights hold none).
struct SavedWeightsTarget {
  int tp_rank = 0, tp_size = 1;
  bool whole_model = true;
  bool keep_padding = false;
  // Expert parallelism: the files hold every expert, this rank its own; the others' are not "unused".
  int ep = 1;
};
std::vector<std::string> load_saved_weights(const SavedModel& saved, const std::vector<Parameter*>& params,
                                            const SavedWeightsTarget& target);

}  // namespace tessera
