// Optimizer interface that optimizer plugins (adam, distributed_adam, docs/examples/sgd-plugin) implement.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tessera/error.hpp"
#include "tessera/io/safetensors.hpp"
#include "tessera/nn/parameter.hpp"
#include "tessera/parallel/parallel.hpp"
#include "tessera/quote.hpp"

namespace tessera {

class ConfigSection;
class GradBuckets;

// What an optimizer may need besides its parameters.
struct OptimizerContext {
  std::shared_ptr<const Parallel> parallel;  // null: one process
  // With data parallelism (dp > 1): the flat gradient buffer, each bucket split into dp equal
  // shards (GradBuckets::shard_pieces); null with dp = 1.
  GradBuckets* buckets = nullptr;
};

// The rates one update applies, from the trainer's OptimizerParamScheduler
// (train/optimizer_param_schedule.hpp): both may change from step to step.
struct UpdateRates {
  float lr = 0.0f;
  float weight_decay = 0.0f;  // for parameters with Parameter::weight_decay; the others take none
  // Megatron-Core's --decoupled-lr: the rate of the parameters with Parameter::embedding_or_output,
  // on its own schedule; negative: lr.
  float decoupled_lr = -1.0f;
  float lr_for(const Parameter& p) const { return p.embedding_or_output && decoupled_lr >= 0.0f ? decoupled_lr : lr; }
};

class Optimizer {
 public:
  using FactorySignature = std::unique_ptr<Optimizer>(const ConfigSection& optimizer,
                                                      const std::vector<Parameter*>& params,
                                                      const OptimizerContext& context);
  virtual ~Optimizer() = default;
  // One update from the accumulated grads. grad_scale multiplies every grad first (the clipping
  // coefficient, fused into the update pass). Mixed precision: a parameter with a compute copy
  // (Parameter::compute) leaves step() with that copy equal to its updated value, cast.
  virtual void step(const UpdateRates& rates, float grad_scale) = 0;
  // Makes every parameter's f32 value whole on this rank. A distributed optimizer in mixed precision
  // keeps only its shard of the f32 master weights fresh and all-gathers the compute copies (half the
  // bytes, as Megatron-LM's); this gathers the masters too. Collective over its group: the trainer
  // calls it on every rank before checkpoints and the final save read the values. Default: nothing.
  virtual void gather_master_weights() {}

  // ZeRO (a distributed optimizer): one tensor per gradient bucket, numel / dp each, into which the
  // trainer reduce-scatters that bucket over dp instead of all-reducing it; the optimizer updates
  // the parameters of its shard and all-gathers them in step(). nullptr (the default): gradients
  // are all-reduced and every rank updates every parameter.
  virtual std::vector<Tensor>* gradient_shards() { return nullptr; }
  // With gradient_shards: calls `visit` with this rank's piece of each parameter's reduced gradient
  // (ShardField::grad) or f32 master value (ShardField::value), for the pieces the global grad norm
  // counts (tensor-parallel replicas on tp rank 0 only, pipeline tied copies never). The trainer's
  // statistics of the whole model — grad norm, params norm ([logging] log_params_norm, whose values
  // only a shard's owner holds fresh in mixed precision), zeros in the gradient
  // (log_num_zeros_in_grad) — reduce what it visits on the device and sum that over dp, tp and pp
  // (an expert-parallel parameter's pieces over the expert-data-parallel and expert-parallel groups:
  // hence the parameter each piece belongs to).
  enum class ShardField { grad, value };
  virtual void visit_shards(ShardField /*field*/,
                            const std::function<void(const Tensor& piece, const Parameter& of)>& /*visit*/) const {}
  // Elements of optimizer state held by this process (memory accounting and tests).
  virtual std::int64_t state_elements() const = 0;
  // Checkpoints: this rank's state as named tensors (views are fine; the trainer writes them to
  // optimizer_tp{t}_pp{p}_dp{d}.safetensors), and its restore from what such a file holds. Names
  // must be stable across runs of the same layout; load_state checks names and shapes and throws
  // FormatError naming what mismatched. The defaults keep no state: an optimizer without any
  // (plain SGD) needs nothing more, one with state must override both or resume wrongly.
  virtual NamedTensors state() const { return {}; }
  virtual void load_state(const std::map<std::string, Tensor>& saved) {
    if (!saved.empty())
      throw FormatError(fmt::format("the checkpoint holds {} optimizer state tensor(s) (first: {}), but this "
                                    "optimizer keeps no state",
                                    saved.size(), plain_or_quoted(saved.begin()->first)));
  }
  virtual std::string describe() const = 0;
};

}  // namespace tessera
