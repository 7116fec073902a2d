#include <initializer_list>
#include <utility>

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

namespace {
// logits [N,V] with V ≥ 1; returns N after checking targets and every [N] tensor in `per_row`.
std::int64_t shard_rows(const char* op, const Tensor& logits, const Tensor& targets,
                        std::initializer_list<std::pair<const char*, const Tensor*>> per_row) {
  require(op, "logits", logits);
  require(op, "targets", targets, DType::i32);
  TESSERA_CHECK_SHAPE(logits.dim() >= 1 && last_dim(logits) > 0,
                      "logits must be [N, V] with V ≥ 1, got {}", shape_str(logits.shape()));
  const std::int64_t N = logits.numel() / last_dim(logits);
  const std::string rows = fmt::format("the {} rows of logits {}", N, shape_str(logits.shape()));
  require_numel(op, "targets", targets, N, rows);
  for (const auto& [name, t] : per_row) {
    require(op, name, *t);
    require_numel(op, name, *t, N, rows);
  }
  const std::int32_t* p = targets.data<std::int32_t>();
  for (std::int64_t i = 0; i < N; ++i)
    if (p[i] < 0) throw ShapeError(fmt::format("{}: targets[{}] = {} is negative", op, i, p[i]));
  return N;
}
}  // namespace

void cross_entropy_shard_stats(Tensor& logits, const Tensor& targets, std::int64_t first_id,
                               Tensor& row_max, Tensor& sum_exp, Tensor& target_logit, bool keep_exp) {
  const std::int64_t N = shard_rows("cross_entropy_shard_stats", logits, targets,
                                    {{"row_max", &row_max}, {"sum_exp", &sum_exp}, {"target_logit", &target_logit}});
  cpu::cross_entropy_shard_stats(logits.data<float>(), targets.data<std::int32_t>(), first_id,
                                 row_max.data<float>(), sum_exp.data<float>(), target_logit.data<float>(),
                                 N, last_dim(logits), keep_exp);
}

void cross_entropy_shard_grad(Tensor& exp_logits, const Tensor& targets, std::int64_t first_id,
                              const Tensor& mask, const Tensor& row_max, const Tensor& global_max,
                              const Tensor& global_sum, float grad_scale) {
  const char* op = "cross_entropy_shard_grad";
  const std::int64_t N = shard_rows(op, exp_logits, targets,
                                    {{"row_max", &row_max}, {"global_max", &global_max}, {"global_sum", &global_sum}});
  if (mask.defined()) {
    require(op, "mask", mask);
    require_numel(op, "mask", mask, N, "the rows of logits");
  }
  cpu::cross_entropy_shard_grad(exp_logits.data<float>(), targets.data<std::int32_t>(), first_id,
                                mask.defined() ? mask.data<float>() : nullptr, row_max.data<float>(),
                                global_max.data<float>(), global_sum.data<float>(), grad_scale, N,
                                last_dim(exp_logits));
}

}  // namespace tessera::ops
