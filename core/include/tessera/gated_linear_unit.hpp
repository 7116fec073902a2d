// The gated linear units of Megatron-Core's MLP (gated_linear_unit = true) in one definition that
// the CPU kernel and the CUDA kernel (host and device) share. fc1's output row is [x0 | x1], the
// gate half and the linear half, and
//   y = act(min(x0, c)) · (clamp(x1, −c, c) + offset),   act(a) = a·σ(α·a),
// α = 1: SiLU (SwiGLU, --swiglu); α = 1.702: quick GELU (--quick-geglu, gpt-oss's experts);
// c: --activation-func-clamp-value (+∞: no clamp); offset: --glu-linear-offset (gpt-oss: 1).
// The clamps pass the gradient where their input lies inside the bounds, ends included, as
// torch.clamp's backward.
#pragma once
#include <cmath>

#include "tessera/host_device.hpp"

namespace tessera {

struct GatedLinearUnit {
  float alpha = 1.0f;          // the gate's σ(α·a): 1 SiLU, 1.702 quick GELU
  float clamp = INFINITY;      // c above (> 0)
  float linear_offset = 0.0f;  // added to the clamped linear half
  bool operator==(const GatedLinearUnit& o) const {  // spelled out: the CUDA sources are C++17
    return alpha == o.alpha && clamp == o.clamp && linear_offset == o.linear_offset;
  }
};

inline constexpr float kQuickGeluAlpha = 1.702f;  // Megatron-Core's quick_gelu: x·σ(1.702·x)

inline TESSERA_HOST_DEVICE float glu_sigmoid(float a) { return 1.0f / (1.0f + expf(-a)); }

// The clamped halves: a = min(x0, c), b = clamp(x1, −c, c).
inline TESSERA_HOST_DEVICE float glu_gate(float x0, const GatedLinearUnit& g) { return x0 < g.clamp ? x0 : g.clamp; }
inline TESSERA_HOST_DEVICE float glu_linear(float x1, const GatedLinearUnit& g) {
  return x1 < -g.clamp ? -g.clamp : (x1 > g.clamp ? g.clamp : x1);
}

// y for one (gate x0, linear x1) pair.
inline TESSERA_HOST_DEVICE float glu_value(float x0, float x1, const GatedLinearUnit& g) {
  const float a = glu_gate(x0, g);
  return a * glu_sigmoid(g.alpha * a) * (glu_linear(x1, g) + g.linear_offset);
}

// dy/dx0 and dy/dx1 times dy.
inline TESSERA_HOST_DEVICE void glu_grads(float x0, float x1, float dy, const GatedLinearUnit& g, float& dx0,
                                          float& dx1) {
  const float a = glu_gate(x0, g), b = glu_linear(x1, g);
  const float s = glu_sigmoid(g.alpha * a);
  dx0 = x0 <= g.clamp ? dy * (b + g.linear_offset) * s * (1.0f + g.alpha * a * (1.0f - s)) : 0.0f;
  dx1 = x1 >= -g.clamp && x1 <= g.clamp ? dy * a * s : 0.0f;
}

}  // namespace tessera
