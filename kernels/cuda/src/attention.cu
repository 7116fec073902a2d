// Flash attention on the GPU: FlashAttention-2's algorithm in plain f32 FFMA (no tensor cores), for
// every compute dtype and head size, and the dispatch of attention.hpp's entry points between these
// kernels and the tensor-core ones of attention_tensor_core.cu (bf16/f16 with D ∈ {64, 128}).
// Tiles of query rows and keys pass through shared memory as f32; only tiles of scores ever exist.
//
// - forward: a block per (b, query head, tile of BQ query rows) streams key/value tiles of BK keys
//   with an online softmax (running max and sum per row), then writes out and lse.
// - backward, without atomics: (1) delta = Σ_d dout·out per query row; (2) a block per (b, kv head,
//   tile of keys) walks every query row of every query head of its group, in head order, recomputes
//   P = exp(S/√D − lse) and accumulates dK, dV in registers; (3) a block per (b, query head, query
//   tile) walks the key tiles and accumulates dQ. Each output element is owned by one thread and
//   summed in a fixed order: two runs give the same bits.
//
// Threads: 128 per block, seen as 16 row groups ty × 8 lanes tx (tx the low bits, so the 8 lanes
// of a row group are adjacent lanes of one warp). In a score tile a thread owns rows ty + 16r and
// columns tx + 8k; in an output tile rows ty + 16r and channels 4tx + 32c + e (e < 4), so that each
// read of a value row is one 128-byte float4 line. Shared rows of D channels have stride DM + 4
// and score rows stride BK + 8 (or BQ + 8): with those paddings the reads below are free of bank
// conflicts. Kernels are templated on DM, the head size rounded up to 32/64/128/256, which fixes
// the register arrays; channels past D are zero in shared memory and add nothing.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <type_traits>

#include "attention_internal.hpp"
#include "device_math.cuh"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 128;

// Tiles of the row-owning kernels (forward, dq): BQ query rows per block, BK keys per step. Sizes
// keep the output accumulator at ≤ 64 floats per thread and shared memory at ≤ 139 KB a block.
template <int DM>
struct RowTiles {
  static constexpr int BQ = DM <= 128 ? 64 : 32;
  static constexpr int BK = DM <= 64 ? 64 : 32;
};
// Tiles of the key-owning kernel (dk, dv): BK keys per block, BQ query rows per step; it holds two
// accumulators (dK and dV, 64 floats per thread together), hence fewer keys for large heads.
template <int DM>
struct KeyTiles {
  static constexpr int BK = DM <= 64 ? 64 : DM <= 128 ? 32 : 16;
  static constexpr int BQ = DM <= 32 ? 64 : 32;
};

// Blocks per SM the register budget is sized for: as many as the shared memory of a block lets
// share an SM (227 KB), at least 1 and at most `most` (3 blocks of 128 threads get 168 registers
// each, 2 get 255).
constexpr int min_blocks(std::size_t smem_floats, int most) {
  const std::size_t fit = (227u << 10) / (smem_floats * sizeof(float));
  return fit >= static_cast<std::size_t>(most) ? most : fit >= 1 ? static_cast<int>(fit) : 1;
}

__device__ __forceinline__ int lane_tx() { return static_cast<int>(threadIdx.x) & 7; }
__device__ __forceinline__ int lane_ty() { return static_cast<int>(threadIdx.x) >> 3; }

