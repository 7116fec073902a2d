// Flash-style scaled dot-product attention on the GPU for MHA, GQA and MQA (ops::attention_forward
// and attention_backward; the contract is ops.hpp's, the algorithm FlashAttention-2's):
//   q, out, dout, dq  [B,Tq,Hq·D]     compute dtype t (f32, bf16 or f16)
//   kv, dkv           [B,Tk,2·Hkv·D]  per token: keys of all groups, then values of all groups
//   key_mask          [B,Tk] u8, nonzero = attend; null = every key
//   lse               [B,Hq,Tq] f32   log Σ_j exp(q·k_j/√D) over the attended keys; −∞ for a row
//                                     that attends none (its out and dq are 0)
// Query head h reads key/value head h / (Hq/Hkv); causal (Tq = Tk): query t attends keys j ≤ t.
// Every sum runs in a fixed order and nothing is accumulated atomically, so two runs give the same
// bits. Asynchronous on `stream`.
//
// Two implementations, chosen per call:
//   - tensor cores (attention_tensor_core.cu): bf16 and f16 with D = 64 or 128, on sm_80 or newer,
//     when q, kv, out (and dout, dq, dkv) are 16-byte aligned. mma.sync m16n8k16 with f32
//     accumulators; P and dS rounded to the compute dtype before their products, as FlashAttention.
//   - f32 FFMA (attention.cu): every other case (f32, other head sizes), and all cases when the
//     environment variable TESSERA_CUDA_ATTENTION=ffma (read once, at the first call).
// Both meet the same contract and tolerances; their bits differ from each other.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tessera/kernels/cuda/float_type.hpp"

namespace tessera::cuda {

struct AttentionDims {
  std::int64_t B, Tq, Tk, Hq, Hkv, D;
  bool causal;
};

// The largest head size D the kernels take (their tiles keep D in shared memory and registers).
constexpr std::int64_t kAttentionMaxHeadDim = 256;

// Writes out and lse.
void attention_forward(Float t, const AttentionDims& s, const void* q, const void* kv, const std::uint8_t* key_mask,
                       void* out, float* lse, cudaStream_t stream);

// Backward's scratch: the per-row Σ_d dout·out, twice (f32 2·[B,Hq,Tq]; the tensor-core kernels
// take it in the two orders their two products need).
std::size_t attention_backward_workspace_bytes(const AttentionDims& s);
// Overwrites dq and dkv (masked keys and keys no query attends get 0); out and lse as forward wrote
// them. `workspace`: attention_backward_workspace_bytes(s) bytes of device memory.
void attention_backward(Float t, const AttentionDims& s, const void* dout, const void* q, const void* kv,
                        const std::uint8_t* key_mask, const void* out, const float* lse, void* dq, void* dkv,
                        void* workspace, cudaStream_t stream);

}  // namespace tessera::cuda
