#include "tessera/train/iteration.hpp"

#include <chrono>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/ops.hpp"
#include "tessera/train/gradient_reducer.hpp"

namespace tessera {

namespace {

// A scalar summed over a group in f32 (relative error ~1e-7, far below the 1e-5 that layouts are
// compared at).
double all_reduce_sum(Communicator& group, double value) {
  if (group.size() == 1) return value;
  Tensor v = Tensor::full({1}, static_cast<float>(value));
  group.all_reduce(v);
  return v.data<float>()[0];
}

}  // namespace

double global_grad_norm(const std::vector<Parameter*>& params, const Parallel& parallel) {
  const bool first_tp_rank = parallel.layout.tp_rank() == 0;
  double sq = 0;
  for (const Parameter* p : params)
    if (p->tp_split_dim >= 0 || first_tp_rank) sq += ops::sum_squares(p->grad);
  sq = all_reduce_sum(*parallel.groups.tp, sq);
  return std::sqrt(sq);
}

IterationResult run_iteration(Model& model, const std::vector<Parameter*>& params, Optimizer& optimizer,
                              const std::function<Batch(std::int64_t)>& microbatch, const IterationSettings& s,
                              const Parallel& parallel, GradBuckets* buckets) {
  Communicator& dp = *parallel.groups.dp;
  if (dp.size() > 1 && (!buckets || buckets->num_params() != params.size()))
    throw Error(fmt::format("run_iteration: data parallelism ({}) needs the parameters' gradient buckets ({} "
                            "parameters, buckets hold {})",
                            dp.describe(), params.size(), buckets ? buckets->num_params() : 0));
  // Mixed into ordinary buckets, a gradient still to be summed over tp could be sent over dp early.
  if (dp.size() > 1 && parallel.layout.tp() > 1 && !buckets->separates_tp_reduced())
    throw Error("run_iteration: under tensor parallelism the gradient buckets must keep reduce_grad_over_tp "
                "parameters apart (GradBuckets with separate_tp_reduced)");
  if (buckets)
    buckets->zero_grads();
  else
    for (Parameter* p : params) p->grad.zero_();
  // The objective is the mean loss over every microbatch of the global batch, on all dp ranks.
  const std::int64_t total_microbatches = s.num_microbatches * dp.size();
  IterationResult r;
  ActivationStore store;
  std::optional<GradientReducer> reducer;
  if (dp.size() > 1) reducer.emplace(*buckets, dp, s.overlap_grad_reduce);
  for (std::int64_t m = 0; m < s.num_microbatches; ++m) {
    StepContext ctx{store};
    if (m == s.num_microbatches - 1 && reducer) ctx.grad_listener = &*reducer;
    ctx.seed = s.seed;
    ctx.iteration = s.iteration;
    ctx.microbatch = m * dp.size() + dp.rank();  // the global microbatch index: dropout masks as one process
    ctx.loss_grad_scale = 1.0f / static_cast<float>(total_microbatches);
    r.loss += model.forward_loss(ctx, microbatch(m)) / static_cast<double>(total_microbatches);
    model.backward(ctx);
    if (!store.empty()) throw Error("model backward left saved activations behind (a module saved but never took)");
  }
  // Replicated tensors whose gradient each tp rank computed from its own heads (MQA's K/V) are
  // summed over tp once per iteration, after all microbatches (inside backward they would be
  // re-summed with every microbatch's +=), and before the data-parallel sum.
  if (parallel.layout.tp() > 1)
    for (Parameter* p : params)
      if (p->reduce_grad_over_tp) parallel.groups.tp->all_reduce(p->grad);
  if (reducer) {
    const auto t0 = std::chrono::steady_clock::now();
    reducer->finish();
    r.reduce_wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.reductions = static_cast<std::int64_t>(buckets->size());
    r.reductions_overlapped = reducer->started_during_backward();
  }
  r.loss = all_reduce_sum(dp, r.loss);
  r.grad_norm = global_grad_norm(params, parallel);
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm))
    throw Error(fmt::format("iteration {}: loss {} / grad norm {} is not finite; lower optimizer.lr or check the data",
                            s.iteration, r.loss, r.grad_norm));
  // Megatron-LM: scale grads by clip / (norm + 1e-6) when that is below 1.
  float coeff = 1.0f;
  if (s.clip_grad > 0) {
    const double c = s.clip_grad / (r.grad_norm + 1e-6);
    if (c < 1.0) coeff = static_cast<float>(c);
  }
  optimizer.step(static_cast<float>(s.lr), coeff);
  return r;
}

}  // namespace tessera
