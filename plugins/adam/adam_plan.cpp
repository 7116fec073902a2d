// What adam and distributed_adam cost on one rank, for `tessera plan` (kind "optimizer_plan",
// optimizer_plan.hpp). Both keep Adam's two f32 moments; distributed_adam shards them (and the
// gradient reduction) over the data-parallel group.
#include "tessera/optimizer_plan.hpp"
#include "tessera/plugin.hpp"

namespace tessera::adam {

namespace {

class AdamPlan : public OptimizerPlanner {
 public:
  std::string state_rule() const override { return "2 × parameters (Adam's two moments, f32)"; }
  std::int64_t state_elements(const StageParameters& stage) const override { return plan_mul(2, stage.elements); }
  std::vector<OptimizerCollective> dp_traffic(const StageParameters& stage) const override {
    return {{"all_reduce", "gradients, one all-reduce per parameter tensor", {stage.tensors, stage.elements}}};
  }
};

class DistributedAdamPlan : public OptimizerPlanner {
 public:
  explicit DistributedAdamPlan(int dp) : dp_(dp) {}
  std::string state_rule() const override { return "2 × ⌈parameters / dp⌉ (both moments sharded over dp)"; }
  std::vector<std::string> notes() const override {
    return {"distributed_adam: the state also holds its shards' share of the gradient buckets' padding (under 16 "
            "elements per parameter and 16·dp per bucket, over the dp shards). The f32 parameters (the master "
            "weights in mixed precision) stay whole on every rank: only the moments are sharded (Megatron-LM's "
            "distributed optimizer also shards its fp32 main parameters)"};
  }
  std::int64_t state_elements(const StageParameters& stage) const override {
    return plan_mul(2, plan_add(stage.elements, dp_ - 1) / dp_);
  }
  std::vector<OptimizerCollective> dp_traffic(const StageParameters& stage) const override {
    return {{"reduce_scatter", "gradients into each rank's shard (predicted)", {1, stage.elements}},
            {"all_gather", "updated parameters from every shard (predicted)", {1, stage.elements}}};
  }

 private:
  int dp_;
};

std::unique_ptr<OptimizerPlanner> make_adam_plan(const ConfigSection&, const OptimizerPlanContext&) {
  return std::make_unique<AdamPlan>();
}

std::unique_ptr<OptimizerPlanner> make_distributed_adam_plan(const ConfigSection&, const OptimizerPlanContext& context) {
  return std::make_unique<DistributedAdamPlan>(context.dp);
}

}  // namespace
}  // namespace tessera::adam

TESSERA_PLUGIN(optimizer_plan, adam, tessera::adam::make_adam_plan)
TESSERA_PLUGIN(optimizer_plan, distributed_adam, tessera::adam::make_distributed_adam_plan)
