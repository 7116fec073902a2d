#include <initializer_list>
#include <utility>

#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::last_dim;
using detail::require;
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
  detail::backend_for(op, {{"logits", &logits}, {"targets", &targets}, {"mask", &mask}, {"losses", &losses}})
      .softmax_cross_entropy(logits, targets, mask, losses, compute_grad, grad_scale);
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
  return N;
}
}  // namespace

void cross_entropy_shard_stats(Tensor& logits, const Tensor& targets, std::int64_t first_id,
                               Tensor& row_max, Tensor& sum_exp, Tensor& target_logit, bool keep_exp) {
  const std::int64_t N = shard_rows("cross_entropy_shard_stats", logits, targets,
                                    {{"row_max", &row_max}, {"sum_exp", &sum_exp}, {"target_logit", &target_logit}});
  (void)N;
  detail::backend_for("cross_entropy_shard_stats", {{"logits", &logits}, {"targets", &targets}, {"row_max", &row_max},
                                                    {"sum_exp", &sum_exp}, {"target_logit", &target_logit}})
      .cross_entropy_shard_stats(logits, targets, first_id, row_max, sum_exp, target_logit, keep_exp);
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
  detail::backend_for(op, {{"exp_logits", &exp_logits}, {"targets", &targets}, {"mask", &mask}, {"row_max", &row_max},
                           {"global_max", &global_max}, {"global_sum", &global_sum}})
      .cross_entropy_shard_grad(exp_logits, targets, first_id, mask, row_max, global_max, global_sum, grad_scale);
}

namespace {
// Every tensor f32 with the first one's element count.
void require_same_rows(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> tensors) {
  const Tensor& first = *tensors.begin()->second;
  for (const auto& [name, t] : tensors) {
    require(op, name, *t);
    require_numel(op, name, *t, first.numel(), fmt::format("{} {}", tensors.begin()->first, shape_str(first.shape())));
  }
}
}  // namespace

void cross_entropy_shard_rescale(const Tensor& row_max, const Tensor& sum_exp, const Tensor& global_max,
                                 Tensor& sum_at_global) {
  const char* op = "cross_entropy_shard_rescale";
  require_same_rows(op, {{"row_max", &row_max}, {"sum_exp", &sum_exp}, {"global_max", &global_max},
                         {"sum_at_global", &sum_at_global}});
  detail::backend_for(op, {{"row_max", &row_max}, {"sum_exp", &sum_exp}, {"global_max", &global_max},
                           {"sum_at_global", &sum_at_global}})
      .cross_entropy_shard_rescale(row_max, sum_exp, global_max, sum_at_global);
}

void cross_entropy_shard_loss(const Tensor& global_max, const Tensor& global_sum, const Tensor& target_logit,
                              Tensor& losses) {
  const char* op = "cross_entropy_shard_loss";
  require_same_rows(op, {{"global_max", &global_max}, {"global_sum", &global_sum}, {"target_logit", &target_logit},
                         {"losses", &losses}});
  detail::backend_for(op, {{"global_max", &global_max}, {"global_sum", &global_sum}, {"target_logit", &target_logit},
                           {"losses", &losses}})
      .cross_entropy_shard_loss(global_max, global_sum, target_logit, losses);
}

}  // namespace tessera::ops
