// Collecting named tensors that live on different ranks of a group onto its first rank, for writing
// one file (saved weights, checkpoint model files) whatever the split: the pipeline stages' tensors,
// and under expert parallelism the experts of the expert-parallel ranks.
#pragma once
#include "tessera/io/safetensors.hpp"
#include "tessera/parallel/communicator.hpp"

namespace tessera {

// Collective over `group` (the pp group: one per stage): every rank passes its own f32 tensors; rank 0
// gets them all, in rank order, and every other rank an empty list. Names and shapes travel with the
// data, so the ranks need not know each other's parameters.
NamedTensors gather_to_first_rank(const NamedTensors& local, Communicator& group);

// Collective over `group`: every rank gets rank 0's `tensors` (the others pass anything, e.g. {}).
NamedTensors broadcast_from_first_rank(const NamedTensors& tensors, Communicator& group);

// Expert parallelism: collective over `ep`; rank 0 of the group gets `local` followed by the
// tensors of every other rank that `expert` (one flag per tensor of `local`) marks — each rank's own
// experts — and every other rank an empty list.
NamedTensors gather_experts_to_first_rank(const NamedTensors& local, const std::vector<bool>& expert, Communicator& ep);

}  // namespace tessera
