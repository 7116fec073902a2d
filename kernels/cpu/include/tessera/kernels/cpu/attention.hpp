// Flash-style scaled dot-product attention for MHA (Hkv = Hq), GQA and MQA (Hkv = 1): query head
// h reads key/value head g = h / (Hq/Hkv).
//   q, out, dout, dq  [B,Tq,Hq·D]
//   kv, dkv           [B,Tk,2·Hkv·D]  per token: keys of all groups, then values of all groups
//   key_mask          [B,Tk] u8, nonzero = attend; null = every key
//   lse               [B,Hq,Tq]       log Σ_j exp(q·k_j/√D) over the attended keys; −∞ for a row
//                                     with none (its output and gradients are 0)
// causal needs Tq = Tk (query t attends keys j ≤ t). Forward writes out and lse; backward
// recomputes each tile's probabilities from lse and overwrites dq and dkv. No [Tq,Tk] matrix
// exists beyond one tile's scratch.
// Results do not depend on the number of threads.
#pragma once
#include <cstdint>

namespace tessera::cpu {

struct AttentionArgs {
  std::int64_t B, Tq, Tk, Hq, Hkv, D;
  bool causal = true;
};

void attention_forward(const AttentionArgs& a, const float* q, const float* kv, const std::uint8_t* key_mask,
                       float* out, float* lse);

void attention_backward(const AttentionArgs& a, const float* dout, const float* q, const float* kv,
                        const std::uint8_t* key_mask, const float* out, const float* lse, float* dq,
                        float* dkv);

}  // namespace tessera::cpu
