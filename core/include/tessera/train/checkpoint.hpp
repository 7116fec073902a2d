// Resumable checkpoints (DESIGN.md §6, docs/checkpoints.md): the file names of a checkpoint folder
// the name- and shape-checked restore that the trainer and the optimizer plugins share, and atomic
// text files (metadata, the latest-iteration pointer, the saved config).
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/io/safetensors.hpp"
#include "tessera/nn/parameter.hpp"
#include "tessera/optimizer_state_format.hpp"
#include "tessera/plugin.hpp"
#include "tessera/train/batch_ramp.hpp"
#include "tessera/train/optimizer_param_schedule.hpp"

namespace tessera {

class Config;

// "iter_0000010", as Megatron-LM names its checkpoint folders.
std::string checkpoint_dir_name(std::int64_t iteration);
std::string checkpoint_model_file(int tp_rank, int pp_rank);                  // model_tp{t}_pp{p}.safetensors
std::string checkpoint_optimizer_file(int tp_rank, int pp_rank, int dp_rank);  // optimizer_tp{t}_pp{p}_dp{d}.safetensors

// The "optimizer_state" format plugin of optimizer `name` (tessera/optimizer_state_format.hpp), or
// null for an optimizer that exports none.
PluginPtr<OptimizerStateFormat> optimizer_state_format(const Config& config, const std::string& name);
// Optimizer state replicated over data parallelism (plain adam: OptimizerStateFormat::
// replicated_over_dp) is written once per set of experts: only data-parallel ranks 0 … ep_dp − 1
// (expert_dp_rank 0) of each (tp, pp) write optimizer files, as Megatron-LM saves a non-distributed
// optimizer from dp rank 0 only, and dp rank d reads the file of dp rank d mod ep_dp, which holds
// the same state. Other state (distributed_adam's shards) is one file per rank. Checkpoints written
// before with a file per rank load the same way.
struct OptimizerFiles {
  bool replicated_over_dp = false;
  int dp = 1, ep_dp = 1;  // the layout's data-parallel size and ParallelLayout::ep_dp
  int writers() const { return replicated_over_dp ? ep_dp : dp; }  // dp ranks 0 … writers − 1 hold files
  int file_of(int dp_rank) const { return dp_rank % writers(); }   // whose file dp rank dp_rank reads
};
inline constexpr const char* kLatestCheckpointFile = "latest_checkpointed_iteration.txt";

// Restores `params` (their values) from one checkpoint model file's tensors. Under expert
// parallelism (ep > 1) the file holds every expert (nn/moe.hpp's is_expert_tensor) and this rank
// only its own: the others are left out, after checking that there are ep − 1 times this rank's
// experts of them. FormatErrors name `what`; `hint` is appended to a mismatch's message.
void restore_model_file(std::map<std::string, Tensor> saved, const std::vector<Parameter*>& params, int ep,
                        const std::string& what, const std::string& hint = "");

// Copies saved[name] into each target tensor (f32, in place, so views into it stay valid). Throws
// FormatError, prefixed with `what`, naming a missing or unexpected tensor, a dtype or a shape that
// differs; `hint` (may be empty) is appended to shape mismatches to say what changes shapes.
void restore_tensors(const std::map<std::string, Tensor>& saved, const NamedTensors& targets, const std::string& what,
                     const std::string& hint = "");

// `text` written to path.tmp and renamed into place: the file is whole or absent, never partial.
void write_file_atomically(const std::filesystem::path& path, const std::string& text);
// A whole text file; FormatError naming it when it cannot be read.
std::string read_text(const std::filesystem::path& path);

// A checkpoint's model files say how each tensor is split over tensor-parallel ranks (the split can
// depend on the layout: MQA's K/V is split at tp = 1 but replicated at tp = 2), so that the shards can
// be joined without rebuilding the model in that layout: {"name": [dim, blocks], ...} for split tensors.
inline constexpr const char* kTensorParallelSplitKey = "tensor_parallel_split";
// `other_experts`: under expert parallelism, the tensors of the other ranks' experts saved beside
// `params` (each split as this rank's expert of the same role).
std::string tensor_parallel_split_json(const std::vector<Parameter*>& params, const NamedTensors& other_experts = {});

// metadata.json of a checkpoint folder: what resuming checks against the run's settings.
struct CheckpointMetadata {
  std::int64_t iteration = 0;         // iterations trained
  std::int64_t consumed_samples = 0;  // = iteration × global_batch_size (with a ramp: its batches' sum)
  // training.rampup_batch_size ("rampup_batch_size": [start, increment, samples]; absent: none).
  BatchRamp ramp;
  // Samples of the updates taken (the schedule's num_steps); read from a checkpoint without the
  // schedule's record: optimizer_steps × global_batch_size (no ramp then).
  std::int64_t scheduler_samples = 0;
  std::int64_t optimizer_steps = 0;   // = iteration − skipped_iterations (a skipped iteration takes no step)
  // Optimizer steps taken before its state began (a run resumed with checkpoint.no_load_optim):
  // the optimizer files' step is optimizer_steps − this. Absent (0) otherwise.
  std::int64_t optimizer_state_offset = 0;
  // false: saved with checkpoint.no_save_optim (Megatron-LM's --no-save-optim), no optimizer files:
  // only no_load_optim or finetune can load it. Recorded as "optimizer_saved": false; absent: true.
  bool optimizer_saved = true;
  // The loss scaler (fp16; loss_scaler.hpp): iterations whose step it skipped, and its state.
  // Absent from files written without one (read as 0 and scale 1).
  std::int64_t skipped_iterations = 0;
  double loss_scale = 1.0;
  std::int64_t loss_scale_growth_tracker = 0, loss_scale_hysteresis_tracker = 0;
  std::string optimizer;              // the optimizer plugin whose state the files hold
  std::int64_t world_size = 1, tensor_parallel = 1, pipeline_parallel = 1, data_parallel = 1, virtual_pipeline = 1;
  bool sequence_parallel = false;
  // Uneven pipeline stages (ParallelSizes): the first / last stage's layers; 0, and absent from the
  // file, for an even split.
  std::int64_t first_stage_layers = 0, last_stage_layers = 0;
  // The embedding / loss counted as a layer of the split (ParallelSizes); false, and absent from the
  // file, when not.
  bool embedding_in_split = false, loss_in_split = false;
  // expert_model_parallel_size; 1, and absent from the file, without expert parallelism. The model
  // files hold every expert whatever it is; the optimizer files follow it.
  std::int64_t expert_parallel = 1;
  // expert_tensor_parallel_size: 1 when the experts were whole under tp > 1 (each model file then
  // holds them whole); 0, and absent from the file, when they were split over tp like the rest.
  std::int64_t expert_tensor_parallel = 0;
  std::int64_t bucket_size = 0, global_batch_size = 0;
  std::uint64_t seed = 0;
  std::string config;  // the run's resolved config (TOML), for the record
  // The learning-rate and weight-decay schedule the run trained with ("opt_param_scheduler", with
  // Megatron-LM's state_dict names, its steps in samples); absent from checkpoints of older Tessera.
  std::optional<OptimizerParamSchedule> param_schedule;
};
inline constexpr const char* kCheckpointFormat = "tessera-checkpoint";
inline constexpr int kCheckpointVersion = 1;

std::string checkpoint_metadata_json(const CheckpointMetadata& meta);
// Parses metadata.json (`where` names it in errors) and checks it against itself: known format and
// version, every field present with its type and range, consumed_samples = iteration × global batch
// (and the schedule's num_steps = optimizer_steps × global batch),
// optimizer_steps = iteration − skipped_iterations, world_size = tp × pp × dp. FormatError naming the
// field otherwise.
CheckpointMetadata parse_checkpoint_metadata(std::string_view text, const std::string& where);

// The checkpoint that `load` names: the folder itself when it holds metadata.json, else a save
// folder's latest one (latest_checkpointed_iteration.txt). Its metadata is read and checked against
// itself and against the folder's name (iter_XXXXXXX = iteration). FormatError naming `what` (e.g.
// "checkpoint.load = …") and the file otherwise.
struct CheckpointFolder {
  std::filesystem::path dir;
  CheckpointMetadata meta;
};
CheckpointFolder open_checkpoint(const std::filesystem::path& load, const std::string& what);

// The "step" tensor optimizers keep: one i64.
Tensor step_tensor(std::int64_t step);
std::int64_t read_step_tensor(const std::map<std::string, Tensor>& saved, const std::string& what);

}  // namespace tessera
