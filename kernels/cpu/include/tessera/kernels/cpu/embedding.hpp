// Embedding lookup.
//   ids [N] (int32, each in [0, rows));  table, dtable [rows,C];  out, dout [N,C]
// forward: out[n] = table[ids[n]] (or += with accumulate, e.g. position + token embeddings).
// backward: dtable[ids[n]] += dout[n]; repeated ids add up (threads split the C columns, so no
// two threads ever touch the same element).
#pragma once
#include <cstdint>

#include "tessera/kernels/cpu/convert.hpp"

namespace tessera::cpu {

void embedding_forward(const std::int32_t* ids, const float* table, float* out, std::int64_t N,
                       std::int64_t C, bool accumulate);
// The same from a bf16/f16 table (stored as bits), converting only the rows it reads.
void embedding_forward(const std::int32_t* ids, const std::uint16_t* table, Half type, float* out, std::int64_t N,
                       std::int64_t C, bool accumulate);
void embedding_backward(const std::int32_t* ids, const float* dout, float* dtable, std::int64_t N,
                        std::int64_t C);

// Vocab-parallel embedding on a shard holding rows [first_id, first_id + rows) of the full table:
// ids outside the shard give a zero row in forward and are skipped in backward.
void embedding_shard_forward(const std::int32_t* ids, const float* table, std::int64_t first_id,
                             std::int64_t rows, float* out, std::int64_t N, std::int64_t C);
void embedding_shard_forward(const std::int32_t* ids, const std::uint16_t* table, Half type, std::int64_t first_id,
                             std::int64_t rows, float* out, std::int64_t N, std::int64_t C);
void embedding_shard_backward(const std::int32_t* ids, const float* dout, std::int64_t first_id,
                              std::int64_t rows, float* dtable, std::int64_t N, std::int64_t C);

}  // namespace tessera::cpu
