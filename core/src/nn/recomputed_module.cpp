#include "tessera/nn/recomputed_module.hpp"

#include "tessera/error.hpp"
#include "tessera/nn/activation_store.hpp"
#include "tessera/nn/step_context.hpp"

namespace tessera {

Tensor RecomputedModule::forward(StepContext& ctx, const Tensor& x) {
  if (!ctx.training) return inner_->forward(ctx, x);
  ActivationStore scratch;
  StepContext run = ctx.with_store(scratch);
  Tensor y = inner_->forward(run, x);
  if (keep_input_) ctx.store().save(this, SavedTensor{x});
  return y;
}

Tensor RecomputedModule::backward(StepContext& ctx, const Tensor& dy) {
  return backward_with_input(ctx, dy, ctx.store().take<SavedTensor>(this).x);
}

Tensor RecomputedModule::backward_with_input(StepContext& ctx, const Tensor& dy, const Tensor& x) {
  ActivationStore scratch;
  StepContext run = ctx.with_store(scratch);
  inner_->forward(run, x);  // its output is not needed: only what it saves
  Tensor dx = inner_->backward(run, dy);
  if (!scratch.empty()) throw Error("selective recompute: a module's backward left saved activations behind");
  return dx;
}

ModuleCost RecomputedModule::cost(ModuleCost inner, std::int64_t input_elements) {
  inner.saved_elements = input_elements;
  inner.recompute += inner.forward;
  inner.ep_recompute += inner.ep_forward;
  return inner;
}

}  // namespace tessera
