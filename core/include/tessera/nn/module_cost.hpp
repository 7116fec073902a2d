// What an nn module costs on one rank, computed from its options without building it: parameters,
// the activation elements one microbatch's forward leaves for backward, and its tensor-parallel
// collectives. Every module declares `static ModuleCost cost(options…, const CostShape&)` next to
// its forward, so that `tessera plan` sums modules (a model plugin's planner adds only what is its
// own, such as embeddings and the LM head) instead of mirroring them; tests compare each figure with
// the built module (ActivationStore::held_elements, a counting communicator).
//
// saved_elements counts each tensor a module keeps once, its input included when it keeps it. A
// module that hands one tensor to two children that both keep it (attention's query and key/value
// projections share their input) subtracts the duplicate: the figure is what the store holds, where
// a tensor saved twice is held once.
#pragma once
#include <cstdint>

#include "tessera/plan_count.hpp"

namespace tessera {

// The shape a module runs at on this rank. Options carry sizes and whether sequence parallelism is
// on; a cost function takes the tensor-parallel size from here (the options' TpGroup is null when
// planning).
struct CostShape {
  std::int64_t batch = 1;       // b sequences per microbatch
  std::int64_t seq = 0;         // T tokens per sequence (queries)
  std::int64_t memory_seq = 0;  // cross-attention: Tk tokens of the sequence attended to
  std::int64_t tp = 1;

  std::int64_t tokens() const { return batch * seq; }  // N
  // Token rows held between tensor-parallel regions: N/tp under sequence parallelism, else N.
  std::int64_t held_rows(bool sequence_parallel) const {
    return sequence_parallel && tp > 1 ? tokens() / tp : tokens();
  }
};

// Tensor-parallel collectives (calls, elements as passed to the communicator: an all-gather's
// gathered output, a reduce-scatter's input).
struct Collectives {
  CollectiveCount all_reduce, all_gather, reduce_scatter;
  Collectives& operator+=(const Collectives& o) {
    all_reduce += o.all_reduce;
    all_gather += o.all_gather;
    reduce_scatter += o.reduce_scatter;
    return *this;
  }
  Collectives times(std::int64_t k) const { return {all_reduce.times(k), all_gather.times(k), reduce_scatter.times(k)}; }
};

struct ModuleCost {
  std::int64_t parameters = 0;         // elements on this rank (its tensor-parallel shards)
  std::int64_t parameter_tensors = 0;  // Parameter objects
  // Parameters marked reduce_grad_over_tp (MQA's replicated K/V, norms on token shards): tensors and
  // elements whose gradient the trainer sums over tp once per iteration.
  CollectiveCount tp_replicated_grads;
  std::int64_t saved_elements = 0;  // held for backward after one microbatch's forward
  // Per microbatch: collectives of forward, of backward, and of the forward that activation
  // recompute runs again during backward.
  Collectives forward, backward, recompute;
  // Expert parallelism: the mixture-of-experts layers' collectives over the ep group, by phase as
  // above, and the experts' parameters (tensors, elements), whose gradients are summed over the
  // expert-data-parallel group instead of dp.
  Collectives ep_forward, ep_backward, ep_recompute;
  CollectiveCount expert_parameters;

  ModuleCost& operator+=(const ModuleCost& o) {
    parameters = plan_add(parameters, o.parameters);
    parameter_tensors = plan_add(parameter_tensors, o.parameter_tensors);
    tp_replicated_grads += o.tp_replicated_grads;
    saved_elements = plan_add(saved_elements, o.saved_elements);
    forward += o.forward;
    backward += o.backward;
    recompute += o.recompute;
    ep_forward += o.ep_forward;
    ep_backward += o.ep_backward;
    ep_recompute += o.ep_recompute;
    expert_parameters += o.expert_parameters;
    return *this;
  }
  ModuleCost times(std::int64_t k) const {
    ModuleCost c;
    c.parameters = plan_mul(parameters, k);
    c.parameter_tensors = plan_mul(parameter_tensors, k);
    c.tp_replicated_grads = tp_replicated_grads.times(k);
    c.saved_elements = plan_mul(saved_elements, k);
    c.forward = forward.times(k);
    c.backward = backward.times(k);
    c.recompute = recompute.times(k);
    c.ep_forward = ep_forward.times(k);
    c.ep_backward = ep_backward.times(k);
    c.ep_recompute = ep_recompute.times(k);
    c.expert_parameters = expert_parameters.times(k);
    return c;
  }
  // The same module run again on weights counted elsewhere (a shared table or layer): its
  // activations and collectives, none of its parameters.
  ModuleCost without_parameters() const {
    ModuleCost c = *this;
    c.parameters = c.parameter_tensors = 0;
    c.tp_replicated_grads = {};
    c.expert_parameters = {};
    return c;
  }
};

}  // namespace tessera