// Max / sum over the 8 lanes of a row group (xor butterfly: every lane gets the same bits). All
// lanes of the warp must call it.
__device__ __forceinline__ float group_max(float v) {
  for (int o = 1; o < 8; o <<= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float group_sum(float v) {
  for (int o = 1; o < 8; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ std::int64_t dmin64(std::int64_t a, std::int64_t b) { return a < b ? a : b; }

// dst[r][c] (row stride DM + 4) = src[r·stride + c] in f32 for r < ROWS, c < DM; 0 for rows ≥ valid
// and channels ≥ D, so that padding adds nothing to the products.
template <int ROWS, int DM, class T>
__device__ __forceinline__ void load_tile(float* dst, const T* src, std::int64_t stride, int valid, int D) {
  for (int idx = threadIdx.x; idx < ROWS * DM; idx += kThreads) {
    const int r = idx / DM, c = idx % DM;
    dst[r * (DM + 4) + c] = r < valid && c < D ? to_f32(src[r * stride + c]) : 0.0f;
  }
}

// acc[r][k] += Σ_c a[ty + 16r][c] · b[tx + 8k][c] over c < dpad (a multiple of 4); rows of stride ld.
template <int R, int C>
__device__ __forceinline__ void tile_dot(float (&acc)[R][C], const float* a, const float* b, int ld, int dpad) {
  const int tx = lane_tx(), ty = lane_ty();
#pragma unroll 1
  for (int c = 0; c < dpad; c += 4) {
    float4 av[R];
#pragma unroll
    for (int r = 0; r < R; ++r) av[r] = *reinterpret_cast<const float4*>(a + (ty + 16 * r) * ld + c);
#pragma unroll
    for (int k = 0; k < C; ++k) {
      const float4 bv = *reinterpret_cast<const float4*>(b + (tx + 8 * k) * ld + c);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        acc[r][k] = fmaf(av[r].x, bv.x, acc[r][k]);
        acc[r][k] = fmaf(av[r].y, bv.y, acc[r][k]);
        acc[r][k] = fmaf(av[r].z, bv.z, acc[r][k]);
        acc[r][k] = fmaf(av[r].w, bv.w, acc[r][k]);
      }
    }
  }
}

// acc[r][4c + e] += Σ_{j<n} p[ty + 16r][j] · v[j][4tx + 32c + e]: p rows of stride ldp, v rows of
// stride ldv (DM channels).
template <int R, int DM>
__device__ __forceinline__ void tile_accumulate(float (&acc)[R][DM / 8], const float* p, int ldp, const float* v,
                                                int ldv, int n) {
  const int tx = lane_tx(), ty = lane_ty();
#pragma unroll 2
  for (int j = 0; j < n; ++j) {
    float pr[R];
#pragma unroll
    for (int r = 0; r < R; ++r) pr[r] = p[(ty + 16 * r) * ldp + j];
#pragma unroll
    for (int c = 0; c < DM / 32; ++c) {
      const float4 vv = *reinterpret_cast<const float4*>(v + j * ldv + 4 * tx + 32 * c);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        acc[r][4 * c + 0] = fmaf(pr[r], vv.x, acc[r][4 * c + 0]);
        acc[r][4 * c + 1] = fmaf(pr[r], vv.y, acc[r][4 * c + 1]);
        acc[r][4 * c + 2] = fmaf(pr[r], vv.z, acc[r][4 * c + 2]);
        acc[r][4 * c + 3] = fmaf(pr[r], vv.w, acc[r][4 * c + 3]);
      }
    }
  }
}

// Row r's channels of acc (scaled by mul) into dst (a row of D channels): the thread's 4tx + 32c + e.
template <int DM, class T>
__device__ __forceinline__ void store_row(T* dst, const float (&acc)[DM / 8], float mul, int D) {
  const int tx = lane_tx();
#pragma unroll
  for (int c = 0; c < DM / 32; ++c)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int ch = 4 * tx + 32 * c + e;
      if (ch < D) dst[ch] = from_f32<T>(acc[4 * c + e] * mul);
    }
}

// keep[j] = 1 for key j0 + j of batch row b if it exists and is attended, else 0 (j < BK). Returns
// this thread's value (0 for threads ≥ BK).
template <int BK>
__device__ __forceinline__ float load_keep(float* keep, const std::uint8_t* key_mask, std::int64_t b, std::int64_t Tk,
                                           std::int64_t j0, int nk) {
  const int j = threadIdx.x;
  float k = 0.0f;
  if (j < BK) {
    k = j < nk && (!key_mask || key_mask[b * Tk + j0 + j] != 0) ? 1.0f : 0.0f;
    keep[j] = k;
  }
  return k;
}

// ---- forward ------------------------------------------------------------------------------------

template <int DM>
constexpr std::size_t forward_smem_floats() {
  using Tl = RowTiles<DM>;
  return static_cast<std::size_t>((Tl::BQ + 2 * Tl::BK) * (DM + 4) + Tl::BQ * (Tl::BK + 8) + Tl::BK);
}

template <int DM, class T>
__global__ void __launch_bounds__(kThreads, min_blocks(forward_smem_floats<DM>(), 3))
    forward_kernel(const T* __restrict__ q, const T* __restrict__ kv, const std::uint8_t* __restrict__ key_mask,
                   T* __restrict__ out, float* __restrict__ lse, AttentionDims s, int q_tiles, float scale) {
  constexpr int BQ = RowTiles<DM>::BQ, BK = RowTiles<DM>::BK, R = BQ / 16, C = BK / 8;
  constexpr int LD = DM + 4, LDP = BK + 8;
  static_assert(BK <= kThreads && BQ % 16 == 0 && BK % 8 == 0);
  extern __shared__ float4 smem4[];
  float* qs = reinterpret_cast<float*>(smem4);  // [BQ][LD]
  float* ks = qs + BQ * LD;                      // [BK][LD]
  float* vs = ks + BK * LD;                      // [BK][LD]
  float* ps = vs + BK * LD;                      // [BQ][LDP] probabilities of the tile
  float* keep = ps + BQ * LDP;                   // [BK]

  // Block → (b, h, query tile) with the tile slowest and the last tiles first: causal tiles near
  // the end of the sequence see the most keys, so they start first.
  const std::int64_t BH = s.B * s.Hq;
  const std::int64_t bh = blockIdx.x % BH;
  const std::int64_t qt = q_tiles - 1 - static_cast<std::int64_t>(blockIdx.x / BH);
  const std::int64_t b = bh / s.Hq, h = bh % s.Hq, g = h / (s.Hq / s.Hkv);
  const int D = static_cast<int>(s.D), dpad = (D + 3) & ~3;
  const int tx = lane_tx(), ty = lane_ty();
  const std::int64_t i0 = qt * BQ, q_stride = s.Hq * s.D, kv_stride = 2 * s.Hkv * s.D;

  load_tile<BQ, DM>(qs, q + ((b * s.Tq + i0) * s.Hq + h) * s.D, q_stride, static_cast<int>(dmin64(BQ, s.Tq - i0)), D);

  float o[R][DM / 8], m[R], l[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < DM / 8; ++c) o[r][c] = 0.0f;
  }

  const std::int64_t kend = s.causal ? dmin64(s.Tk, i0 + BQ) : s.Tk;
  for (std::int64_t j0 = 0; j0 < kend; j0 += BK) {
    const int nk = static_cast<int>(dmin64(BK, s.Tk - j0));  // keys past kend are masked as causal
    const T* krow = kv + (b * s.Tk + j0) * kv_stride;
    load_tile<BK, DM>(ks, krow + g * s.D, kv_stride, nk, D);
    load_tile<BK, DM>(vs, krow + (s.Hkv + g) * s.D, kv_stride, nk, D);
    load_keep<BK>(keep, key_mask, b, s.Tk, j0, nk);
    __syncthreads();

    float sc[R][C];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int k = 0; k < C; ++k) sc[r][k] = 0.0f;
    tile_dot<R, C>(sc, qs, ks, LD, dpad);

    // Online softmax. Unattended scores become −∞ and then p = 0; a row with no attended key in
    // this tile keeps its state (max unchanged, alpha = 1, sum += 0). No branch around the shuffles.
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const std::int64_t t = i0 + ty + 16 * r;
      float mx = -INFINITY;
#pragma unroll
      for (int k = 0; k < C; ++k) {
        const int j = tx + 8 * k;
        const bool ok = keep[j] != 0.0f && (!s.causal || j0 + j <= t);
        sc[r][k] = ok ? sc[r][k] * scale : -INFINITY;
        mx = fmaxf(mx, sc[r][k]);
      }
      mx = group_max(mx);
      const float m_new = fmaxf(m[r], mx);
      const float alpha = m[r] == m_new ? 1.0f : expf(m[r] - m_new);  // 0 on the row's first attended tile
      float sum = 0.0f;
#pragma unroll
      for (int k = 0; k < C; ++k) {
        sc[r][k] = sc[r][k] == -INFINITY ? 0.0f : expf(sc[r][k] - m_new);
        sum += sc[r][k];
      }
      sum = group_sum(sum);
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
      if (alpha != 1.0f)
#pragma unroll
        for (int c = 0; c < DM / 8; ++c) o[r][c] *= alpha;
#pragma unroll
      for (int k = 0; k < C; ++k) ps[(ty + 16 * r) * LDP + tx + 8 * k] = sc[r][k];
    }
    __syncthreads();
    tile_accumulate<R, DM>(o, ps, LDP, vs, LD, nk);
    __syncthreads();  // before the next tile overwrites ks, vs, ps
  }

