// Plain double-precision references for test_backend_ops: the contracts of ops.hpp written as the
// most obvious loops, with no call into Tessera. Tensors are flat row-major std::vector<double>.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

namespace tessera::test::ref {

using Vec = std::vector<double>;
using I64 = std::int64_t;

// out[M,N] = alpha·op(a)·op(b) + beta·out (out is ignored when beta = 0, as in BLAS).
inline Vec matmul(const Vec& a, bool ta, const Vec& b, bool tb, I64 M, I64 N, I64 K, double alpha, double beta,
                  const Vec& out0) {
  Vec out(static_cast<std::size_t>(M * N));
  for (I64 i = 0; i < M; ++i)
    for (I64 j = 0; j < N; ++j) {
      double s = 0;
      for (I64 k = 0; k < K; ++k) s += (ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
      out[i * N + j] = alpha * s + (beta == 0 ? 0.0 : beta * out0[i * N + j]);
    }
  return out;
}

struct LayerNorm {
  Vec y, mean, rstd;
};
inline LayerNorm layer_norm(const Vec& x, const Vec& w, const Vec& b, double eps, I64 N, I64 C) {
  LayerNorm r{Vec(x.size()), Vec(N), Vec(N)};
  for (I64 n = 0; n < N; ++n) {
    double m = 0, v = 0;
    for (I64 c = 0; c < C; ++c) m += x[n * C + c];
    m /= static_cast<double>(C);
    for (I64 c = 0; c < C; ++c) v += (x[n * C + c] - m) * (x[n * C + c] - m);
    const double rs = 1.0 / std::sqrt(v / static_cast<double>(C) + eps);
    r.mean[n] = m;
    r.rstd[n] = rs;
    for (I64 c = 0; c < C; ++c) r.y[n * C + c] = (x[n * C + c] - m) * rs * w[c] + b[c];
  }
  return r;
}

// dx overwritten; dw, db accumulated onto their starting values.
inline void layer_norm_backward(const Vec& dy, const Vec& x, const Vec& w, const Vec& mean, const Vec& rstd, I64 N,
                                I64 C, Vec& dx, Vec& dw, Vec& db) {
  dx.assign(x.size(), 0.0);
  for (I64 n = 0; n < N; ++n) {
    double mean_dn = 0, mean_dn_norm = 0;
    for (I64 c = 0; c < C; ++c) {
      const double norm = (x[n * C + c] - mean[n]) * rstd[n], dn = dy[n * C + c] * w[c];
      mean_dn += dn / static_cast<double>(C);
      mean_dn_norm += dn * norm / static_cast<double>(C);
      dw[c] += dy[n * C + c] * norm;
      db[c] += dy[n * C + c];
    }
    for (I64 c = 0; c < C; ++c) {
      const double norm = (x[n * C + c] - mean[n]) * rstd[n], dn = dy[n * C + c] * w[c];
      dx[n * C + c] = rstd[n] * (dn - mean_dn - norm * mean_dn_norm);
    }
  }
}

constexpr double kGeluS = 0.7978845608028654;  // √(2/π)
inline double gelu(double x) { return 0.5 * x * (1 + std::tanh(kGeluS * (x + 0.044715 * x * x * x))); }
inline double gelu_grad(double x) {
  const double th = std::tanh(kGeluS * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * kGeluS * (1 + 3 * 0.044715 * x * x);
}

// The exact GELU x·Φ(x) and its derivative Φ(x) + x·φ(x).
inline double gelu_erf(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
inline double gelu_erf_grad(double x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0)) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
}

// tanh's derivative from its output y (what tanh_backward receives): 1 − y².
inline double tanh_grad_from_y(double y) { return 1 - y * y; }

// Attention, the current contract: q [B,T,Hq·D], kv [B,T,2·Hkv·D] (keys of all groups, then
// values), out [B,T,Hq·D], probs [B,Hq,T,T] (zero where masked).
// Attention of ops.hpp: q [B,Tq,Hq·D], kv [B,Tk,2·Hkv·D] (keys, then values), an optional key mask
// [B,Tk] (nonzero = attend); a row that attends no key has output 0 and lse −∞.
struct Attn {
  I64 B, Tq, Tk, Hq, Hkv, D;
  bool causal;
  std::vector<std::uint8_t> mask;  // empty: every key
  // Dropout on the probabilities: the factor (1/(1−p) or 0) of (b, h, t, j); empty: none.
  std::function<double(I64, I64, I64, I64)> dropout = {};
  double factor(I64 b, I64 h, I64 t, I64 j) const { return dropout ? dropout(b, h, t, j) : 1.0; }
  I64 qi(I64 b, I64 t, I64 h, I64 d) const { return (b * Tq + t) * Hq * D + h * D + d; }
  I64 ki(I64 b, I64 t, I64 g, I64 d) const { return (b * Tk + t) * 2 * Hkv * D + g * D + d; }
  I64 vi(I64 b, I64 t, I64 g, I64 d) const { return ki(b, t, g, d) + Hkv * D; }
  I64 li(I64 b, I64 h, I64 t) const { return (b * Hq + h) * Tq + t; }
  I64 group(I64 h) const { return h / (Hq / Hkv); }
  bool attends(I64 b, I64 t, I64 j) const {
    return (!causal || j <= t) && (mask.empty() || mask[static_cast<std::size_t>(b * Tk + j)] != 0);
  }
};

// The probabilities of query row (b, h, t) over its keys (0 where not attended), and the row's lse.
inline Vec attention_probs(const Attn& s, const Vec& q, const Vec& kv, I64 b, I64 h, I64 t, double& lse) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.D));
  const I64 g = s.group(h);
  Vec sc(static_cast<std::size_t>(s.Tk), 0.0);
  double mx = -std::numeric_limits<double>::infinity();
  for (I64 j = 0; j < s.Tk; ++j) {
    if (!s.attends(b, t, j)) continue;
    double d = 0;
    for (I64 c = 0; c < s.D; ++c) d += q[s.qi(b, t, h, c)] * kv[s.ki(b, j, g, c)];
    sc[j] = d * scale;
    mx = std::max(mx, sc[j]);
  }
  Vec p(static_cast<std::size_t>(s.Tk), 0.0);
  if (mx == -std::numeric_limits<double>::infinity()) {
    lse = mx;
    return p;
  }
  double z = 0;
  for (I64 j = 0; j < s.Tk; ++j)
    if (s.attends(b, t, j)) z += std::exp(sc[j] - mx);
  for (I64 j = 0; j < s.Tk; ++j)
    if (s.attends(b, t, j)) p[j] = std::exp(sc[j] - mx) / z;
  lse = mx + std::log(z);
  return p;
}

