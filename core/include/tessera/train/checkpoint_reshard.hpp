// `tessera checkpoint reshard` (docs/checkpoints.md): a resumable checkpoint of one layout written
// anew for another — tensor-, pipeline-, data- and virtual-pipeline-parallel sizes, the gradient
// bucket size — weights and optimizer state both, so that training resumes on the new layout where
// it stopped on the old one.
//
// How: every rank's model of both layouts is built in this one process (offline groups, no peers:
// parallel/offline_communicator.hpp), which says each rank's parameters, their tensor-parallel
// splits and, for a sharded optimizer, its gradient buckets. The old ranks' files are read into
// whole tensors — the weights, and every per-parameter slot of the optimizer's state as its plugin's
// "optimizer_state" format unpacks it (optimizer_state_format.hpp) — and cut again for each new rank.
// Vocabulary padding rows (their count follows tp) are kept where both layouts have them; rows only
// the new layout has are zero. The whole model, with its optimizer state, is held in memory at once.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tessera/config.hpp"
#include "tessera/train/checkpoint.hpp"

namespace tessera {

struct ReshardLayout {
  int tp = 1, pp = 1, dp = 1, vpp = 1;
  int ep = 1;                    // expert_model_parallel_size (must divide dp)
  int pipeline_split_rank = 0;   // encoder-decoder models with pp > 1 (0: none)
  // Uneven pipeline stages: the first / last stage's layers (0: an even share; ParallelSizes).
  std::int64_t first_stage_layers = 0, last_stage_layers = 0;
  bool embedding_in_split = false, loss_in_split = false;  // the embedding / loss counted in the split
  std::int64_t bucket_size = 0;  // parallel.bucket_size of the new layout (distributed_adam's shards follow it)
  // Another optimizer plugin whose state has the same slots (adam <-> distributed_adam); empty: the
  // checkpoint's.
  std::string optimizer;
  // Sequence parallelism of the new layout (with tp > 1 it changes distributed_adam's buckets: norms
  // are reduced over tp); unset: the checkpoint's.
  std::optional<bool> sequence_parallel;
};

struct ReshardResult {
  std::filesystem::path checkpoint;  // <out>/iter_XXXXXXX
  CheckpointMetadata meta;           // the new checkpoint's
  // Tensors whose padded vocabulary differs between the layouts (rows kept where both have them).
  std::vector<std::string> padding_changed;
};

// Writes `out`/iter_XXXXXXX/ (metadata.json, model and optimizer files for every rank of `target`,
// the tokenizer files) and `out`/latest_checkpointed_iteration.txt: a save folder that
// checkpoint.load resumes from. `config`: the source checkpoint's config as open_saved_model reads
// it, with the default plugins filled in; `overrides` ("model.key=value", [model] keys only: the
// layout and optimizer are `target`'s) change the new layout's model, e.g.
// model.make_vocab_size_divisible_by so that the padded vocabulary stays the same; a key the model
// does not read is a ConfigError.
// ConfigError for a layout the model cannot take (heads, layers, the global batch not dividing),
// naming it; FormatError naming the file and tensor for a missing or inconsistent file; PluginError
// when the optimizer keeps state but exports no "optimizer_state" format.
ReshardResult reshard_checkpoint(const CheckpointFolder& source, const Config& config, const ReshardLayout& target,
                                 const std::vector<std::string>& overrides, const std::filesystem::path& out);

}  // namespace tessera
