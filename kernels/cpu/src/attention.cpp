// Attention on the CPU for the shapes of small-model training (T ≤ a few hundred, D = 64), where
// per-head BLAS calls would be too small and may not run inside OpenMP regions anyway.
//
// Every inner loop is an axpy over a contiguous run (keys j for a score row, channels d for an
// output row), so it vectorises without horizontal reductions. Keys (forward) and values
// (backward) are first transposed into a [D,T] scratch per task so that the q·kᵀ and dout·vᵀ
// score rows are axpys over j as well.
#include "tessera/kernels/cpu/attention.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "simd_math.hpp"

namespace tessera::cpu {

namespace {

// Row-wise softmax of p[0, n), in place.
void softmax_row(float* p, std::int64_t n) {
  const float mx = detail::row_max(p, n);
  const float inv = static_cast<float>(1.0 / detail::exp_shift_sum(p, p, n, mx));
#pragma omp simd
  for (std::int64_t j = 0; j < n; ++j) p[j] *= inv;
}

// dst[d*T + j] = src[j*stride + d] for j < T, d < D.
void transpose_heads(const float* src, std::int64_t stride, std::int64_t T, std::int64_t D, float* dst) {
  for (std::int64_t j = 0; j < T; ++j)
    for (std::int64_t d = 0; d < D; ++d) dst[d * T + j] = src[j * stride + d];
}

}  // namespace

void attention_forward(const AttentionArgs& a, const float* q, const float* kv, float* out,
                       float* probs) {
  const std::int64_t B = a.B, T = a.T, Hq = a.Hq, Hkv = a.Hkv, D = a.D;
  const std::int64_t qs = Hq * D, kvs = 2 * Hkv * D, per_group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
#pragma omp parallel if (B * Hq * T * T * D > (1 << 16))
  {
    std::vector<float> kt(static_cast<std::size_t>(D * T));
    // Forward has no shared outputs, so (b, h) pairs are independent tasks.
#pragma omp for collapse(2) schedule(static)
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t h = 0; h < Hq; ++h) {
        const std::int64_t g = h / per_group;
        const float* kb = kv + b * T * kvs + g * D;
        const float* vb = kv + b * T * kvs + Hkv * D + g * D;
        transpose_heads(kb, kvs, T, D, kt.data());
        for (std::int64_t t = 0; t < T; ++t) {
          const std::int64_t n = a.causal ? t + 1 : T;
          const float* qt = q + (b * T + t) * qs + h * D;
          float* p = probs + ((b * Hq + h) * T + t) * T;
          std::fill(p, p + T, 0.0f);
          for (std::int64_t d = 0; d < D; ++d) {
            const float qd = qt[d] * scale;
            const float* ktd = kt.data() + d * T;
#pragma omp simd
            for (std::int64_t j = 0; j < n; ++j) p[j] += qd * ktd[j];
          }
          softmax_row(p, n);
          float* o = out + (b * T + t) * qs + h * D;
          std::fill(o, o + D, 0.0f);
          for (std::int64_t j = 0; j < n; ++j) {
            const float pj = p[j];
            const float* vj = vb + j * kvs;
#pragma omp simd
            for (std::int64_t d = 0; d < D; ++d) o[d] += pj * vj[d];
          }
        }
      }
    }
  }
}

void attention_backward(const AttentionArgs& a, const float* dout, const float* q,
                        const float* kv, const float* probs, float* dq, float* dkv) {
  const std::int64_t B = a.B, T = a.T, Hq = a.Hq, Hkv = a.Hkv, D = a.D;
  const std::int64_t qs = Hq * D, kvs = 2 * Hkv * D, per_group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
#pragma omp parallel if (B * Hq * T * T * D > (1 << 16))
  {
    std::vector<float> vt(static_cast<std::size_t>(D * T));
    std::vector<float> ds(static_cast<std::size_t>(T));
    // One task per (b, key/value group): the heads of a group accumulate into the same dk, dv
    // rows, so they run in sequence on one thread.
#pragma omp for collapse(2) schedule(static)
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t g = 0; g < Hkv; ++g) {
        const float* kb = kv + b * T * kvs + g * D;
        const float* vb = kv + b * T * kvs + Hkv * D + g * D;
        float* dkb = dkv + b * T * kvs + g * D;
        float* dvb = dkv + b * T * kvs + Hkv * D + g * D;
        for (std::int64_t j = 0; j < T; ++j) {
          std::fill(dkb + j * kvs, dkb + j * kvs + D, 0.0f);
          std::fill(dvb + j * kvs, dvb + j * kvs + D, 0.0f);
        }
        transpose_heads(vb, kvs, T, D, vt.data());
        for (std::int64_t h = g * per_group; h < (g + 1) * per_group; ++h) {
          for (std::int64_t t = 0; t < T; ++t) {
            const std::int64_t n = a.causal ? t + 1 : T;
            const float* p = probs + ((b * Hq + h) * T + t) * T;
            const float* dot = dout + (b * T + t) * qs + h * D;
            const float* qt = q + (b * T + t) * qs + h * D;
            float* dqt = dq + (b * T + t) * qs + h * D;
            // dp[j] = dout_t · v_j (into ds), and dv_j += p[j]·dout_t.
            std::fill(ds.begin(), ds.begin() + n, 0.0f);
            for (std::int64_t d = 0; d < D; ++d) {
              const float dd = dot[d];
              const float* vtd = vt.data() + d * T;
#pragma omp simd
              for (std::int64_t j = 0; j < n; ++j) ds[j] += dd * vtd[j];
            }
            for (std::int64_t j = 0; j < n; ++j) {
              const float pj = p[j];
              float* dvj = dvb + j * kvs;
#pragma omp simd
              for (std::int64_t d = 0; d < D; ++d) dvj[d] += pj * dot[d];
            }
            // Softmax backward: ds[j] = p[j]·(dp[j] − Σ_i p[i]·dp[i]), with the 1/√D folded in.
            float pdp = 0.0f;
#pragma omp simd reduction(+ : pdp)
            for (std::int64_t j = 0; j < n; ++j) pdp += p[j] * ds[j];
#pragma omp simd
            for (std::int64_t j = 0; j < n; ++j) ds[j] = p[j] * (ds[j] - pdp) * scale;
            // dq_t = Σ_j ds[j]·k_j;  dk_j += ds[j]·q_t.
            std::fill(dqt, dqt + D, 0.0f);
            for (std::int64_t j = 0; j < n; ++j) {
              const float sj = ds[j];
              const float* kj = kb + j * kvs;
              float* dkj = dkb + j * kvs;
#pragma omp simd
              for (std::int64_t d = 0; d < D; ++d) {
                dqt[d] += sj * kj[d];
                dkj[d] += sj * qt[d];
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace tessera::cpu
