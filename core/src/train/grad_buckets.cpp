#include "tessera/train/grad_buckets.hpp"

#include "tessera/ops.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

namespace {

constexpr std::int64_t kAlign = 16;  // elements: 64 bytes of f32, the CPU allocator's alignment

std::int64_t align_up(std::int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

std::vector<GradBucketPlan> plan_grad_buckets(const std::vector<Parameter*>& params, std::int64_t bucket_size,
                                              bool separate_tp_reduced, int shards) {
  if (bucket_size < 1) throw Error(fmt::format("gradient bucket size must be at least 1, got {}", bucket_size));
  if (shards < 1) throw Error(fmt::format("gradient buckets need at least 1 shard, got {}", shards));
  const std::int64_t bucket_multiple = kAlign * shards;  // dp equal, aligned shards
  std::vector<GradBucketPlan> plans;
  // Two passes when separating: first every parameter summed over dp only, then those summed over
  // tp first; then the expert-parallel parameters (summed over the expert-data-parallel group), if
  // any. Each pass walks the parameters in backward order.
  enum class Pass { dp, after_tp, expert };
  for (const Pass pass : {Pass::dp, Pass::after_tp, Pass::expert}) {
    if (pass == Pass::after_tp && !separate_tp_reduced) continue;
    const bool late = pass == Pass::after_tp;
    GradBucketPlan cur;
    const auto fresh = [&] {
      cur = GradBucketPlan{};
      cur.after_tp_reduce = late;
      cur.expert_parallel = pass == Pass::expert;
    };
    fresh();
    auto close = [&] {
      if (cur.params.empty()) return;
      cur.numel = (cur.numel + bucket_multiple - 1) / bucket_multiple * bucket_multiple;
      plans.push_back(std::move(cur));
      fresh();
    };
    for (std::size_t k = params.size(); k-- > 0;) {
      const Parameter& p = *params[k];
      if (p.expert_parallel != (pass == Pass::expert)) continue;
      if (p.expert_parallel && p.reduce_grad_over_tp)
        throw Error(fmt::format("gradient buckets: '{}' is expert-parallel and summed over tp: no bucket sums both",
                                p.name));
      if (separate_tp_reduced && !p.expert_parallel && p.reduce_grad_over_tp != late) continue;
      const std::int64_t n = p.grad.numel();
      const std::int64_t offset = align_up(cur.numel);
      if (!cur.params.empty() && offset + n > bucket_size) close();
      const std::int64_t start = align_up(cur.numel);
      cur.params.push_back(k);
      cur.offsets.push_back(start);
      cur.numel = start + n;
      if (cur.numel >= bucket_size) close();
    }
    close();
  }
  return plans;
}

GradBuckets::GradBuckets(const std::vector<Parameter*>& params, std::int64_t bucket_size, bool separate_tp_reduced,
                         int shards)
    : bucket_size_(bucket_size), separate_tp_reduced_(separate_tp_reduced), shards_(shards) {
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (params[i]->grad.dtype() != DType::f32 || params[i]->grad.numel() != params[i]->value.numel())
      throw Error(fmt::format("gradient buckets: '{}' has gradient {} for value {}; expected f32 of the same size",
                              params[i]->name, params[i]->grad.str(), params[i]->value.str()));
    if (!index_.emplace(params[i], i).second)
      throw Error(fmt::format("gradient buckets: parameter '{}' is listed twice", params[i]->name));
  }
  const std::vector<GradBucketPlan> plans = plan_grad_buckets(params, bucket_size, separate_tp_reduced, shards);
  std::int64_t total = 0;
  for (const GradBucketPlan& b : plans) total += b.numel;  // each numel is a multiple of 16
  // On the parameters' device (all of one model's parameters share one).
  buffer_ = params.empty() ? Tensor::zeros({total}) : params.front()->grad.new_zeros({total});
  bucket_of_.assign(params.size(), 0);
  std::int64_t begin = 0;
  for (const GradBucketPlan& plan : plans) {
    Bucket b;
    b.data = buffer_.rows(begin, begin + plan.numel);
    b.after_tp_reduce = plan.after_tp_reduce;
    b.expert_parallel = plan.expert_parallel;
    for (std::size_t j = 0; j < plan.params.size(); ++j) {
      Parameter& p = *params[plan.params[j]];
      const std::int64_t n = p.grad.numel();
      Tensor view = b.data.rows(plan.offsets[j], plan.offsets[j] + n).reshape(p.grad.shape());
      ops::copy(p.grad, view);
      p.grad = view;
      b.params.push_back(&p);
      b.offsets.push_back(plan.offsets[j]);
      bucket_of_[plan.params[j]] = buckets_.size();
    }
    buckets_.push_back(std::move(b));
    begin += plan.numel;
  }
}

namespace {

// Shard `shard` of a bucket of `numel` elements holding `params` at `offsets`.
std::vector<ShardPiece> pieces_of(const std::vector<Parameter*>& params, const std::vector<std::int64_t>& offsets,
                                  std::int64_t numel, int shards, int shard) {
  const std::int64_t n = numel / shards, begin = shard * n, end = begin + n;
  std::vector<ShardPiece> pieces;
  for (std::size_t j = 0; j < params.size(); ++j) {
    const std::int64_t lo = std::max(begin, offsets[j]);
    const std::int64_t hi = std::min(end, offsets[j] + params[j]->value.numel());
    if (lo < hi) pieces.push_back({params[j], lo - offsets[j], lo - begin, hi - lo});
  }
  return pieces;
}

}  // namespace

std::vector<ShardPiece> GradBuckets::shard_pieces(std::size_t b, int shard, int shards) const {
  const Bucket& bucket = buckets_.at(b);
  if (shards < 1 || bucket.data.numel() % (kAlign * shards) != 0)
    throw Error(fmt::format("gradient bucket {} of {} elements does not split into {} aligned shards", b,
                            bucket.data.numel(), shards));
  return pieces_of(bucket.params, bucket.offsets, bucket.data.numel(), shards, shard);
}

std::vector<ShardPiece> plan_shard_pieces(const GradBucketPlan& plan, const std::vector<Parameter*>& params,
                                          int shards, int shard) {
  std::vector<Parameter*> in_bucket;
  for (std::size_t k : plan.params) in_bucket.push_back(params.at(k));
  return pieces_of(in_bucket, plan.offsets, plan.numel, shards, shard);
}

std::size_t GradBuckets::index_of(const Parameter& p) const {
  auto it = index_.find(&p);
  if (it == index_.end())
    throw Error(fmt::format("gradient buckets: parameter '{}' is not one of the bucketed parameters", p.name));
  return it->second;
}

}  // namespace tessera