#pragma unroll
  for (int r = 0; r < R; ++r) {
    const std::int64_t t = i0 + ty + 16 * r;
    if (t >= s.Tq) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    store_row<DM>(out + ((b * s.Tq + t) * s.Hq + h) * s.D, o[r], inv, D);
    if (tx == 0) lse[(b * s.Hq + h) * s.Tq + t] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
  }
}

// ---- backward -----------------------------------------------------------------------------------

// delta[(b·Hq + h)·Tq + t] = Σ_d dout·out of row (b, t, h), one thread per row. The sum is the same
// chain of fmaf over d in the same order as tile_dot's dP = dout·v, so that where out is exactly one
// value row (a row attending a single key) dP − delta is exactly 0, as in the reference.
template <class T>
__global__ void delta_kernel(const T* __restrict__ dout, const T* __restrict__ out, float* __restrict__ delta,
                             std::int64_t rows, std::int64_t Tq, std::int64_t Hq, int D) {
  for (std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; row < rows;
       row += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const T* dr = dout + row * D;
    const T* orow = out + row * D;
    float acc = 0.0f;
    for (int d = 0; d < D; ++d) acc = fmaf(to_f32(dr[d]), to_f32(orow[d]), acc);
    const std::int64_t h = row % Hq, bt = row / Hq, t = bt % Tq, b = bt / Tq;
    delta[(b * Hq + h) * Tq + t] = acc;
  }
}

