// What a model costs on one rank, computed from its config alone: parameters, saved activations,
// tensor-parallel communication. Implemented by model plugins next to the model (the shape math is
// the model's business), exported under kind "model_plan" with the model plugin's name, and used by
// `tessera plan` (train/plan.hpp) before any run — nothing is allocated, no communicator exists, so
// a 175B-parameter layout on 1,024 ranks is planned on a laptop.
//
// The figures describe THIS implementation, not an idealised transformer: activations are exactly
// what the model's modules save on their ActivationStore for backward (each distinct tensor once,
// as ActivationStore::held_elements() counts them), parameters exactly the tensors the model
// would build on that rank. Tests build the model for every stage and compare.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "tessera/nn/module_cost.hpp"
#include "tessera/parallel/parallel_layout.hpp"
#include "tessera/plan_count.hpp"

namespace tessera {

class ConfigSection;

struct ModelPlanContext {
  std::int64_t vocab_size = 0;  // from the tokenizer; the model pads it as it would when built
  ParallelSizes sizes;          // tp, pp, vpp (model chunks per pipeline rank), sequence_parallel
};

// One model chunk (virtual pipeline stage chunk·pp + stage) on one rank of a pipeline stage. Without
// interleaving (vpp = 1) the chunk is the whole stage.
struct ModelChunkCost {
  std::string contents;  // for the plan's table: "layers 0–5, embeddings"

  // Parameters on this rank (its tensor-parallel shards), a pipeline copy of a tied tensor included.
  std::int64_t parameters = 0;
  std::int64_t parameter_tensors = 0;  // how many Parameter objects (one dp all-reduce each today)
  // Of those, elements whose gradient is summed over the embedding group once per iteration (the
  // tied input/output embedding when its two users sit on different ranks), and elements of
  // replicated tensors whose gradient is summed over tp once per iteration (MQA's K/V), with the
  // number of tensors for each.
  CollectiveCount tied_embedding_grads, tp_replicated_grads;

  // Elements saved for backward by one microbatch's forward through this chunk (with activation
  // recompute: what stays on the microbatch's store; the scratch store a recomputed layer group
  // fills during backward is transient and not counted).
  std::int64_t activation_elements = 0;
  // Elements of the activations sent to the next virtual stage per microbatch (their gradients come
  // back with the same sizes), in how many tensors (one send each: T5's decoder stages send two);
  // 0 on the last virtual stage.
  std::int64_t output_elements = 0;
  std::int64_t output_tensors = 1;

  // Tensor-parallel collectives per microbatch (all zero when tp = 1): all-reduces of activations in
  // forward, of input gradients in backward, and the vocabulary-parallel loss statistics.
  CollectiveCount tp_forward, tp_backward, tp_loss_statistics;
  // Full activation recompute: the forward all-reduces of the recomputed layers again, in backward.
  CollectiveCount tp_recompute;
  // Sequence parallelism: the all-gathers and reduce-scatters that replace the all-reduces above
  // (elements: the gathered output, the scattered input), forward, backward and recompute together.
  CollectiveCount tp_all_gather, tp_reduce_scatter;
  // Expert parallelism: the all-gathers and reduce-scatters over the ep group (every phase), and
  // the experts' parameters (tensors, elements; part of `parameters`), summed over the
  // expert-data-parallel group rather than dp.
  CollectiveCount ep_all_gather, ep_reduce_scatter, expert_parameters;
  // Context parallelism: the keys and values of the whole sequences, all-gathered over cp in forward
  // and again in backward (and in a full recompute's forward), and their gradients reduce-scattered.
  CollectiveCount cp_all_gather, cp_reduce_scatter;

  // Adds a module's figures (module_cost.hpp): all-reduces by phase, all-gathers and
  // reduce-scatters of every phase together.
  ModelChunkCost& operator+=(const ModuleCost& m) {
    parameters = plan_add(parameters, m.parameters);
    parameter_tensors = plan_add(parameter_tensors, m.parameter_tensors);
    tp_replicated_grads += m.tp_replicated_grads;
    activation_elements = plan_add(activation_elements, m.saved_elements);
    tp_forward += m.forward.all_reduce;
    tp_backward += m.backward.all_reduce;
    tp_recompute += m.recompute.all_reduce;
    for (const Collectives* c : {&m.forward, &m.backward, &m.recompute}) {
      tp_all_gather += c->all_gather;
      tp_reduce_scatter += c->reduce_scatter;
    }
    for (const Collectives* c : {&m.ep_forward, &m.ep_backward, &m.ep_recompute}) {
      ep_all_gather += c->all_gather;
      ep_reduce_scatter += c->reduce_scatter;
    }
    expert_parameters += m.expert_parameters;
    return *this;
  }
};

class ModelPlanner {
 public:
  // Reads [model] as the model plugin does and raises the same ConfigErrors for sizes the layout
  // cannot hold.
  using FactorySignature = std::unique_ptr<ModelPlanner>(const ConfigSection& model, const ModelPlanContext& context);
  virtual ~ModelPlanner() = default;

  // Chunk `chunk` (0 ≤ chunk < vpp) of the stage that `layout` places this rank on, for
  // microbatches of `micro_batch_size` sequences.
  virtual ModelChunkCost chunk_cost(const ParallelLayout& layout, int chunk, std::int64_t micro_batch_size) const = 0;
  // The whole model in one process: every tensor once (no tensor-parallel split, no tied copy).
  virtual std::int64_t total_parameters() const = 0;
  virtual std::int64_t seq_length() const = 0;
  // How many loss terms the model logs apart (Model::loss_part_names): each iteration all-reduces
  // them over pp and dp.
  virtual std::int64_t loss_parts() const { return 0; }
  // Model::metric_names().size() (its statistics are (sum, count) pairs reduced over pp and dp).
  virtual std::int64_t metrics() const { return 0; }
  // Model FLOPs of one iteration over `sequences` sequences: Model::flops_per_iteration's formula.
  virtual double flops_per_iteration(std::int64_t sequences) const = 0;
  virtual std::string describe() const = 0;
};

}  // namespace tessera
