// Embedding lookup on the GPU, the contract of kernels/cpu/embedding.hpp, for a whole table
// (first_id = 0, rows = its rows) or a vocab-parallel shard holding ids [first_id, first_id + rows):
//   ids [N] i32;  table [rows,C] and out, dout [N,C] in the compute type t;  dtable [rows,C] in
//   dtable_t (f32 or t).
// Ids outside [first_id, first_id + rows) — a shard's foreign ids, or bad data, which only the host
// could report — are never read through: forward gives a zero row (with accumulate: leaves the row
// as it is), backward skips them.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tessera/kernels/cuda/float_type.hpp"

namespace tessera::cuda {

// out[n] = table[ids[n] − first_id], or out[n] += it with accumulate (f32 addition, one rounding).
void embedding_forward(Float t, const std::int32_t* ids, const void* table, std::int64_t first_id, std::int64_t rows,
                       void* out, std::int64_t N, std::int64_t C, bool accumulate, cudaStream_t stream);

// dtable[ids[n] − first_id] += dout[n], deterministically: the (id, n) pairs are radix-sorted (a
// stable sort), then each id's rows are added in ascending n onto its f32 value, rounded once — the
// CPU's order of additions exactly. `workspace`: embedding_backward_workspace_bytes(N, rows) bytes.
// N < 2³¹.
std::size_t embedding_backward_workspace_bytes(std::int64_t N, std::int64_t rows);
void embedding_backward(Float t, const std::int32_t* ids, const void* dout, std::int64_t first_id, std::int64_t rows,
                        Float dtable_t, void* dtable, std::int64_t N, std::int64_t C, void* workspace,
                        cudaStream_t stream);

}  // namespace tessera::cuda
