// How adam and distributed_adam lay out their checkpointed state (kind "optimizer_state",
// optimizer_state_format.hpp), for `tessera checkpoint reshard`. Both keep Adam's two moments per
// parameter element, the slots "exp_avg" (m) and "exp_avg_sq" (v):
//   adam:             "{param}.exp_avg", "{param}.exp_avg_sq", each shaped as the parameter;
//   distributed_adam: with dp = 1 "{param}.moments" = [2, numel]; with dp > 1 "bucket.{b}.moments" =
//                     [2, n / dp], dp rank r's shard of gradient bucket b (plan_grad_buckets with the
//                     run's bucket size, tp > 1 bucketing tp-reduced parameters apart, as the trainer);
//                     under expert parallelism the experts' buckets split over the dp / ep ranks
//                     holding the same experts instead.
#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/ops.hpp"
#include "tessera/optimizer_state_format.hpp"
#include "tessera/plugin.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/grad_buckets.hpp"

namespace tessera::adam {

namespace {

Tensor flat(const Tensor& t) { return t.reshape({t.numel()}); }

class AdamStateFormat : public OptimizerStateFormat {
 public:
  std::vector<std::string> slots() const override { return {"exp_avg", "exp_avg_sq"}; }
  bool replicated_over_dp() const override { return true; }

  void unpack(const std::map<std::string, Tensor>& saved, const OptimizerRankPosition& at,
              ParameterSlots& slots) const override {
    restore_tensors(saved, named(slots, at), "adam");
  }

  NamedTensors pack(const ParameterSlots& slots, const OptimizerRankPosition& at) const override {
    return named(slots, at);
  }

 private:
  static NamedTensors named(const ParameterSlots& slots, const OptimizerRankPosition& at) {
    NamedTensors out;
    for (const Parameter* p : at.params) {
      out.emplace_back(p->name + ".exp_avg", slots.at(p->name)[0]);
      out.emplace_back(p->name + ".exp_avg_sq", slots.at(p->name)[1]);
    }
    return out;
  }
};

class DistributedAdamStateFormat : public OptimizerStateFormat {
 public:
  std::vector<std::string> slots() const override { return {"exp_avg", "exp_avg_sq"}; }

  void unpack(const std::map<std::string, Tensor>& saved, const OptimizerRankPosition& at,
              ParameterSlots& slots) const override {
    const NamedTensors files = layout(at);
    restore_tensors(saved, files, "distributed_adam",
                    fmt::format(" (data-parallel rank {} of {}, parallel.bucket_size {})", at.dp_rank, at.dp,
                                at.bucket_size));
    for_each_range(files, at, slots, [](Tensor file_range, Tensor slot_range) { ops::copy(file_range, slot_range); });
  }

  NamedTensors pack(const ParameterSlots& slots, const OptimizerRankPosition& at) const override {
    NamedTensors files = layout(at);
    for_each_range(files, at, slots, [](Tensor file_range, Tensor slot_range) { ops::copy(slot_range, file_range); });
    return files;
  }

 private:
  // The rank's file, zeroed: its tensors' names and shapes.
  static NamedTensors layout(const OptimizerRankPosition& at) {
    NamedTensors out;
    if (at.dp == 1) {
      for (const Parameter* p : at.params) out.emplace_back(p->name + ".moments", Tensor::zeros({2, p->value.numel()}));
      return out;
    }
    const std::vector<GradBucketPlan> plans = plan_grad_buckets(at.params, at.bucket_size, at.tp > 1, at.dp);
    for (std::size_t b = 0; b < plans.size(); ++b)
      out.emplace_back(fmt::format("bucket.{}.moments", b), Tensor::zeros({2, plans[b].numel / shards(plans[b], at)}));
    return out;
  }

  // How many ranks share bucket `plan`'s shards, and which of them this one is.
  static int shards(const GradBucketPlan& plan, const OptimizerRankPosition& at) {
    return plan.expert_parallel ? at.dp / at.ep : at.dp;
  }
  static int shard(const GradBucketPlan& plan, const OptimizerRankPosition& at) {
    return plan.expert_parallel ? at.dp_rank / at.ep : at.dp_rank;
  }

  // f(file range, slot range) for every run of elements that one of the file's tensors (as layout()
  // makes them) and one parameter's slot share, for both moments.
  template <typename F>
  static void for_each_range(const NamedTensors& files, const OptimizerRankPosition& at, const ParameterSlots& slots,
                             F f) {
    if (at.dp == 1) {
      for (std::size_t i = 0; i < at.params.size(); ++i) {
        const Parameter& p = *at.params[i];
        for (int s = 0; s < 2; ++s)
          f(files[i].second.rows(s, s + 1).reshape({p.value.numel()}), flat(slots.at(p.name)[s]));
      }
      return;
    }
    const std::vector<GradBucketPlan> plans = plan_grad_buckets(at.params, at.bucket_size, at.tp > 1, at.dp);
    for (std::size_t b = 0; b < plans.size(); ++b) {
      const Tensor& both = files[b].second;
      const std::int64_t n = both.size(1);
      for (const ShardPiece& piece : plan_shard_pieces(plans[b], at.params, shards(plans[b], at), shard(plans[b], at)))
        for (int s = 0; s < 2; ++s)
          f(both.rows(s, s + 1).reshape({n}).rows(piece.shard_offset, piece.shard_offset + piece.count),
            flat(slots.at(piece.param->name)[s]).rows(piece.param_offset, piece.param_offset + piece.count));
    }
  }
};

std::unique_ptr<OptimizerStateFormat> make_adam_state(const ConfigSection&) {
  return std::make_unique<AdamStateFormat>();
}

std::unique_ptr<OptimizerStateFormat> make_distributed_adam_state(const ConfigSection&) {
  return std::make_unique<DistributedAdamStateFormat>();
}

}  // namespace
}  // namespace tessera::adam

TESSERA_PLUGIN(optimizer_state, adam, tessera::adam::make_adam_state)
TESSERA_PLUGIN(optimizer_state, distributed_adam, tessera::adam::make_distributed_adam_state)
