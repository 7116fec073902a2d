#include "op_checks.hpp"
#include "tessera/kernels/cpu/cross_entropy.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::last_dim;
using detail::require;
using detail::require_ids_in_range;
using detail::require_numel;

void softmax_cross_entropy(Tensor& logits, const Tensor& targets, const Tensor& mask,
                           Tensor& losses, bool compute_grad, float grad_scale) {
  const char* op = "softmax_cross_entropy";
  require(op, "logits", logits);
  require(op, "targets", targets, DType::i32);
  require(op, "losses", losses);
  TESSERA_CHECK_SHAPE(logits.dim() >= 1 && last_dim(logits) > 0,
                      "logits must be [N, V] with V ≥ 1, got {}", shape_str(logits.shape()));
  const std::int64_t V = last_dim(logits), N = logits.numel() / V;
  const std::string rows = fmt::format("the {} rows of logits {}", N, shape_str(logits.shape()));
  require_numel(op, "targets", targets, N, rows);
  require_numel(op, "losses", losses, N, rows);
  if (mask.defined()) {
    require(op, "mask", mask);
    require_numel(op, "mask", mask, N, rows);
  }
  require_ids_in_range(op, "targets", targets, V);
  cpu::softmax_cross_entropy(logits.data<float>(), targets.data<std::int32_t>(),
                             mask.defined() ? mask.data<float>() : nullptr, losses.data<float>(), N,
                             V, compute_grad, grad_scale);
}

}  // namespace tessera::ops
