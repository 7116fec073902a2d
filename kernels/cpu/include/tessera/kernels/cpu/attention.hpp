// Flash-style scaled dot-product attention for MHA (Hkv = Hq), GQA and MQA (Hkv = 1): query head
// h reads key/value head g = h / (Hq/Hkv).
//   q, out, dout, dq  [B,Tq,Hq·D]
//   kv, dkv           [B,Tk,2·Hkv·D]  per token: keys of all groups, then values of all groups
//   key_mask          [B,Tk] u8, nonzero = attend; null = every key
//   first_key         [B,Tq] i32, query i of row b attends keys j ≥ first_key[b,i]; null = from 0
//   sink              [Hq] f32, a logit in each head's softmax besides the keys, of value zero
//                     (ops::AttentionMask::sink); null = none
//   lse               [B,Hq,Tq]       log Σ_j exp(q·k_j/√D) over the attended keys; −∞ for a row
//                                     with none (its output and gradients are 0)
// causal needs Tq = Tk (query t attends keys j ≤ t) unless query_position places the queries
// (query t then stands at key position query_position[t], ops::AttentionMask::query_position);
// window_left ≥ 0 (causal only) also limits it to keys j ≥ position − window_left, together with
// first_key. Forward writes out and lse; backward
// recomputes each tile's probabilities from lse and overwrites dq and dkv. No [Tq,Tk] matrix
// exists beyond one tile's scratch.
// Results do not depend on the number of threads.
#pragma once
#include <cstdint>

namespace tessera::cpu {

// dropout > 0: each kept probability (query i, key j, head h, batch row b) is scaled by 1/(1−p), the
// mask bit being dropout_mask.hpp's hash of (seed, ((b·heads_total + head_offset + h)·Tq + i)·Tk + j)
// (with query_position: ((b·heads_total + head_offset + h)·Tk + query_position[i])·Tk + j).
struct AttentionArgs {
  std::int64_t B, Tq, Tk, Hq, Hkv, D;
  bool causal = true;
  float dropout = 0.0f;
  std::uint64_t seed = 0;
  std::int64_t head_offset = 0, heads_total = 0;  // heads_total 0: Hq
  std::int64_t window_left = -1;                  // −1: no sliding window
  const std::int32_t* query_position = nullptr;   // [Tq], causal only; null: query i at position i
};

void attention_forward(const AttentionArgs& a, const float* q, const float* kv, const std::uint8_t* key_mask,
                       const std::int32_t* first_key, const float* sink, float* out, float* lse);

void attention_backward(const AttentionArgs& a, const float* dout, const float* q, const float* kv,
                        const std::uint8_t* key_mask, const std::int32_t* first_key, const float* out,
                        const float* lse, float* dq, float* dkv);

// dsink[h] −= Σ_{b,t} exp(sink[h] − lse[b,h,t]) · Σ_d dout·out over head h's channels (ops.hpp).
void attention_sink_backward(const AttentionArgs& a, const float* dout, const float* out, const float* lse,
                             const float* sink, float* dsink);

}  // namespace tessera::cpu
