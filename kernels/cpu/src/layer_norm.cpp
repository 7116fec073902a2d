#include "tessera/kernels/cpu/layer_norm.hpp"

#include <omp.h>

#include <cmath>
#include <vector>

namespace tessera::cpu {

void layer_norm_forward(const float* x, const float* w, const float* b, float eps, float* y,
                        float* mean, float* rstd, std::int64_t N, std::int64_t C) {
#pragma omp parallel for schedule(static) if (N * C > (1 << 14))
  for (std::int64_t i = 0; i < N; ++i) {
    const float* xi = x + i * C;
    float* yi = y + i * C;
    // Two passes over a row that sits in L1: the mean, then the centred variance (stable).
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (std::int64_t c = 0; c < C; ++c) s += xi[c];
    const float m = s / static_cast<float>(C);
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (std::int64_t c = 0; c < C; ++c) {
      const float d = xi[c] - m;
      v += d * d;
    }
    const float r = 1.0f / std::sqrt(v / static_cast<float>(C) + eps);
#pragma omp simd
    for (std::int64_t c = 0; c < C; ++c) yi[c] = (xi[c] - m) * r * w[c] + b[c];
    mean[i] = m;
    rstd[i] = r;
  }
}

void layer_norm_backward(const float* dy, const float* x, const float* w, const float* mean,
                         const float* rstd, float* dx, float* dw, float* db, std::int64_t N,
                         std::int64_t C) {
  // dw and db are sums over rows: each thread accumulates its rows into a private [2,C] buffer,
  // and the buffers are reduced column-parallel at the end (deterministic for a thread count).
  const int nt = (N * C > (1 << 14)) ? omp_get_max_threads() : 1;
  std::vector<float> part(static_cast<std::size_t>(nt) * 2 * C, 0.0f);
#pragma omp parallel num_threads(nt)
  {
    float* pdw = part.data() + static_cast<std::size_t>(omp_get_thread_num()) * 2 * C;
    float* pdb = pdw + C;
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      const float* dyi = dy + i * C;
      const float* xi = x + i * C;
      float* dxi = dx + i * C;
      const float m = mean[i], r = rstd[i];
      // dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·w, x̂ = (x − mean)·rstd.
      float sg = 0.0f, sgx = 0.0f;
#pragma omp simd reduction(+ : sg, sgx)
      for (std::int64_t c = 0; c < C; ++c) {
        const float xh = (xi[c] - m) * r;
        const float g = dyi[c] * w[c];
        sg += g;
        sgx += g * xh;
        pdw[c] += dyi[c] * xh;
        pdb[c] += dyi[c];
      }
      const float mg = sg / static_cast<float>(C), mgx = sgx / static_cast<float>(C);
#pragma omp simd
      for (std::int64_t c = 0; c < C; ++c) {
        const float xh = (xi[c] - m) * r;
        dxi[c] = (dyi[c] * w[c] - mg - xh * mgx) * r;
      }
    }
  }
#pragma omp parallel for schedule(static) if (nt > 1 && C > 1024)
  for (std::int64_t c = 0; c < C; ++c) {
    float sw = 0.0f, sb = 0.0f;
    for (int t = 0; t < nt; ++t) {
      sw += part[static_cast<std::size_t>(t) * 2 * C + c];
      sb += part[static_cast<std::size_t>(t) * 2 * C + C + c];
    }
    dw[c] += sw;
    db[c] += sb;
  }
}

}  // namespace tessera::cpu