inline void attention_forward(const Attn& s, const Vec& q, const Vec& kv, Vec& out, Vec& lse) {
  out.assign(static_cast<std::size_t>(s.B * s.Tq * s.Hq * s.D), 0.0);
  lse.assign(static_cast<std::size_t>(s.B * s.Hq * s.Tq), 0.0);
  for (I64 b = 0; b < s.B; ++b)
    for (I64 h = 0; h < s.Hq; ++h)
      for (I64 t = 0; t < s.Tq; ++t) {
        const Vec p = attention_probs(s, q, kv, b, h, t, lse[s.li(b, h, t)]);
        for (I64 j = 0; j < s.Tk; ++j)
          for (I64 c = 0; c < s.D; ++c) out[s.qi(b, t, h, c)] += p[j] * s.factor(b, h, t, j) * kv[s.vi(b, j, s.group(h), c)];
      }
}

// With `out` (forward's output as backward receives it: rounded to a 16-bit dtype, say), each row's
// Σ_j p_j·dp_j is taken as Σ_c dout_c·out_c, the identity backward kernels use (flash attention's D),
// so the reference sees what the kernel sees; without it, from the exact probabilities.
inline void attention_backward(const Attn& s, const Vec& dout, const Vec& q, const Vec& kv, Vec& dq, Vec& dkv,
                               const Vec* out = nullptr) {
  dq.assign(q.size(), 0.0);
  dkv.assign(kv.size(), 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.D));
  for (I64 b = 0; b < s.B; ++b)
    for (I64 h = 0; h < s.Hq; ++h)
      for (I64 t = 0; t < s.Tq; ++t) {
        const I64 g = s.group(h);
        double lse = 0;
        const Vec p = attention_probs(s, q, kv, b, h, t, lse);
        Vec dp(static_cast<std::size_t>(s.Tk), 0.0);
        double pdp = 0;
        // With dropout, out = (P∘F)·V: dV takes P∘F and dP = (dO·Vᵀ)∘F.
        for (I64 j = 0; j < s.Tk; ++j) {
          const double f = s.factor(b, h, t, j);
          for (I64 c = 0; c < s.D; ++c) {
            dp[j] += dout[s.qi(b, t, h, c)] * kv[s.vi(b, j, g, c)];
            dkv[s.vi(b, j, g, c)] += p[j] * f * dout[s.qi(b, t, h, c)];
          }
          dp[j] *= f;
          pdp += p[j] * dp[j];
        }
        if (out) {
          pdp = 0;
          for (I64 c = 0; c < s.D; ++c) pdp += dout[s.qi(b, t, h, c)] * (*out)[s.qi(b, t, h, c)];
        }
        for (I64 j = 0; j < s.Tk; ++j) {
          const double ds = p[j] * (dp[j] - pdp) * scale;
          for (I64 c = 0; c < s.D; ++c) {
            dq[s.qi(b, t, h, c)] += ds * kv[s.ki(b, j, g, c)];
            dkv[s.ki(b, j, g, c)] += ds * q[s.qi(b, t, h, c)];
          }
        }
      }
}

