// The two implementations behind tessera/kernels/cuda/attention.hpp, for its dispatch (attention.cu)
// and for tests that run both side by side:
//   *_ffma         attention.cu: f32 FFMA, any compute dtype, head sizes up to 256.
//   *_tensor_core  attention_tensor_core.cu: mma.sync m16n8k16 with f32 accumulators, bf16/f16 and
//                  D ∈ {64, 128} only (tensor_core_attention_takes), sm_80 or newer; q, kv, out,
//                  dout, dq and dkv 16-byte aligned (the tiles move through cp.async in 16-byte pieces).
// Both take attention.hpp's arguments and write the same outputs; `workspace` is
// attention_backward_workspace_bytes(s) bytes (the FFMA kernels use the first half).
#pragma once
#include <cstdint>

#include "tessera/kernels/cuda/attention.hpp"

namespace tessera::cuda::detail {

void attention_forward_ffma(Float t, const AttentionDims& s, const void* q, const void* kv,
                            const std::uint8_t* key_mask, void* out, float* lse, cudaStream_t stream);
void attention_backward_ffma(Float t, const AttentionDims& s, const void* dout, const void* q, const void* kv,
                             const std::uint8_t* key_mask, const void* out, const float* lse, void* dq, void* dkv,
                             void* workspace, cudaStream_t stream);

// Whether the tensor-core kernels exist for this dtype and head size (alignment is the caller's
// check) and the device they would run on is sm_80 or newer.
bool tensor_core_attention_takes(Float t, std::int64_t D);
void attention_forward_tensor_core(Float t, const AttentionDims& s, const void* q, const void* kv,
                                   const std::uint8_t* key_mask, void* out, float* lse, cudaStream_t stream);
void attention_backward_tensor_core(Float t, const AttentionDims& s, const void* dout, const void* q, const void* kv,
                                    const std::uint8_t* key_mask, const void* out, const float* lse, void* dq,
                                    void* dkv, void* workspace, cudaStream_t stream);

}  // namespace tessera::cuda::detail
