// RMSNorm, SwiGLU and RoPE on the CPU (kernels/cpu/llama.hpp): one row per OpenMP iteration, f32
// math; RMSNorm's dw through per-thread partial sums reduced in thread order (deterministic for a
// thread count, as layer_norm.cpp); RoPE's cos/sin once per call from angles in double.
#include "tessera/kernels/cpu/llama.hpp"

#include "tessera/rope_frequency.hpp"

#include <omp.h>

#include <cmath>
#include <vector>

namespace tessera::cpu {

void rms_norm_forward(const float* x, const float* w, float eps, float* y, float* rstd, std::int64_t N,
                      std::int64_t C) {
#pragma omp parallel for schedule(static) if (N * C > (1 << 14))
  for (std::int64_t i = 0; i < N; ++i) {
    const float* xi = x + i * C;
    float* yi = y + i * C;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (std::int64_t c = 0; c < C; ++c) s += xi[c] * xi[c];
    const float r = 1.0f / std::sqrt(s / static_cast<float>(C) + eps);
#pragma omp simd
    for (std::int64_t c = 0; c < C; ++c) yi[c] = w[c] * (xi[c] * r);
    rstd[i] = r;
  }
}

void rms_norm_backward(const float* dy, const float* x, const float* w, const float* rstd, float* dx, float* dw,
                       std::int64_t N, std::int64_t C) {
  const int nt = (N * C > (1 << 14)) ? omp_get_max_threads() : 1;
  std::vector<float> part(static_cast<std::size_t>(nt) * C, 0.0f);
#pragma omp parallel num_threads(nt)
  {
    float* pdw = part.data() + static_cast<std::size_t>(omp_get_thread_num()) * C;
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      const float* dyi = dy + i * C;
      const float* xi = x + i * C;
      float* dxi = dx + i * C;
      const float r = rstd[i];
      // x̂ = x·r;  dx = r·(g − x̂·mean(g·x̂)), g = dy·w.
      float sgx = 0.0f;
#pragma omp simd reduction(+ : sgx)
      for (std::int64_t c = 0; c < C; ++c) {
        const float xh = xi[c] * r;
        sgx += dyi[c] * w[c] * xh;
        pdw[c] += dyi[c] * xh;
      }
      const float m = sgx / static_cast<float>(C);
#pragma omp simd
      for (std::int64_t c = 0; c < C; ++c) dxi[c] = r * (dyi[c] * w[c] - xi[c] * r * m);
    }
  }
  for (int t = 0; t < nt; ++t)
    for (std::int64_t c = 0; c < C; ++c) dw[c] += part[static_cast<std::size_t>(t) * C + c];
}

void swiglu_forward(const float* x, float* y, std::int64_t N, std::int64_t F, const GatedLinearUnit& g) {
#pragma omp parallel for schedule(static) if (N * F > (1 << 14))
  for (std::int64_t i = 0; i < N; ++i) {
    const float* x0 = x + i * 2 * F;
    const float* x1 = x0 + F;
    float* yi = y + i * F;
    for (std::int64_t f = 0; f < F; ++f) yi[f] = glu_value(x0[f], x1[f], g);
  }
}

void swiglu_backward(const float* dy, const float* x, float* dx, std::int64_t N, std::int64_t F,
                     const GatedLinearUnit& g) {
#pragma omp parallel for schedule(static) if (N * F > (1 << 14))
  for (std::int64_t i = 0; i < N; ++i) {
    const float* x0 = x + i * 2 * F;
    const float* x1 = x0 + F;
    const float* dyi = dy + i * F;
    float* dx0 = dx + i * 2 * F;
    float* dx1 = dx0 + F;
    for (std::int64_t f = 0; f < F; ++f) glu_grads(x0[f], x1[f], dyi[f], g, dx0[f], dx1[f]);
  }
}

void rope(float* x, std::int64_t B, std::int64_t T, std::int64_t H, std::int64_t D, std::int64_t W, std::int64_t dim,
          double base, double scaling_factor, double interpolation, const RopeYarn& yarn, bool interleaved,
          std::int64_t position_offset, bool inverse) {
  const std::int64_t half = dim / 2;
  if (half == 0 || B * T == 0) return;
  // cos/sin [T, half] for this call's positions (sin negated for the inverse rotation), both times
  // YaRN's magnitude (1 without it).
  std::vector<float> cs(static_cast<std::size_t>(T * half)), sn(static_cast<std::size_t>(T * half));
  const double magnitude = rope_magnitude(yarn);
#pragma omp parallel for schedule(static) if (T * half > (1 << 12))
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t i = 0; i < half; ++i) {
      const double angle = rope_angle(position_offset + t, i, dim, base, scaling_factor, interpolation, yarn);
      cs[static_cast<std::size_t>(t * half + i)] = static_cast<float>(magnitude * std::cos(angle));
      sn[static_cast<std::size_t>(t * half + i)] =
          static_cast<float>(magnitude * (inverse ? -std::sin(angle) : std::sin(angle)));
    }
  const std::int64_t stride_a = interleaved ? 2 : 1, offset_b = interleaved ? 1 : half;
#pragma omp parallel for schedule(static) if (B * T * H * dim > (1 << 14))
  for (std::int64_t row = 0; row < B * T; ++row) {
    const std::int64_t t = row % T;
    const float* c = cs.data() + t * half;
    const float* s = sn.data() + t * half;
    for (std::int64_t h = 0; h < H; ++h) {
      float* xh = x + row * W + h * D;
      for (std::int64_t i = 0; i < half; ++i) {
        float* a = xh + i * stride_a;
        float* b = a + offset_b;
        const float va = *a, vb = *b;
        *a = va * c[i] - vb * s[i];
        *b = vb * c[i] + va * s[i];
      }
    }
  }
}

}  // namespace tessera::cpu
