// CudaBackend's attention: the flash-style kernels of kernels/cuda (tensor cores for bf16/f16 with
// D = 64 or 128, f32 FFMA otherwise or under TESSERA_CUDA_ATTENTION=ffma; see attention.hpp),
// backward's row sums in a stream-ordered workspace.
#include <fmt/format.h>

#include "cuda_backend.hpp"
#include "tessera/error.hpp"
#include "tessera/kernels/cuda/attention.hpp"
#include "tessera/ops.hpp"

namespace tessera::cuda {

namespace {

// The kernels' tiles hold a head in shared memory and registers: heads above 256 channels have no
// kernel yet (a ShapeError, as for a dtype without one).
AttentionDims dims_of(const ops::AttentionShape& s, const ops::AttentionMask& mask, const char* op) {
  if (s.D > kAttentionMaxHeadDim)
    throw ShapeError(fmt::format("{}: the CUDA backend's attention takes head sizes D up to {}, got D={} "
                                 "(model.kv_channels, or hidden_size / num_attention_heads)",
                                 op, kAttentionMaxHeadDim, s.D));
  // Dropout on the probabilities has no CUDA kernel yet (its masks must be the CPU's bit for bit,
  // and that needs a GPU to check): a clear error at the first step rather than other numbers.
  if (s.dropout > 0.0f)
    throw Error(fmt::format("{}: attention dropout (model.attention_dropout = {}) runs on the CPU backend only; the "
                            "CUDA backend has no kernel for it yet: set model.attention_dropout = 0 on device cuda",
                            op, s.dropout));
  // Per-query first keys (GPT's documents) and the sliding window have no CUDA kernel yet either.
  if (mask.first_key.defined() || s.window_left >= 0)
    throw Error(fmt::format("{}: per-query first keys (document masks, data.reset_attention_mask; the sliding window, "
                            "model.window_size) run on the CPU backend only; the CUDA backend has no kernel for them "
                            "yet: set data.reset_attention_mask = false and drop model.window_size on device cuda",
                            op));
  if (mask.query_position.defined())
    throw Error(fmt::format("{}: queries placed among the keys (context parallelism, parallel.context_parallel_size > 1) "
                            "run on the CPU backend only; the CUDA backend has no kernel for them yet: set "
                            "parallel.context_parallel_size = 1 on device cuda",
                            op));
  if (mask.sink.defined())
    throw Error(fmt::format("{}: attention sinks (model.softmax_type) run on the CPU backend only; the CUDA backend has "
                            "no kernel for them yet: set model.softmax_type = \"vanilla\" on device cuda",
                            op));
  return {s.B, s.Tq, s.Tk, s.Hq, s.Hkv, s.D, s.causal};
}

const std::uint8_t* mask_or_null(const Tensor& key_mask) {
  return key_mask.defined() ? key_mask.device_data<std::uint8_t>() : nullptr;
}

}  // namespace

void CudaBackend::attention_forward(const ops::AttentionShape& s, const Tensor& q, const Tensor& kv,
                                    const ops::AttentionMask& mask, Tensor& out, Tensor& lse) {
  const char* op = "attention_forward";
  const AttentionDims d = dims_of(s, mask, op);
  ::tessera::cuda::attention_forward(float_of(q, op), d, q.device_raw(), kv.device_raw(), mask_or_null(mask.key_mask),
                                     out.device_raw(), lse.device_data<float>(), stream());
}

void CudaBackend::attention_backward(const ops::AttentionShape& s, const Tensor& dout, const Tensor& q,
                                     const Tensor& kv, const ops::AttentionMask& mask, const Tensor& out,
                                     const Tensor& lse, Tensor& dq, Tensor& dkv) {
  const char* op = "attention_backward";
  const AttentionDims d = dims_of(s, mask, op);
  Workspace ws(attention_backward_workspace_bytes(d), stream());
  ::tessera::cuda::attention_backward(float_of(q, op), d, dout.device_raw(), q.device_raw(), kv.device_raw(),
                                      mask_or_null(mask.key_mask), out.device_raw(), lse.device_data<float>(),
                                      dq.device_raw(), dkv.device_raw(), ws.get(), stream());
}

void CudaBackend::attention_sink_backward(const ops::AttentionShape&, const Tensor&, const Tensor&, const Tensor&,
                                          const Tensor&, Tensor&) {
  throw Error("attention_sink_backward: attention sinks (model.softmax_type) run on the CPU backend only; the CUDA "
              "backend has no kernel for them yet (docs/cuda.md)");
}

}  // namespace tessera::cuda
