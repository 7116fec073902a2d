// The "distributed_adam" optimizer plugin: Adam/AdamW with its state sharded over the
// data-parallel group, as Megatron-LM's distributed optimizer (ZeRO stage 1) does it.
//
// The trainer's gradient buckets (GradBuckets) are flat ranges split into dp equal shards. Each
// iteration the trainer reduce-scatters every bucket over dp (instead of all-reducing it), so rank r
// holds the summed gradients of shard r of every bucket, and only those (gradient_shards()). step()
// then updates the parameter elements of its shards with its 1/dp of Adam's moments — the same
// element-wise update plain Adam applies — and all-gathers every bucket's updated shards back into
// the parameters, so every rank ends the step with the whole model, as with plain Adam. The grad
// norm comes from the shards (visit_shards). In mixed precision (parameters with bf16/f16
// compute copies) the update writes this shard's copies straight into a compute-dtype staging
// buffer and only those are all-gathered — half the bytes, as Megatron-LM's distributed optimizer:
// each rank's f32 master weights are then fresh on its own shard only, and gather_master_weights()
// all-gathers them (f32) when the trainer is about to save them.
//
// With dp = 1 there are no buckets and this is plain Adam over whole tensors. Under expert parallelism
// the experts' buckets split over their expert-data-parallel group (dp / ep ranks) instead of dp.
#include <algorithm>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/ops.hpp"
#include "tessera/optim/adam_settings.hpp"
#include "tessera/optimizer.hpp"
#include "tessera/plugin.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/grad_buckets.hpp"

namespace tessera::distributed_adam {

namespace {

// What one update touches: a run of one parameter's elements, the summed gradient of that run,
// and its moments.
struct Piece {
  Parameter* param;
  Tensor value, grad, m, v;  // 1-D views
  Tensor staged;             // its place in the bucket's all-gather input (ZeRO only)
  Tensor copy;               // mixed precision without buckets: the compute copy, written in the update
  std::int64_t param_offset = 0;  // where value starts in the parameter's elements
};

Tensor flat(const Tensor& t) { return t.reshape({t.numel()}); }

class DistributedAdam : public Optimizer {
 public:
  DistributedAdam(const AdamSettings& s, const std::vector<Parameter*>& params, const OptimizerContext& context)
      : s_(s), buckets_(context.buckets), compute_dtype_(compute_dtype_of(params)) {
    if (!buckets_) {  // one data-parallel rank: every parameter whole, gradients where backward left them
      for (Parameter* p : params) {
        state_.push_back(p->value.new_zeros({2, p->value.numel()}));
        pieces_.push_back({p, flat(p->value), flat(p->grad), state_.back().rows(0, 1).reshape({p->value.numel()}),
                           state_.back().rows(1, 2).reshape({p->value.numel()}), Tensor{},
                           p->compute.defined() ? flat(p->compute) : Tensor{}});
      }
      return;
    }
    if (!context.parallel) throw Error("distributed_adam: gradient buckets without a parallel layout");
    dp_ = context.parallel->groups.dp;
    expert_dp_ = context.parallel->groups.expert_dp ? context.parallel->groups.expert_dp : dp_;
    tp_rank_ = context.parallel->layout.tp_rank();
    if (buckets_->shards() != dp_->size())
      throw Error(fmt::format("distributed_adam: gradient buckets split into {} shards for {} data-parallel ranks",
                              buckets_->shards(), dp_->size()));
    for (std::size_t b = 0; b < buckets_->size(); ++b) {
      Communicator& group = group_of(b);
      const std::int64_t n = buckets_->buckets()[b].data.numel() / group.size();
      const Tensor& like = buckets_->buckets()[b].data;  // on the parameters' device
      shards_.push_back(like.new_zeros({n}));
      staged_.push_back(like.new_zeros({n}));    // updated parameters of this shard, padding zero
      if (compute_dtype_ != DType::f32) {        // mixed precision: the copies are what step() gathers
        staged_copies_.push_back(like.new_zeros({n}, compute_dtype_));
        gathered_copies_.push_back(like.new_zeros({n * group.size()}, compute_dtype_));
      }
      state_.push_back(like.new_zeros({2, n}));  // m and v of this rank's shard, padding included
      const Tensor m = state_.back().rows(0, 1).reshape({n}), v = state_.back().rows(1, 2).reshape({n});
      for (const ShardPiece& sp : buckets_->shard_pieces(b, group.rank(), group.size())) {
        const std::int64_t lo = sp.shard_offset, hi = sp.shard_offset + sp.count;
        pieces_.push_back({sp.param, flat(sp.param->value).rows(sp.param_offset, sp.param_offset + sp.count),
                           shards_.back().rows(lo, hi), m.rows(lo, hi), v.rows(lo, hi), staged_.back().rows(lo, hi),
                           compute_dtype_ != DType::f32 ? staged_copies_.back().rows(lo, hi) : Tensor{},
                           sp.param_offset});
      }
    }
    if (compute_dtype_ != DType::f32)
      for (Parameter* p : params)
        if (p->forward_reads_value) read_masters_.push_back(p);
  }

