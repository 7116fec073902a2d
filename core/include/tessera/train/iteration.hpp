// One training iteration, shared by the trainer and the benchmark: forward and backward over the
// microbatches (gradients accumulate), global grad norm, clipping fused into the optimizer step.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "tessera/model.hpp"
#include "tessera/optimizer.hpp"

namespace tessera {

struct IterationSettings {
  std::int64_t iteration = 1;
  std::int64_t num_microbatches = 1;
  double lr = 1e-4;
  double clip_grad = 1.0;  // 0: no clipping
  std::uint64_t seed = 1234;
};

struct IterationResult {
  double loss = 0;       // mean of the microbatches' losses
  double grad_norm = 0;  // before clipping
};

// `microbatch(m)` supplies microbatch m of the iteration.
IterationResult run_iteration(Model& model, const std::vector<Parameter*>& params, Optimizer& optimizer,
                              const std::function<Batch(std::int64_t)>& microbatch, const IterationSettings& s);

double global_grad_norm(const std::vector<Parameter*>& params);

}  // namespace tessera
