// What an optimizer costs on one rank, for `tessera plan` (train/plan.hpp): its state and its
// data-parallel traffic, computed from parameter counts alone. Implemented by optimizer plugins next
// to the optimizer (a sharded optimizer's state and collectives are its own business) and exported
// under kind "optimizer_plan" with the optimizer plugin's name. An optimizer without one is planned
// with no state and one gradient all-reduce per parameter tensor, with a note saying so.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tessera/model_plan.hpp"

namespace tessera {

class ConfigSection;

struct OptimizerPlanContext {
  int dp = 1;  // data-parallel size: the ranks that hold copies (or shards) of each stage
};

// One pipeline stage's parameters on one rank (its tensor-parallel shards).
struct StageParameters {
  std::int64_t tensors = 0;   // Parameter objects
  std::int64_t elements = 0;  // their elements
};

// A collective over the data-parallel group per iteration.
struct OptimizerCollective {
  std::string op;    // all_reduce, reduce_scatter, all_gather
  std::string what;  // for the plan's table
  CollectiveCount count;
};

class OptimizerPlanner {
 public:
  using FactorySignature = std::unique_ptr<OptimizerPlanner>(const ConfigSection& optimizer,
                                                             const OptimizerPlanContext& context);
  virtual ~OptimizerPlanner() = default;

  // How the state follows from the parameters, for the plan's header: "2 × parameters (...)".
  virtual std::string state_rule() const = 0;
  // What the figures leave out, one line each (may be empty).
  virtual std::vector<std::string> notes() const { return {}; }
  // State elements (f32) one rank of the stage holds.
  virtual std::int64_t state_elements(const StageParameters& stage) const = 0;
  // The stage's gradient and parameter collectives over dp in one iteration (asked only when dp > 1).
  virtual std::vector<OptimizerCollective> dp_traffic(const StageParameters& stage) const = 0;
};

}  // namespace tessera