  std::vector<Tensor>* gradient_shards() override { return buckets_ ? &shards_ : nullptr; }

  void visit_shards(ShardField field, const std::function<void(const Tensor&, const Parameter&)>& visit) const override {
    for (const Piece& p : pieces_)
      if (counts_in_grad_norm(*p.param, tp_rank_)) visit(field == ShardField::grad ? p.grad : p.value, *p.param);
  }

  void step(const UpdateRates& rates, float grad_scale) override {
    ops::AdamParams a = adam_params(s_, rates.lr, grad_scale, ++step_);
    for (Piece& p : pieces_) {
      a.lr = rates.lr_for(*p.param);
      a.weight_decay = p.param->weight_decay ? rates.weight_decay : 0.0f;
      ops::adam_step(p.value, p.grad, p.m, p.v, a, p.copy.defined() ? &p.copy : nullptr);
    }
    if (!buckets_) return;
    if (compute_dtype_ == DType::f32) {
      gather_values();
    } else {
      gather_copies();
      gather_read_masters();
    }
  }

  void gather_master_weights() override {
    if (buckets_ && compute_dtype_ != DType::f32) gather_values();
  }

  std::int64_t state_elements() const override {
    std::int64_t n = 0;
    for (const Tensor& t : state_) n += t.numel();
    return n;
  }

  // This rank's shard state: per gradient bucket b, "bucket.{b}.moments" = [2, n] (m, v of the
  // shard, padding included); without buckets (dp = 1), "{parameter}.moments" per parameter.
  NamedTensors state() const override {
    NamedTensors out;
    for (std::size_t i = 0; i < state_.size(); ++i)
      out.emplace_back(buckets_ ? fmt::format("bucket.{}.moments", i) : pieces_[i].param->name + ".moments", state_[i]);
    out.emplace_back("step", step_tensor(step_));
    return out;
  }

  void load_state(const std::map<std::string, Tensor>& saved) override {
    NamedTensors targets = state();
    targets.pop_back();  // step
    const std::int64_t step = read_step_tensor(saved, "distributed_adam");
    restore_tensors(saved, targets, "distributed_adam",
                    fmt::format(" (this rank's shards with data-parallel size {} and this run's parallel.bucket_size: "
                                "a different data-parallel size or bucket size changes the shards' number and shapes)",
                                dp_ ? dp_->size() : 1));
    step_ = step;
  }

  std::string describe() const override {
    const std::string experts = expert_dp_ && expert_dp_->size() != dp_->size()
                                    ? fmt::format(" (the experts' over their {} expert-data-parallel ranks)", expert_dp_->size())
                                    : "";
    return fmt::format("{}), state sharded over {} data-parallel ranks{} (ZeRO-1): {} moment elements on this rank",
                       describe_adam(s_), dp_ ? dp_->size() : 1, experts, state_elements());
  }

