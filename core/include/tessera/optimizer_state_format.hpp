// How an optimizer's checkpointed state maps onto its parameters, for `tessera checkpoint reshard`
// (train/checkpoint_reshard.hpp). Implemented by optimizer plugins next to the optimizer (how a
// sharded optimizer lays out its state is its own business) and exported under kind
// "optimizer_state" with the optimizer plugin's name, as "optimizer_plan" is.
//
// State that is element-wise per parameter — Adam's two moments — moves to another layout with its
// parameter: the reshard joins each slot's tensor-parallel shards and cuts them for the new layout
// exactly as it does the weights. A format unpacks one rank's optimizer file into per-parameter
// slots and packs slots back into one rank's file; the "step" tensor is the reshard's own business.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tessera/io/safetensors.hpp"
#include "tessera/nn/parameter.hpp"

namespace tessera {

class ConfigSection;

// Where one rank sits, as its optimizer saw it.
struct OptimizerRankPosition {
  std::vector<Parameter*> params;  // its (tp, pp) position's parameters, in collect_parameters order
  int tp = 1;                      // tensor-parallel size (tp > 1 buckets reduce_grad_over_tp apart)
  int dp = 1, dp_rank = 0;         // data-parallel size and this rank's place in it
  std::int64_t bucket_size = 0;    // parallel.bucket_size
  // expert_model_parallel_size: the experts' buckets (GradBucketPlan::expert_parallel) are split
  // over the dp / ep ranks holding the same experts, this rank being dp_rank / ep of them.
  int ep = 1;
};

// Parameter name → its state slots (OptimizerStateFormat::slots() order), each f32 with the
// parameter's shape on that rank.
using ParameterSlots = std::map<std::string, std::vector<Tensor>>;

class OptimizerStateFormat {
 public:
  using FactorySignature = std::unique_ptr<OptimizerStateFormat>(const ConfigSection& optimizer);
  virtual ~OptimizerStateFormat() = default;
  // The per-element state of one parameter, e.g. {"exp_avg", "exp_avg_sq"}.
  virtual std::vector<std::string> slots() const = 0;
  // True when the state is the same on every data-parallel rank holding the same experts (plain
  // adam): checkpoints then hold the files of expert_dp_rank 0 only (dp ranks 0 … ep_dp − 1;
  // train/checkpoint.hpp's OptimizerFiles), and the reshard reads those.
  virtual bool replicated_over_dp() const { return false; }
  // Copies what one rank's file (`saved`, its "step" aside) holds into `slots`, which holds zeroed
  // tensors for every parameter of `at`; with state sharded over dp, each dp rank's file fills its
  // part. FormatError naming the tensor when the file is not what `at` makes.
  virtual void unpack(const std::map<std::string, Tensor>& saved, const OptimizerRankPosition& at,
                      ParameterSlots& slots) const = 0;
  // One rank's file (without "step") from the slots of `at`'s parameters.
  virtual NamedTensors pack(const ParameterSlots& slots, const OptimizerRankPosition& at) const = 0;
};

}  // namespace tessera
