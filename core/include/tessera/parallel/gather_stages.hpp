// Collecting named tensors that live on different pipeline stages onto the first stage, for
// writing one file (saved weights) whatever the pipeline split.
#pragma once
#include "tessera/io/safetensors.hpp"
#include "tessera/parallel/communicator.hpp"

namespace tessera {

// Collective over `pp`: every stage passes its own f32 tensors; pp rank 0 gets them all, in stage
// order, and every other rank gets an empty list. Names and shapes travel with the data, so the
// stages need not know each other's parameters.
NamedTensors gather_to_first_stage(const NamedTensors& local, Communicator& pp);

// Expert parallelism: collective over `ep`; rank 0 of the group gets `local` followed by the
// tensors of every other rank that `expert` (one flag per tensor of `local`) marks — each rank's own
// experts — and every other rank an empty list.
NamedTensors gather_experts_to_first_rank(const NamedTensors& local, const std::vector<bool>& expert, Communicator& ep);

}  // namespace tessera