 private:
  // Every bucket's updated shards, all-gathered into its full layout and copied into the parameters.
  // The gather lands in the bucket's gradient buffer: the gradients are spent once step() runs
  // (the norm was taken, the shards updated) and are zeroed before the next backward, so no
  // full-size buffer is allocated per step.
  // All parameters (f32), every rank's updated shard into every rank.
  void gather_values() {
    for (Piece& p : pieces_) ops::copy(p.value, p.staged);
    for (std::size_t b = 0; b < buckets_->size(); ++b) {
      Tensor& all = buckets_->data(b);
      group_of(b).all_gather(staged_[b], all);
      const GradBuckets::Bucket& bucket = buckets_->buckets()[b];
      for (std::size_t j = 0; j < bucket.params.size(); ++j) {
        Parameter& p = *bucket.params[j];
        Tensor dst = flat(p.value);
        ops::copy(all.rows(bucket.offsets[j], bucket.offsets[j] + p.value.numel()), dst);  // whole, own shard too
      }
    }
  }

  // Mixed precision: the compute copies only, which step() wrote into staged_copies_.
  void gather_copies() {
    for (std::size_t b = 0; b < buckets_->size(); ++b) {
      group_of(b).all_gather(staged_copies_[b], gathered_copies_[b]);
      const GradBuckets::Bucket& bucket = buckets_->buckets()[b];
      for (std::size_t j = 0; j < bucket.params.size(); ++j) {
        Parameter& p = *bucket.params[j];
        Tensor dst = flat(p.compute);
        ops::copy(gathered_copies_[b].rows(bucket.offsets[j], bucket.offsets[j] + p.value.numel()), dst);
      }
    }
  }

  // Mixed precision: the f32 masters that forward reads (Parameter::forward_reads_value), whole on
  // every rank. Each element is fresh on the one rank whose shard holds it: the others add zeros
  // (exact), so a sum over dp is the gather. Small tensors (a vocabulary-sized bias), once a step.
  void gather_read_masters() {
    for (Parameter* param : read_masters_) {
      Tensor whole = param->value.new_zeros({param->value.numel()});
      for (const Piece& p : pieces_)
        if (p.param == param) {
          Tensor dst = whole.rows(p.param_offset, p.param_offset + p.value.numel());
          ops::copy(p.value, dst);
        }
      (param->expert_parallel ? *expert_dp_ : *dp_).all_reduce(whole, ReduceOp::sum);
      Tensor dst = flat(param->value);
      ops::copy(whole, dst);
    }
  }

  // The ranks that share bucket b's shards: dp, or for the experts' buckets the ranks holding the
  // same experts (expert parallelism).
  Communicator& group_of(std::size_t b) const {
    return buckets_->buckets()[b].expert_parallel ? *expert_dp_ : *dp_;
  }

  // bf16/f16 when the parameters carry compute copies (all the same dtype), else f32.
  static DType compute_dtype_of(const std::vector<Parameter*>& params) {
    DType t = DType::f32;
    for (const Parameter* p : params) {
      const DType mine = p->compute.defined() ? p->compute.dtype() : DType::f32;
      if (p != params.front() && mine != t)
        throw Error(fmt::format("distributed_adam: parameter {} computes in {}, others in {}", p->name,
                                dtype_name(mine), dtype_name(t)));
      t = mine;
    }
    return t;
  }

  AdamSettings s_;
  GradBuckets* buckets_;
  std::shared_ptr<Communicator> dp_;
  std::shared_ptr<Communicator> expert_dp_;  // the experts' buckets' shard group (dp without expert parallelism)
  int tp_rank_ = 0;
  std::vector<Tensor> shards_;  // per bucket: this rank's reduce-scattered gradients
  std::vector<Tensor> staged_;  // per bucket: this rank's updated parameters, the all-gather's input
  DType compute_dtype_;
  std::vector<Tensor> staged_copies_, gathered_copies_;  // mixed precision: per bucket, the copies' shard and all
  std::vector<Tensor> state_;   // per bucket (or per parameter without buckets): [2, n] = m, v
  std::vector<Piece> pieces_;
  std::vector<Parameter*> read_masters_;  // mixed precision: the forward_reads_value ones
  std::int64_t step_ = 0;
};

std::unique_ptr<Optimizer> make_distributed_adam(const ConfigSection& s, const std::vector<Parameter*>& params,
                                                 const OptimizerContext& context) {
  return std::make_unique<DistributedAdam>(read_adam_settings(s), params, context);
}

}  // namespace
}  // namespace tessera::distributed_adam

TESSERA_PLUGIN(optimizer, distributed_adam, tessera::distributed_adam::make_distributed_adam)