// P and dS of one score element: p = exp(s/√D − lse), ds = p·(dp − delta)/√D; both 0 where the
// key is not attended or the row attends no key (lse = −∞).
__device__ __forceinline__ void probs_and_grad(float s, float dp, float row_lse, float row_delta, bool ok,
                                               float scale, float& p, float& ds) {
  ok = ok && row_lse != -INFINITY;
  p = ok ? expf(s * scale - row_lse) : 0.0f;
  ds = ok ? p * (dp - row_delta) * scale : 0.0f;
}

template <int DM>
constexpr std::size_t dkdv_smem_floats() {
  using Tl = KeyTiles<DM>;
  return static_cast<std::size_t>((2 * Tl::BK + 2 * Tl::BQ) * (DM + 4) + 2 * Tl::BK * (Tl::BQ + 8) + 2 * Tl::BQ +
                                  Tl::BK);
}

// At most 2 blocks per SM: within 168 registers its two accumulators and two score tiles spill.
template <int DM, class T>
__global__ void __launch_bounds__(kThreads, min_blocks(dkdv_smem_floats<DM>(), 2))
    dkdv_kernel(const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ kv,
                const std::uint8_t* __restrict__ key_mask, const float* __restrict__ lse,
                const float* __restrict__ delta, T* __restrict__ dkv, AttentionDims s, float scale) {
  constexpr int BK = KeyTiles<DM>::BK, BQ = KeyTiles<DM>::BQ, R = BK / 16, C = BQ / 8;
  constexpr int LD = DM + 4, LDP = BQ + 8;
  static_assert(BK <= kThreads && BQ <= kThreads && BK % 16 == 0 && BQ % 8 == 0);
  extern __shared__ float4 smem4[];
  float* ks = reinterpret_cast<float*>(smem4);  // [BK][LD]
  float* vs = ks + BK * LD;                      // [BK][LD]
  float* qs = vs + BK * LD;                      // [BQ][LD]
  float* dos = qs + BQ * LD;                     // [BQ][LD]
  float* ps = dos + BQ * LD;                     // [BK][LDP] Pᵀ: key rows, query columns
  float* dss = ps + BK * LDP;                    // [BK][LDP] dSᵀ
  float* lse_s = dss + BK * LDP;                 // [BQ]
  float* delta_s = lse_s + BQ;                   // [BQ]
  float* keep = delta_s + BQ;                    // [BK]

  // Block → (b, kv head g, key tile), the tile slowest: causal's first key tiles have the most
  // queries, so they start first.
  const std::int64_t BG = s.B * s.Hkv;
  const std::int64_t bg = blockIdx.x % BG, kt = blockIdx.x / BG;
  const std::int64_t b = bg / s.Hkv, g = bg % s.Hkv, G = s.Hq / s.Hkv;
  const int D = static_cast<int>(s.D), dpad = (D + 3) & ~3;
  const int tx = lane_tx(), ty = lane_ty();
  const std::int64_t j0 = kt * BK, q_stride = s.Hq * s.D, kv_stride = 2 * s.Hkv * s.D;
  const int nk = static_cast<int>(dmin64(BK, s.Tk - j0));

  const T* krow = kv + (b * s.Tk + j0) * kv_stride;
  load_tile<BK, DM>(ks, krow + g * s.D, kv_stride, nk, D);
  load_tile<BK, DM>(vs, krow + (s.Hkv + g) * s.D, kv_stride, nk, D);
  // A tile whose keys are all masked gets zeros without walking the queries (padding).
  const bool any_key = __syncthreads_or(load_keep<BK>(keep, key_mask, b, s.Tk, j0, nk) != 0.0f);

  float dk[R][DM / 8], dv[R][DM / 8];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int c = 0; c < DM / 8; ++c) dk[r][c] = dv[r][c] = 0.0f;

  // Causal: query tiles wholly before this key tile attend none of its keys (Tq = Tk).
  const std::int64_t i_first = s.causal ? j0 / BQ * BQ : 0;
  for (std::int64_t hh = 0; any_key && hh < G; ++hh) {
    const std::int64_t h = g * G + hh;
    const float* lse_bh = lse + (b * s.Hq + h) * s.Tq;
    const float* delta_bh = delta + (b * s.Hq + h) * s.Tq;
    for (std::int64_t i0 = i_first; i0 < s.Tq; i0 += BQ) {
      const int nq = static_cast<int>(dmin64(BQ, s.Tq - i0));
      const std::int64_t row0 = ((b * s.Tq + i0) * s.Hq + h) * s.D;
      load_tile<BQ, DM>(qs, q + row0, q_stride, nq, D);
      load_tile<BQ, DM>(dos, dout + row0, q_stride, nq, D);
      for (int i = threadIdx.x; i < BQ; i += kThreads) {
        lse_s[i] = i < nq ? lse_bh[i0 + i] : -INFINITY;
        delta_s[i] = i < nq ? delta_bh[i0 + i] : 0.0f;
      }
      __syncthreads();

      // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ: key rows ty + 16r, query columns tx + 8k.
      float sc[R][C], dp[R][C];
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int k = 0; k < C; ++k) sc[r][k] = dp[r][k] = 0.0f;
      tile_dot<R, C>(sc, ks, qs, LD, dpad);
      tile_dot<R, C>(dp, vs, dos, LD, dpad);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int jl = ty + 16 * r;
#pragma unroll
        for (int k = 0; k < C; ++k) {
          const int il = tx + 8 * k;
          const bool ok = keep[jl] != 0.0f && (!s.causal || j0 + jl <= i0 + il);
          float p, ds;
          probs_and_grad(sc[r][k], dp[r][k], lse_s[il], delta_s[il], ok, scale, p, ds);
          ps[jl * LDP + il] = p;
          dss[jl * LDP + il] = ds;
        }
      }
      __syncthreads();
      // dV += Pᵀ·dO;  dK += dSᵀ·Q.
      tile_accumulate<R, DM>(dv, ps, LDP, dos, LD, nq);
      tile_accumulate<R, DM>(dk, dss, LDP, qs, LD, nq);
      __syncthreads();  // before the next step overwrites qs, dos, ps, dss
    }
  }

  // This block owns keys [j0, j0 + nk) of group g: every one is written (zeros if none attended).
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int jl = ty + 16 * r;
    if (jl >= nk) continue;
    T* row = dkv + (b * s.Tk + j0 + jl) * kv_stride;
    store_row<DM>(row + g * s.D, dk[r], 1.0f, D);
    store_row<DM>(row + (s.Hkv + g) * s.D, dv[r], 1.0f, D);
  }
}

