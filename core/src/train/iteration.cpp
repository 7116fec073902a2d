#include "tessera/train/iteration.hpp"

#include <cmath>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/ops.hpp"

namespace tessera {

double global_grad_norm(const std::vector<Parameter*>& params) {
  double sq = 0;
  for (const Parameter* p : params) sq += ops::sum_squares(p->grad);
  return std::sqrt(sq);
}

IterationResult run_iteration(Model& model, const std::vector<Parameter*>& params, Optimizer& optimizer,
                              const std::function<Batch(std::int64_t)>& microbatch, const IterationSettings& s) {
  for (Parameter* p : params) p->grad.zero_();
  IterationResult r;
  ActivationStore store;
  for (std::int64_t m = 0; m < s.num_microbatches; ++m) {
    StepContext ctx{store};
    ctx.seed = s.seed;
    ctx.iteration = s.iteration;
    ctx.microbatch = m;
    ctx.loss_grad_scale = 1.0f / static_cast<float>(s.num_microbatches);
    r.loss += model.forward_loss(ctx, microbatch(m)) / static_cast<double>(s.num_microbatches);
    model.backward(ctx);
    if (!store.empty()) throw Error("model backward left saved activations behind (a module saved but never took)");
  }
  r.grad_norm = global_grad_norm(params);
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
