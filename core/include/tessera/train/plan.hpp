// `tessera plan`: what a config's layout costs on every pipeline stage, before any run — per-rank
// parameters, gradients and optimizer state, activations saved per microbatch and at the schedule's
// peak, communication per iteration for each process group, the pipeline bubble and the model
// FLOPs. Nothing is allocated and no process is started.
//
// The model's shape math comes from its plugin (kind "model_plan", model_plan.hpp); the held
// microbatches come from the schedule plugin's own step list (walked as the pipeline executor walks
// it), so the plan cannot disagree with the schedule. Sizes a real run would refuse raise the same
// ConfigErrors. docs/plan.md explains every figure.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/config.hpp"
#include "tessera/model_plan.hpp"
#include "tessera/parallel/parallel_layout.hpp"

namespace tessera {

struct PlanRequest {
  int world_size = 1;
  std::int64_t vocab_size = 0;  // 0: the config's tokenizer's (its files must exist)
};

// One kind of traffic of one rank in one iteration.
struct PlanTraffic {
  std::string group;  // tp, pp, dp, embedding
  std::string op;     // all_reduce, reduce_scatter, all_gather, send
  std::string what;
  int group_size = 1;
  CollectiveCount count;  // calls, and the elements of the tensors handed to them (f32)
  // Bytes this rank sends with ring algorithms: all-reduce 2(n−1)/n of the tensor, reduce-scatter
  // and all-gather (n−1)/n of the full buffer, a send all of it.
  double bytes_sent = 0;
};

struct StagePlan {
  int stage = 0;
  std::vector<ModelChunkCost> chunks;  // vpp entries: chunk c is virtual stage c·pp + stage
  // Per rank of this stage (elements; f32, so bytes are 4×).
  std::int64_t parameters = 0, gradients = 0, optimizer_state = 0;
  std::int64_t activation_elements = 0;  // one microbatch through every chunk of the stage
  // The schedule's step list walked as the executor walks it: the most (microbatch, chunk) forward
  // passes whose activations are held at once, and the most activation elements held at once.
  std::int64_t peak_passes_held = 0, peak_held_elements = 0;
  std::vector<PlanTraffic> traffic;  // per iteration
  // The memory all of the above count, at 4 bytes per element: the plan's total per rank.
  double f32_bytes() const {
    return 4.0 * (static_cast<double>(parameters) + static_cast<double>(gradients) +
                  static_cast<double>(optimizer_state) + static_cast<double>(peak_held_elements));
  }
};

struct Plan {
  std::string config;  // the config file
  std::string model, schedule, optimizer, optimizer_state_rule;
  ParallelSizes sizes;
  int world_size = 1, dp = 1;
  std::int64_t vocab_size = 0, seq_length = 0;
  std::int64_t micro_batch_size = 1, global_batch_size = 1;
  std::int64_t num_microbatches = 1;  // per data-parallel rank and iteration
  std::int64_t total_parameters = 0;  // the whole model, each tensor once
  std::vector<StagePlan> stages;
  // Pipeline bubble as a share of the ideal (bubble-free) time and of the whole iteration.
  double bubble_of_ideal = 0, bubble_of_iteration = 0;
  std::string bubble_formula;
  double flops_per_iteration = 0;  // model FLOPs of one global batch (Megatron-LM's accounting)
  std::vector<std::string> notes;
};

// Reads the config's [parallel], [training], [model], [schedule], [optimizer] (and [tokenizer]
// unless request.vocab_size is given) for a run on request.world_size processes.
Plan make_plan(const Config& config, const PlanRequest& request);

}  // namespace tessera