template <int DM>
constexpr std::size_t dq_smem_floats() {
  using Tl = RowTiles<DM>;
  return static_cast<std::size_t>((2 * Tl::BQ + 2 * Tl::BK) * (DM + 4) + Tl::BQ * (Tl::BK + 8) + 2 * Tl::BQ + Tl::BK);
}

template <int DM, class T>
__global__ void __launch_bounds__(kThreads, min_blocks(dq_smem_floats<DM>(), 3))
    dq_kernel(const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ kv,
              const std::uint8_t* __restrict__ key_mask, const float* __restrict__ lse,
              const float* __restrict__ delta, T* __restrict__ dq, AttentionDims s, int q_tiles, float scale) {
  constexpr int BQ = RowTiles<DM>::BQ, BK = RowTiles<DM>::BK, R = BQ / 16, C = BK / 8;
  constexpr int LD = DM + 4, LDP = BK + 8;
  static_assert(BK <= kThreads && BQ <= kThreads && BQ % 16 == 0 && BK % 8 == 0);
  extern __shared__ float4 smem4[];
  float* qs = reinterpret_cast<float*>(smem4);  // [BQ][LD]
  float* dos = qs + BQ * LD;                     // [BQ][LD]
  float* ks = dos + BQ * LD;                     // [BK][LD]
  float* vs = ks + BK * LD;                      // [BK][LD]
  float* dss = vs + BK * LD;                     // [BQ][LDP]
  float* lse_s = dss + BQ * LDP;                 // [BQ]
  float* delta_s = lse_s + BQ;                   // [BQ]
  float* keep = delta_s + BQ;                    // [BK]

  const std::int64_t BH = s.B * s.Hq;
  const std::int64_t bh = blockIdx.x % BH;
  const std::int64_t qt = q_tiles - 1 - static_cast<std::int64_t>(blockIdx.x / BH);  // last tiles first
  const std::int64_t b = bh / s.Hq, h = bh % s.Hq, g = h / (s.Hq / s.Hkv);
  const int D = static_cast<int>(s.D), dpad = (D + 3) & ~3;
  const int tx = lane_tx(), ty = lane_ty();
  const std::int64_t i0 = qt * BQ, q_stride = s.Hq * s.D, kv_stride = 2 * s.Hkv * s.D;
  const int nq = static_cast<int>(dmin64(BQ, s.Tq - i0));

  const std::int64_t row0 = ((b * s.Tq + i0) * s.Hq + h) * s.D;
  load_tile<BQ, DM>(qs, q + row0, q_stride, nq, D);
  load_tile<BQ, DM>(dos, dout + row0, q_stride, nq, D);
  for (int i = threadIdx.x; i < BQ; i += kThreads) {
    lse_s[i] = i < nq ? lse[(b * s.Hq + h) * s.Tq + i0 + i] : -INFINITY;
    delta_s[i] = i < nq ? delta[(b * s.Hq + h) * s.Tq + i0 + i] : 0.0f;
  }

  float acc[R][DM / 8];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int c = 0; c < DM / 8; ++c) acc[r][c] = 0.0f;

  const std::int64_t kend = s.causal ? dmin64(s.Tk, i0 + BQ) : s.Tk;
  for (std::int64_t j0 = 0; j0 < kend; j0 += BK) {
    const int nk = static_cast<int>(dmin64(BK, s.Tk - j0));
    const T* krow = kv + (b * s.Tk + j0) * kv_stride;
    load_tile<BK, DM>(ks, krow + g * s.D, kv_stride, nk, D);
    load_tile<BK, DM>(vs, krow + (s.Hkv + g) * s.D, kv_stride, nk, D);
    load_keep<BK>(keep, key_mask, b, s.Tk, j0, nk);
    __syncthreads();

    // S = Q·Kᵀ and dP = dO·Vᵀ: query rows ty + 16r, key columns tx + 8k.
    float sc[R][C], dp[R][C];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int k = 0; k < C; ++k) sc[r][k] = dp[r][k] = 0.0f;
    tile_dot<R, C>(sc, qs, ks, LD, dpad);
    tile_dot<R, C>(dp, dos, vs, LD, dpad);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int il = ty + 16 * r;
