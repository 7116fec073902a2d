// One training iteration, shared by the trainer and the benchmark: forward and backward over this
// rank's microbatches (gradients accumulate), gradients all-reduced over the data-parallel group,
// the global grad norm across all ranks, clipping fused into the optimizer step.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "tessera/model.hpp"
#include "tessera/optimizer.hpp"
#include "tessera/parallel/parallel.hpp"
#include "tessera/train/grad_buckets.hpp"

namespace tessera {

struct IterationSettings {
  std::int64_t iteration = 1;
  std::int64_t num_microbatches = 1;  // on this rank: global batch / (micro batch · dp)
  double lr = 1e-4;
  double clip_grad = 1.0;  // 0: no clipping
  std::uint64_t seed = 1234;
  bool overlap_grad_reduce = false;  // start each gradient bucket's dp all-reduce during the last backward
};

struct IterationResult {
  double loss = 0;       // mean of all microbatches' losses, over every data-parallel rank
  double grad_norm = 0;  // of the whole model, before clipping
  std::int64_t reductions = 0;             // gradient all-reduces over dp (one per bucket; 0 without dp)
  std::int64_t reductions_overlapped = 0;  // of those, started while backward ran
  double reduce_wait_seconds = 0;          // after backward, until every reduction had finished
};

// `microbatch(m)` supplies this rank's microbatch m of the iteration. With data parallelism
// (dp > 1) `buckets` must hold exactly `params` (their grads re-pointed into it, built with
// separate_tp_reduced = tp > 1); with dp = 1 it may be null.
IterationResult run_iteration(Model& model, const std::vector<Parameter*>& params, Optimizer& optimizer,
                              const std::function<Batch(std::int64_t)>& microbatch, const IterationSettings& s,
                              const Parallel& parallel, GradBuckets* buckets = nullptr);

// ‖grad‖ of the whole model: tensor-parallel shards summed across tp, replicated tensors counted once.
double global_grad_norm(const std::vector<Parameter*>& params, const Parallel& parallel);

}  // namespace tessera
