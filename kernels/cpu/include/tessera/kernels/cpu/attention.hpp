// Scaled dot-product attention core for MHA (Hkv = Hq), GQA and MQA (Hkv = 1): query head h
// reads key/value head g = h / (Hq/Hkv).
//   q, out, dout, dq  [B,T,Hq·D]
//   kv, dkv           [B,T,2·Hkv·D]   per token: keys of all groups, then values of all groups
//   probs             [B,Hq,T,T]      softmax(q·kᵀ/√D); zero above the diagonal when causal
// Forward writes out and probs; backward overwrites dq and dkv.
// Work is split over (b, group) so that the heads sharing a key/value head accumulate into dkv
// from one thread (no races, no atomics).
#pragma once
#include <cstdint>

namespace tessera::cpu {

struct AttentionArgs {
  std::int64_t B, T, Hq, Hkv, D;
  bool causal = true;
};

void attention_forward(const AttentionArgs& a, const float* q, const float* kv, float* out,
                       float* probs);

void attention_backward(const AttentionArgs& a, const float* dout, const float* q,
                        const float* kv, const float* probs, float* dq, float* dkv);

}  // namespace tessera::cpu