inline Vec softmax_rows(const Vec& x, I64 N, I64 C) {
  Vec out(x.size());
  for (I64 n = 0; n < N; ++n) {
    double mx = -std::numeric_limits<double>::infinity(), z = 0;
    for (I64 c = 0; c < C; ++c) mx = std::max(mx, x[n * C + c]);
    for (I64 c = 0; c < C; ++c) z += std::exp(x[n * C + c] - mx);
    for (I64 c = 0; c < C; ++c) out[n * C + c] = std::exp(x[n * C + c] - mx) / z;
  }
  return out;
}

inline double logsumexp(const double* x, I64 C) {
  double mx = -std::numeric_limits<double>::infinity(), z = 0;
  for (I64 c = 0; c < C; ++c) mx = std::max(mx, x[c]);
  for (I64 c = 0; c < C; ++c) z += std::exp(x[c] - mx);
  return mx + std::log(z);
}

// losses[n] = logsumexp(row n) − logits[n, target]; grad = scale·mask·(softmax − onehot).
inline void cross_entropy(const Vec& logits, const std::vector<int>& targets, const Vec* mask, double grad_scale, I64 N,
                          I64 V, Vec& losses, Vec& grad) {
  losses.assign(static_cast<std::size_t>(N), 0.0);
  grad = softmax_rows(logits, N, V);
  for (I64 n = 0; n < N; ++n) {
    losses[n] = logsumexp(&logits[n * V], V) - logits[n * V + targets[n]];
    const double w = grad_scale * (mask ? (*mask)[n] : 1.0);
    grad[n * V + targets[n]] -= 1.0;
    for (I64 v = 0; v < V; ++v) grad[n * V + v] *= w;
  }
}

struct Adam {
  double lr, beta1, beta2, eps, weight_decay, grad_scale;
  I64 step;
  bool decoupled;
};
inline void adam_step(const Adam& p, Vec& param, const Vec& grad, Vec& m, Vec& v) {
  const double bc1 = 1 - std::pow(p.beta1, static_cast<double>(p.step));
  const double bc2 = 1 - std::pow(p.beta2, static_cast<double>(p.step));
  for (std::size_t i = 0; i < param.size(); ++i) {
    double g = grad[i] * p.grad_scale;
    if (p.decoupled)
      param[i] *= 1 - p.lr * p.weight_decay;
    else
      g += p.weight_decay * param[i];
    m[i] = p.beta1 * m[i] + (1 - p.beta1) * g;
    v[i] = p.beta2 * v[i] + (1 - p.beta2) * g * g;
    param[i] -= p.lr * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + p.eps);
  }
}

}  // namespace tessera::test::ref