#pragma unroll
      for (int k = 0; k < C; ++k) {
        const int jl = tx + 8 * k;
        const bool ok = keep[jl] != 0.0f && (!s.causal || j0 + jl <= i0 + il);
        float p, ds;
        probs_and_grad(sc[r][k], dp[r][k], lse_s[il], delta_s[il], ok, scale, p, ds);
        dss[il * LDP + jl] = ds;
      }
    }
    __syncthreads();
    tile_accumulate<R, DM>(acc, dss, LDP, ks, LD, nk);  // dQ += dS·K
    __syncthreads();  // before the next tile overwrites ks, vs, dss
  }

#pragma unroll
  for (int r = 0; r < R; ++r) {
    const std::int64_t t = i0 + ty + 16 * r;
    if (t < s.Tq) store_row<DM>(dq + ((b * s.Tq + t) * s.Hq + h) * s.D, acc[r], 1.0f, D);
  }
}

// ---- launchers ----------------------------------------------------------------------------------

// Runs f(std::integral_constant<int, DM>) with DM the head-size bucket of D (≤ 256).
template <class F>
void with_head_bucket(std::int64_t D, F&& f) {
  if (D <= 32)
    f(std::integral_constant<int, 32>{});
  else if (D <= 64)
    f(std::integral_constant<int, 64>{});
  else if (D <= 128)
    f(std::integral_constant<int, 128>{});
  else
    f(std::integral_constant<int, 256>{});
}

