// One training iteration, shared by the trainer and the benchmark: forward and backward over this
// rank's microbatches in the order of a pipeline schedule (gradients accumulate), gradients summed
// where the layout replicates them (tp for replicated tensors, the embedding group for the tied
// embedding, dp for everything), the global grad norm across all ranks, clipping fused into the
// optimizer step.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "tessera/model.hpp"
#include "tessera/optimizer.hpp"
#include "tessera/parallel/parallel.hpp"
#include "tessera/train/grad_buckets.hpp"
#include "tessera/schedule.hpp"

namespace tessera {

struct IterationSettings {
  std::int64_t iteration = 1;
  std::int64_t num_microbatches = 1;  // on this rank: global batch / (micro batch · dp)
  std::int64_t micro_batch_size = 1;  // sequences per microbatch (the size of what stages exchange)
  double lr = 1e-4, weight_decay = 0.0;  // the rates this update applies (the schedule's)
  double decoupled_lr = -1.0;  // the embedding's and output layer's ([optimizer] decoupled_lr); negative: lr
  // [training] calculate_per_token_loss (Megatron-Core's --calculate-per-token-loss): the objective
  // is the loss summed over the global batch's tokens divided by their count (Model::loss_tokens),
  // not the mean of the microbatches' means; the reported loss likewise.
  bool per_token_loss = false;
  double clip_grad = 1.0;  // 0: no clipping
  std::uint64_t seed = 1234;
  bool overlap_grad_reduce = false;  // start each gradient bucket's dp all-reduce during the last backward
  // Loss scaling (loss_scaler.hpp): the loss gradient is multiplied by loss_scale and the gradients
  // divided by it again in the optimizer's pass. With skip_nonfinite a non-finite gradient norm skips
  // the optimizer step (IterationResult::skipped) instead of stopping the run.
  double loss_scale = 1.0;
  bool skip_nonfinite = false;
  bool count_zeros_in_grad = false;  // [logging] log_num_zeros_in_grad: IterationResult::num_zeros_in_grad
};

// The L2 norm of every parameter's f32 value, each counted once as the grad norm counts it
// (Megatron-LM's calc_params_l2_norm, for [logging] log_params_norm): a collective over dp (with
// gradient shards), tp and pp.
double global_params_norm(const std::vector<Parameter*>& params, Optimizer& optimizer, const Parallel& parallel);

struct IterationResult {
  double loss = 0;       // mean of all microbatches' losses, over every data-parallel rank
  std::vector<double> loss_parts;  // the same mean of each part (Model::loss_part_names()), if the model has parts
  // Model::metric_names()'s statistics: Σ reported values / Σ reports over every microbatch, stage
  // and data-parallel rank.
  std::vector<double> metrics;
  double grad_norm = 0;  // of the whole model, before clipping (unscaled)
  bool skipped = false;  // non-finite gradients with skip_nonfinite: no optimizer step was taken
  // With count_zeros_in_grad, of a step taken: the gradient elements equal to 0 (global_grad_zeros,
  // on the reduced gradient before unscaling and clipping; Megatron counts after both, which differs
  // only where they underflow an element to 0); −1 otherwise.
  double num_zeros_in_grad = -1;
  std::int64_t reductions_overlapped = 0;  // gradient buckets whose dp reduction started while backward ran
  double reduce_wait_seconds = 0;          // after backward, until every reduction had finished
  std::int64_t peak_microbatches_held = 0;  // on this rank (pipeline_executor.hpp)
  std::int64_t peak_held_elements = 0;
  double pipeline_seconds = 0, pipeline_seconds_receiving = 0;  // forward/backward steps; blocked receiving
};

// `microbatch(m)` supplies this rank's microbatch m of the iteration. `schedule` null: plain
// gradient accumulation (F0 B0 F1 B1 …), which needs pp = 1. With data parallelism (dp > 1)
// `buckets` must hold exactly `params` (their grads re-pointed into it, built with
// separate_tp_reduced = tp > 1); with dp = 1 it may be null.
IterationResult run_iteration(Model& model, const std::vector<Parameter*>& params, Optimizer& optimizer,
                              const std::function<Batch(std::int64_t)>& microbatch, const IterationSettings& s,
                              const Parallel& parallel, const Schedule* schedule = nullptr,
                              GradBuckets* buckets = nullptr);

// Per-token loss ([training] calculate_per_token_loss): the weight of each of this rank's `count`
// microbatches — its tokens (Model::loss_tokens) × `global_microbatches` / the tokens of all the
// microbatches over pp and dp — so that the mean over the global batch's microbatches, each counted
// with its weight, is the mean over its tokens. The last pipeline stage reads the microbatches to
// count them and leaves them in `read` for the run (the other stages' weights are 0: they have no
// loss). Collective over pp and dp.
std::vector<double> per_token_weights(const Model& model, const std::function<Batch(std::int64_t)>& microbatch,
                                      std::int64_t count, std::int64_t global_microbatches, const Parallel& parallel,
                                      std::vector<Batch>& read);

// Context parallelism: each cp rank's gradients cover its own tokens of the sequences; after the
// data-parallel reduction (sums commute) they are summed over the cp group where that reduction
// left them — the distributed optimizer's shards, the gradient buckets, or the gradients themselves
// with one data-parallel rank. No-op with cp = 1.
void sum_over_context_parallel(const std::vector<Parameter*>& params, Optimizer& optimizer, const Parallel& parallel,
                               GradBuckets* buckets);

// The steps of one iteration on this rank: the schedule's (validated), or gradient accumulation.
std::vector<PipelineStep> iteration_steps(const Schedule* schedule, const ScheduleSpec& spec);

// A scalar summed over a group (in f32: relative error ~1e-7, far below the 1e-5 that layouts are
// compared at).
double all_reduce_sum(Communicator& group, double value);
// Element-wise: `values` summed over the group (every rank passes as many).
std::vector<double> all_reduce_sum(Communicator& group, std::vector<double> values);
// The mean over `microbatches` of each loss part, from every stage and data-parallel rank: the last
// stage holds the sums, the others pass zeros. `parts`: how many the model has.
std::vector<double> mean_loss_parts(const Parallel& parallel, std::vector<double> sums, std::size_t parts,
                                    double microbatches);
// Each of `names` (Model::metric_names) as Σ reported values / Σ reports over pp and dp (0 where
// nothing reported it).
std::vector<double> mean_metrics(const Parallel& parallel, const std::vector<std::string>& names,
                                 const StepMetrics& metrics);
// Sums the buffers' statistics of an iteration over the data-parallel ranks and hands each its
// total (BufferStatistics::apply).
void apply_buffer_statistics(const Parallel& parallel, const BufferStatistics& statistics);

// ‖grad‖ of the whole model (counts_in_grad_norm on each rank, summed over tp and pp), from the
// optimizer's reduced shards when it takes its gradients by reduce-scatter (ZeRO). Collective.
double global_grad_norm(const std::vector<Parameter*>& params, Optimizer& optimizer, const Parallel& parallel);
// The gradient elements of the whole model equal to 0, counted as the grad norm counts them
// (Megatron-LM's count_zeros_fp32, for [logging] log_num_zeros_in_grad). Collective.
double global_grad_zeros(const std::vector<Parameter*>& params, Optimizer& optimizer, const Parallel& parallel);

}  // namespace tessera