// Launches kernel with `floats` of dynamic shared memory, above the default 48 KB where needed.
template <class Kernel, class... Args>
void launch(Kernel kernel, std::int64_t D, const char* what, std::int64_t blocks, std::size_t floats,
            cudaStream_t stream, Args... args) {
  const std::size_t bytes = floats * sizeof(float);
  allow_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), bytes, D, what);
  kernel<<<static_cast<unsigned>(blocks), kThreads, bytes, stream>>>(args...);
}

std::int64_t tiles(std::int64_t n, int tile) { return (n + tile - 1) / tile; }

float scale_of(const AttentionDims& s) { return 1.0f / std::sqrt(static_cast<float>(s.D)); }

}  // namespace

namespace detail {

void attention_forward_ffma(Float t, const AttentionDims& s, const void* q, const void* kv,
                            const std::uint8_t* key_mask, void* out, float* lse, cudaStream_t stream) {
  TESSERA_CUDA_FLOAT_SWITCH(t, T, with_head_bucket(s.D, [&](auto dm) {
    constexpr int DM = decltype(dm)::value;
    const std::int64_t q_tiles = tiles(s.Tq, RowTiles<DM>::BQ);
    launch(forward_kernel<DM, T>, s.D, "attention_forward", s.B * s.Hq * q_tiles, forward_smem_floats<DM>(), stream, static_cast<const T*>(q),
           static_cast<const T*>(kv), key_mask, static_cast<T*>(out), lse, s, static_cast<int>(q_tiles), scale_of(s));
  }));
  check_launch("attention_forward");
}

void attention_backward_ffma(Float t, const AttentionDims& s, const void* dout, const void* q, const void* kv,
                             const std::uint8_t* key_mask, const void* out, const float* lse, void* dq, void* dkv,
                             void* workspace, cudaStream_t stream) {
  float* delta = static_cast<float*>(workspace);
  const std::int64_t rows = s.B * s.Tq * s.Hq;
  TESSERA_CUDA_FLOAT_SWITCH(t, T, {
    constexpr int kDeltaThreads = 256;
    delta_kernel<T><<<grid_for(rows, kDeltaThreads), kDeltaThreads, 0, stream>>>(
        static_cast<const T*>(dout), static_cast<const T*>(out), delta, rows, s.Tq, s.Hq, static_cast<int>(s.D));
    check_launch("attention_backward (delta)");
    with_head_bucket(s.D, [&](auto dm) {
      constexpr int DM = decltype(dm)::value;
      const float scale = scale_of(s);
      launch(dkdv_kernel<DM, T>, s.D, "attention_backward (dk, dv)", s.B * s.Hkv * tiles(s.Tk, KeyTiles<DM>::BK), dkdv_smem_floats<DM>(), stream,
             static_cast<const T*>(dout), static_cast<const T*>(q), static_cast<const T*>(kv), key_mask, lse,
             static_cast<const float*>(delta), static_cast<T*>(dkv), s, scale);
      check_launch("attention_backward (dk, dv)");
      const std::int64_t q_tiles = tiles(s.Tq, RowTiles<DM>::BQ);
      launch(dq_kernel<DM, T>, s.D, "attention_backward (dq)", s.B * s.Hq * q_tiles, dq_smem_floats<DM>(), stream, static_cast<const T*>(dout),
             static_cast<const T*>(q), static_cast<const T*>(kv), key_mask, lse, static_cast<const float*>(delta),
             static_cast<T*>(dq), s, static_cast<int>(q_tiles), scale);
      check_launch("attention_backward (dq)");
    });
  });
}

}  // namespace detail

// ---- dispatch -----------------------------------------------------------------------------------

namespace {

// TESSERA_CUDA_ATTENTION=ffma keeps every dtype and head size on the FFMA kernels; read once.
bool ffma_forced() {
  static const bool forced = [] {
    const char* v = std::getenv("TESSERA_CUDA_ATTENTION");
    return v != nullptr && std::strcmp(v, "ffma") == 0;
  }();
  return forced;
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

bool use_tensor_cores(Float t, const AttentionDims& s, std::initializer_list<const void*> buffers) {
  if (ffma_forced() || !detail::tensor_core_attention_takes(t, s.D)) return false;
  for (const void* p : buffers)
    if (!aligned16(p)) return false;
  return true;
}

}  // namespace

void attention_forward(Float t, const AttentionDims& s, const void* q, const void* kv, const std::uint8_t* key_mask,
                       void* out, float* lse, cudaStream_t stream) {
  if (use_tensor_cores(t, s, {q, kv, out}))
    detail::attention_forward_tensor_core(t, s, q, kv, key_mask, out, lse, stream);
  else
    detail::attention_forward_ffma(t, s, q, kv, key_mask, out, lse, stream);
}

std::size_t attention_backward_workspace_bytes(const AttentionDims& s) {
  return 2 * static_cast<std::size_t>(s.B * s.Hq * s.Tq) * sizeof(float);
}

void attention_backward(Float t, const AttentionDims& s, const void* dout, const void* q, const void* kv,
                        const std::uint8_t* key_mask, const void* out, const float* lse, void* dq, void* dkv,
                        void* workspace, cudaStream_t stream) {
  if (use_tensor_cores(t, s, {dout, q, kv, out, dq, dkv}))
    detail::attention_backward_tensor_core(t, s, dout, q, kv, key_mask, out, lse, dq, dkv, workspace, stream);
  else
    detail::attention_backward_ffma(t, s, dout, q, kv, key_mask, out, lse, dq, dkv, workspace, stream);
}

}  // namespace tessera::cuda
