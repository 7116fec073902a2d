// Flash attention on tensor cores for bf16/f16 and head sizes D ∈ {64, 128}: FlashAttention-2's
// algorithm with every matrix product on mma.sync.m16n8k16 (bf16/f16 operands, f32 accumulators,
// sm_80 and newer); the softmax and its gradient stay in f32 registers. attention.cu dispatches here
// (attention.hpp's contract; other dtypes and head sizes keep its FFMA kernels).
//
// - forward: a block of 4 warps per (b, query head, 64 query rows), 16 rows a warp. Tiles of 64
//   keys and values stream through shared memory (cp.async, double-buffered); S = Q·Kᵀ on tensor
//   cores, an online softmax in f32, P rounded to the compute dtype, O += P·V on tensor cores.
// - backward, without atomics: (1) a Δ kernel; (2) a block per (b, kv head, 64 keys) walks every
//   query tile of every query head of its group in a fixed order and accumulates dV += Pᵀ·dO and
//   dK += dSᵀ·Q in registers (each warp owns 16 keys; Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ come out with key
//   rows, so P and dS feed the next products straight from registers); (3) a block per (b, query
//   head, 64 query rows) walks the key tiles and accumulates dQ += dS·K. P and dS are rounded to the
//   compute dtype before their products, as FlashAttention does. Every output element is summed by
//   one thread in a fixed order: two runs give the same bits.
//
// Rows that attend a single key (causal row 0, T = 1, padding that leaves one key) have dS = 0
// exactly in the exact gradient, and get exactly 0 here too: Δ = Σ dout·out is computed by the same
// chain of mma as dP (the diagonal of dO·outᵀ for the dq kernel, of out·dOᵀ for the dk/dv kernel's
// dPᵀ = V·dOᵀ), so where out is exactly the one value row dP − Δ is exactly 0 (checked on an H200:
// dq = dk = 0 bit for bit for T = 1, causal row 0 and rows a mask leaves one key, with the lse of a
// double reference as the parity harness passes it). Besides, given the forward's own lse such a
// row's P = 2^((x − lse)·log₂e) is exactly 1 (S recomputed by the forward's own call, x = s·scale
// rounded, never fused, as there; lse = m + log 1 = m), and dS is set to 0 where P ≥ 1: P rounds
// to 1 only when the row's other keys hold < 2⁻²⁴ of its mass, so that drops < 1.2e-7·|dP|.
// Exponentials are ex2.approx (2 ulp); lse = m + logf(l) as the FFMA kernels.
//
// Fragments (PTX ISA, mma.m16n8k16 .bf16/.f16): lane = 4·gr + tq. A (16×16, row-major) holds rows
// gr and gr + 8, columns 2tq, 2tq + 1 and 2tq + 8, 2tq + 9; B (16×8) columns gr, rows 2tq, 2tq + 1
// and 2tq + 8, 2tq + 9; C (16×8 f32) rows gr and gr + 8, columns 2tq, 2tq + 1. Two C tiles side by
// side, rounded and packed in pairs, are the A fragment of the next product (P for P·V). Shared
// tiles are rows of D elements at a stride of D + 8 (16 bytes of padding): ldmatrix's 8 row reads
// of a phase then fall in 8 distinct 16-byte bank groups.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "attention_internal.hpp"
#include "device_math.cuh"

namespace tessera::cuda::detail {

namespace {

constexpr int kThreads = 128;  // 4 warps
constexpr int kWarps = kThreads / 32;
// Query rows of a forward / dq block (16 per warp), keys per step there, and keys of a dk/dv block.
constexpr int kTile = 64;
constexpr float kLog2e = 1.4426950408889634f;

// Query rows per step of the dk/dv kernel: its two D-wide accumulators (64 registers a thread at
// D = 64, 128 at D = 128) leave room for that many columns of scores without spilling.
template <int D>
struct KeyBlock {
  static constexpr int BQ = D <= 64 ? 32 : 16;
};
// Blocks per SM each kernel's registers are budgeted for (65536 registers / (128 threads · blocks)),
// the most that compile without spills. Measured on an H200 (GPT-2 shapes) against fatter blocks:
// 64 query rows a dk/dv step at 2 blocks ran the same within noise; BQ = 32 at 2 blocks, and 3
// forward / 2 dq blocks at D = 64, ran 5–10% slower.
template <int D>
struct MinBlocks {
  static constexpr int forward = D <= 64 ? 4 : 2;
  static constexpr int dq = D <= 64 ? 3 : 2;
  static constexpr int dkdv = D <= 64 ? 3 : 2;
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define TESSERA_ATTENTION_TC_UNSUPPORTED 1  // the host side never launches these kernels there
#endif

// ---- PTX wrappers -------------------------------------------------------------------------------

__device__ __forceinline__ std::uint32_t smem_u32(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global → shared, asynchronously; `valid` false writes 16 zero bytes (src not read).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
#ifndef TESSERA_ATTENTION_TC_UNSUPPORTED
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(bytes)
               : "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifndef TESSERA_ATTENTION_TC_UNSUPPORTED
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void cp_async_wait_all() {
#ifndef TESSERA_ATTENTION_TC_UNSUPPORTED
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
#endif
}

// Four 8×8 matrices of 16-bit elements; lane l gives the address of row l % 8 of matrix l / 8.
__device__ __forceinline__ void ldsm4(std::uint32_t (&r)[4], const void* p) {
#ifndef TESSERA_ATTENTION_TC_UNSUPPORTED
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p))
               : "memory");
#endif
}
__device__ __forceinline__ void ldsm4_trans(std::uint32_t (&r)[4], const void* p) {
#ifndef TESSERA_ATTENTION_TC_UNSUPPORTED
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p))
               : "memory");
#endif
}

// 2^x (ex2.approx: ~2 ulp; 2^0 = 1 and 2^−∞ = 0 exactly; results below 2⁻¹²⁶ flush to 0).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// c += a·b for the 16-bit type T, and the packing of two f32 into a register of two T (lo first).
template <class T>
struct Mma;
template <>
struct Mma<__nv_bfloat16> {
  static __device__ __forceinline__ void run(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                             std::uint32_t b1) {
#ifndef TESSERA_ATTENTION_TC_UNSUPPORTED
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
  }
  static __device__ __forceinline__ std::uint32_t pack(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const std::uint32_t*>(&v);
  }
};
template <>
struct Mma<__half> {
  static __device__ __forceinline__ void run(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                             std::uint32_t b1) {
#ifndef TESSERA_ATTENTION_TC_UNSUPPORTED
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
  }
  static __device__ __forceinline__ std::uint32_t pack(float lo, float hi) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const std::uint32_t*>(&v);
  }
};

// ---- fragments from shared tiles (row stride LD elements) ---------------------------------------
// Offsets, in elements, of this lane's ldmatrix row address.

// A fragment: rows row0..row0+15, k columns k0..k0+15 of a row-major tile.
template <int LD>
__device__ __forceinline__ int a_offset(int row0, int k0) {
  const int lane = threadIdx.x & 31;
  return (row0 + (lane & 15)) * LD + k0 + ((lane >> 4) << 3);
}
// B fragments of two n-tiles (n0..n0+7 in r[0], r[1]; n0+8..n0+15 in r[2], r[3]), k0..k0+15, from a
// tile stored [n][k] (a key tile for Q·Kᵀ): ldsm4.
template <int LD>
__device__ __forceinline__ int b_offset_nk(int n0, int k0) {
  const int lane = threadIdx.x & 31;
  return (n0 + (lane & 7) + ((lane >> 4) << 3)) * LD + k0 + (((lane >> 3) & 1) << 3);
}
// The same from a tile stored [k][n] (a value tile for P·V): ldsm4_trans.
template <int LD>
__device__ __forceinline__ int b_offset_kn(int k0, int n0) {
  const int lane = threadIdx.x & 31;
  return (k0 + (lane & 7) + (((lane >> 3) & 1) << 3)) * LD + n0 + ((lane >> 4) << 3);
}

// acc[n] (n-tiles n = 0..2N−1 of 8 columns) += A(16 rows of `a` at row0) · Bᵀ, B = rows 0..16N−1 of
// `b` ([n][k]), over k < K. Chains over k in ascending 16-column steps from the caller's acc.
template <int LD, int K, int N, class T>
__device__ __forceinline__ void mma_a_bt(float (&acc)[2 * N][4], const T* a, int row0, const T* b) {
#pragma unroll
  for (int kc = 0; kc < K / 16; ++kc) {
    std::uint32_t af[4];
    ldsm4(af, a + a_offset<LD>(row0, kc * 16));
#pragma unroll
    for (int np = 0; np < N; ++np) {
      std::uint32_t bf[4];
      ldsm4(bf, b + b_offset_nk<LD>(np * 16, kc * 16));
      Mma<T>::run(acc[2 * np], af, bf[0], bf[1]);
      Mma<T>::run(acc[2 * np + 1], af, bf[2], bf[3]);
    }
  }
}

// acc (D/8 n-tiles) += P · B where P is 16 × (16·KP) in C-fragment registers p[2·KP][4] (f32, rounded
// to T here) and B rows 0..16·KP−1 of `b` ([k][n], n < D).
template <int LD, int D, int KP, class T>
__device__ __forceinline__ void mma_p_b(float (&acc)[D / 8][4], const float (&p)[2 * KP][4], const T* b) {
#pragma unroll
  for (int kc = 0; kc < KP; ++kc) {
    const std::uint32_t af[4] = {Mma<T>::pack(p[2 * kc][0], p[2 * kc][1]), Mma<T>::pack(p[2 * kc][2], p[2 * kc][3]),
                                 Mma<T>::pack(p[2 * kc + 1][0], p[2 * kc + 1][1]),
                                 Mma<T>::pack(p[2 * kc + 1][2], p[2 * kc + 1][3])};
#pragma unroll
    for (int np = 0; np < D / 16; ++np) {
      std::uint32_t bf[4];
      ldsm4_trans(bf, b + b_offset_kn<LD>(kc * 16, np * 16));
      Mma<T>::run(acc[2 * np], af, bf[0], bf[1]);
      Mma<T>::run(acc[2 * np + 1], af, bf[2], bf[3]);
    }
  }
}

template <int N>
__device__ __forceinline__ void zero(float (&acc)[N][4]) {
#pragma unroll
  for (int n = 0; n < N; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[n][e] = 0.0f;
}

// ---- global ⇄ shared ----------------------------------------------------------------------------

// Rows 0..ROWS−1 of D elements (global row r at src + r·stride) into dst (stride D + 8),
// asynchronously; rows ≥ valid become zeros.
template <int ROWS, int D, class T>
__device__ __forceinline__ void load_rows(T* dst, const T* src, std::int64_t stride, int valid) {
  constexpr int kChunks = D / 8;  // 16-byte pieces of a row
  static_assert((ROWS * kChunks) % kThreads == 0);
#pragma unroll
  for (int it = 0; it < ROWS * kChunks / kThreads; ++it) {
    const int idx = it * kThreads + static_cast<int>(threadIdx.x);
    const int r = idx / kChunks, c = idx % kChunks;
    const bool ok = r < valid;
    cp_async16(dst + r * (D + 8) + c * 8, ok ? src + r * stride + c * 8 : src, ok);
  }
}

// This warp's C fragments acc (16 rows at row0 of the tile `stage`, D columns), times mul and
// rounded to T, written to rows of dst (global row r of the warp at dst + r·stride) where r < valid.
// Goes through `stage` (this warp's own 16 rows of a shared tile no other warp reads) so that the
// global stores are 16 bytes a lane.
template <int D, class T>
__device__ __forceinline__ void store_rows(T* stage, int row0, const float (&acc)[D / 8][4], float mul0, float mul1,
                                           T* dst, std::int64_t stride, int valid) {
  constexpr int LD = D + 8;
  const int lane = threadIdx.x & 31, gr = lane >> 2, tq = lane & 3;
  __syncwarp();  // the warp's last reads of `stage` come first
#pragma unroll
  for (int n = 0; n < D / 8; ++n) {
    *reinterpret_cast<std::uint32_t*>(stage + (row0 + gr) * LD + n * 8 + 2 * tq) =
        Mma<T>::pack(acc[n][0] * mul0, acc[n][1] * mul0);
    *reinterpret_cast<std::uint32_t*>(stage + (row0 + gr + 8) * LD + n * 8 + 2 * tq) =
        Mma<T>::pack(acc[n][2] * mul1, acc[n][3] * mul1);
  }
  __syncwarp();
  constexpr int kChunks = D / 8;
#pragma unroll
  for (int it = 0; it < 16 * kChunks / 32; ++it) {
    const int idx = it * 32 + lane;
    const int r = idx / kChunks, c = idx % kChunks;
    if (r < valid)
      *reinterpret_cast<uint4*>(dst + r * stride + c * 8) =
          *reinterpret_cast<const uint4*>(stage + (row0 + r) * LD + c * 8);
  }
}

__device__ __forceinline__ std::int64_t min64(std::int64_t a, std::int64_t b) { return a < b ? a : b; }

// ---- forward ------------------------------------------------------------------------------------

template <int D>
constexpr std::size_t forward_smem_bytes() {
  return static_cast<std::size_t>(5 * kTile * (D + 8)) * 2 + 2 * kTile;
}

template <int D, class T>
__global__ void __launch_bounds__(kThreads, MinBlocks<D>::forward)
    tc_forward_kernel(const T* __restrict__ q, const T* __restrict__ kv, const std::uint8_t* __restrict__ key_mask,
                      T* __restrict__ out, float* __restrict__ lse, AttentionDims s, int q_tiles, float scale) {
  constexpr int LD = D + 8, NT = kTile / 8;
  extern __shared__ uint4 smem_tc[];
  T* qs = reinterpret_cast<T*>(smem_tc);  // [kTile][LD]
  T* ks = qs + kTile * LD;                 // [2][kTile][LD]
  T* vs = ks + 2 * kTile * LD;             // [2][kTile][LD]
  std::uint8_t* keep = reinterpret_cast<std::uint8_t*>(vs + 2 * kTile * LD);  // [2][kTile] attended keys

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gr = lane >> 2, tq = lane & 3;
  // Block → (b, h, query tile), the tile slowest and the last tiles first (causal: most keys).
  const std::int64_t BH = s.B * s.Hq, bh = blockIdx.x % BH;
  const std::int64_t qt = q_tiles - 1 - static_cast<std::int64_t>(blockIdx.x / BH);
  const std::int64_t b = bh / s.Hq, h = bh % s.Hq, g = h / (s.Hq / s.Hkv);
  const std::int64_t i0 = qt * kTile, q_stride = s.Hq * D, kv_stride = 2 * s.Hkv * D;
  const T* kbase = kv + b * s.Tk * kv_stride + g * D;
  const T* vbase = kbase + s.Hkv * D;
  const std::int64_t kend = s.causal ? min64(s.Tk, i0 + kTile) : s.Tk;
  const int n_tiles = static_cast<int>((kend + kTile - 1) / kTile);

  load_rows<kTile, D>(qs, q + ((b * s.Tq + i0) * s.Hq + h) * D, q_stride, static_cast<int>(min64(kTile, s.Tq - i0)));
  cp_async_commit();
  auto issue = [&](int jt) {
    const int buf = jt & 1;
    const std::int64_t j0 = static_cast<std::int64_t>(jt) * kTile;
    const int nk = static_cast<int>(min64(kTile, s.Tk - j0));
    load_rows<kTile, D>(ks + buf * kTile * LD, kbase + j0 * kv_stride, kv_stride, nk);
    load_rows<kTile, D>(vs + buf * kTile * LD, vbase + j0 * kv_stride, kv_stride, nk);
    if (threadIdx.x < kTile) {
      const int j = threadIdx.x;
      keep[buf * kTile + j] = j < nk && (!key_mask || key_mask[b * s.Tk + j0 + j] != 0);
    }
    cp_async_commit();
  };
  if (n_tiles > 0) issue(0);

  float o[D / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  zero(o);
  for (int jt = 0; jt < n_tiles; ++jt) {
    cp_async_wait_all();
    __syncthreads();  // tile jt visible; every warp is done with tile jt − 1's buffer
    if (jt + 1 < n_tiles) issue(jt + 1);
    const int buf = jt & 1;
    const std::int64_t j0 = static_cast<std::int64_t>(jt) * kTile;
    const T* kb = ks + buf * kTile * LD;
    const T* vb = vs + buf * kTile * LD;
    const std::uint8_t* kp = keep + buf * kTile;

    // S = Q·Kᵀ (the dq kernel recomputes it with this same call: the same bits).
    float sc[NT][4];
    zero(sc);
    mma_a_bt<LD, D, NT / 2>(sc, qs, warp * 16, kb);

    // Masks where some key of the tile may be unattended by some row of this warp.
    const bool masked = key_mask != nullptr || j0 + kTile > s.Tk || (s.causal && j0 + kTile - 1 > i0 + warp * 16);
    // Online softmax, as attention.cu's: unattended scores −∞ → p = 0; a row with nothing attended
    // yet keeps max −∞ (base 0) and sum 0.
    // Row warp·16 + gr + 8r of the block attends key j0 + j (causal) iff j ≤ last + 8r.
    const int last = s.causal ? static_cast<int>(i0 - j0) + warp * 16 + gr : kTile;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float x = __fmul_rn(sc[n][2 * r + e], scale);  // rounded: never fused into the subtraction
          if (masked) {
            const int j = n * 8 + 2 * tq + e;
            if (!kp[j] || j > last + 8 * r) x = -INFINITY;
          }
          sc[n][2 * r + e] = x;
          mx = fmaxf(mx, x);
        }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[r], mx);
      const float alpha = m[r] == m_new ? 1.0f : exp2_approx((m[r] - m_new) * kLog2e);
      const float base = m_new == -INFINITY ? 0.0f : m_new;
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = exp2_approx((sc[n][2 * r + e] - base) * kLog2e);
          sc[n][2 * r + e] = p;
          sum += p;
        }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        o[n][2 * r] *= alpha;
        o[n][2 * r + 1] *= alpha;
      }
    }
    mma_p_b<LD, D, NT / 2, T>(o, sc, vb);
  }

  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    inv[r] = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    const std::int64_t t = i0 + warp * 16 + gr + 8 * r;
    if (tq == 0 && t < s.Tq) lse[(b * s.Hq + h) * s.Tq + t] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
  }
  cp_async_wait_all();  // (no key tile: the query tile's copy may still be in flight)
  const std::int64_t r0 = i0 + warp * 16;
  store_rows<D>(qs, warp * 16, o, inv[0], inv[1], out + ((b * s.Tq + r0) * s.Hq + h) * D, q_stride,
                static_cast<int>(min64(16, s.Tq - r0)));
}

// ---- backward: Δ --------------------------------------------------------------------------------

// delta[(b·Hq + h)·Tq + t] = Σ_d dout·out and delta_t (the same) of row (b, t, h), a warp per 16
// rows: the diagonals of dO·outᵀ and out·dOᵀ, by the same chains of mma as dP = dO·Vᵀ (dq kernel)
// and dPᵀ = V·dOᵀ (dk/dv kernel), so that a row whose out is one value row gets dP − Δ = 0 exactly.
template <int D, class T>
__global__ void __launch_bounds__(kThreads)
    tc_delta_kernel(const T* __restrict__ dout, const T* __restrict__ out, float* __restrict__ delta,
                    float* __restrict__ delta_t, std::int64_t rows, std::int64_t Tq, std::int64_t Hq) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gr = lane >> 2, tq = lane & 3;
  const std::int64_t r0 = (static_cast<std::int64_t>(blockIdx.x) * kWarps + warp) * 16;
  if (r0 >= rows) return;  // the whole warp
  const std::int64_t ra = r0 + gr, rb = ra + 8;
  const bool va = ra < rows, vb = rb < rows;
  auto word = [](const T* base, std::int64_t row, int col, bool ok) {
    return ok ? *reinterpret_cast<const std::uint32_t*>(base + row * D + col) : 0u;
  };
  float c1[2][4], c2[2][4];
  zero(c1);
  zero(c2);
#pragma unroll
  for (int kc = 0; kc < D / 16; ++kc) {
    const int col = kc * 16 + 2 * tq;
    // As A fragments (rows gr, gr + 8; columns col, col + 8); as B fragments of two n-tiles of rows
    // (n-tile 0: rows gr → words 0, 2; n-tile 1: rows gr + 8 → words 1, 3).
    const std::uint32_t d[4] = {word(dout, ra, col, va), word(dout, rb, col, vb), word(dout, ra, col + 8, va),
                                word(dout, rb, col + 8, vb)};
    const std::uint32_t o[4] = {word(out, ra, col, va), word(out, rb, col, vb), word(out, ra, col + 8, va),
                                word(out, rb, col + 8, vb)};
    Mma<T>::run(c1[0], d, o[0], o[2]);
    Mma<T>::run(c1[1], d, o[1], o[3]);
    Mma<T>::run(c2[0], o, d[0], d[2]);
    Mma<T>::run(c2[1], o, d[1], d[3]);
  }
  // Element (gr, gr) of n-tile 0 and (gr + 8, 8 + gr) of n-tile 1 sit in lane 4gr + gr/2, at
  // position gr % 2 (row gr) and 2 + gr % 2 (row gr + 8).
  const int src = 4 * gr + (gr >> 1);
  const bool odd = gr & 1;
  const float d1a = __shfl_sync(0xffffffffu, odd ? c1[0][1] : c1[0][0], src);
  const float d1b = __shfl_sync(0xffffffffu, odd ? c1[1][3] : c1[1][2], src);
  const float d2a = __shfl_sync(0xffffffffu, odd ? c2[0][1] : c2[0][0], src);
  const float d2b = __shfl_sync(0xffffffffu, odd ? c2[1][3] : c2[1][2], src);
  if (tq != 0) return;
  auto put = [&](std::int64_t row, float v1, float v2) {
    const std::int64_t h = row % Hq, bt = row / Hq, t = bt % Tq, bb = bt / Tq;
    delta[(bb * Hq + h) * Tq + t] = v1;
    delta_t[(bb * Hq + h) * Tq + t] = v2;
  };
  if (va) put(ra, d1a, d2a);
  if (vb) put(rb, d1b, d2b);
}

// ---- backward: dk, dv ---------------------------------------------------------------------------

template <int D>
constexpr std::size_t dkdv_smem_bytes() {
  constexpr int BQ = KeyBlock<D>::BQ;
  return static_cast<std::size_t>((2 * kTile + 4 * BQ) * (D + 8)) * 2 + 4 * BQ * sizeof(float);
}

template <int D, class T>
__global__ void __launch_bounds__(kThreads, MinBlocks<D>::dkdv)
    tc_dkdv_kernel(const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ kv,
                   const std::uint8_t* __restrict__ key_mask, const float* __restrict__ lse,
                   const float* __restrict__ delta_t, T* __restrict__ dkv, AttentionDims s, float scale) {
  constexpr int LD = D + 8, BQ = KeyBlock<D>::BQ, NQ = BQ / 8;
  extern __shared__ uint4 smem_tc[];
  T* ks = reinterpret_cast<T*>(smem_tc);  // [kTile][LD]
  T* vs = ks + kTile * LD;                 // [kTile][LD]
  T* qs = vs + kTile * LD;                 // [2][BQ][LD]
  T* dos = qs + 2 * BQ * LD;               // [2][BQ][LD]
  float* lse_s = reinterpret_cast<float*>(dos + 2 * BQ * LD);  // [2][BQ] lse, +∞ for rows without keys
  float* dl_s = lse_s + 2 * BQ;                                // [2][BQ] Δ

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gr = lane >> 2, tq = lane & 3;
  // Block → (b, kv head g, key tile), the tile slowest: causal's first key tiles have the most
  // queries, so they start first.
  const std::int64_t BG = s.B * s.Hkv, bg = blockIdx.x % BG, kt = blockIdx.x / BG;
  const std::int64_t b = bg / s.Hkv, g = bg % s.Hkv, G = s.Hq / s.Hkv;
  const std::int64_t j0 = kt * kTile, q_stride = s.Hq * D, kv_stride = 2 * s.Hkv * D;
  const int nk = static_cast<int>(min64(kTile, s.Tk - j0));

  const T* krow = kv + (b * s.Tk + j0) * kv_stride;
  load_rows<kTile, D>(ks, krow + g * D, kv_stride, nk);
  load_rows<kTile, D>(vs, krow + (s.Hkv + g) * D, kv_stride, nk);
  cp_async_commit();
  // This thread's key rows warp·16 + gr (+ 8): attended?
  bool keep[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int jr = warp * 16 + gr + 8 * r;
    keep[r] = jr < nk && (!key_mask || key_mask[b * s.Tk + j0 + jr] != 0);
  }
  // A tile whose keys are all masked gets zeros without walking the queries (padding).
  const bool any_key = __syncthreads_or(keep[0] || keep[1]);

  // Causal: query tiles wholly before this key tile attend none of its keys (Tq = Tk).
  const std::int64_t i_first = s.causal ? j0 / BQ * BQ : 0;
  const std::int64_t n_qt = any_key ? (s.Tq - i_first + BQ - 1) / BQ : 0;
  const std::int64_t steps = G * n_qt;  // (query head of the group, query tile), heads slowest
  auto issue = [&](std::int64_t step) {
    const int buf = static_cast<int>(step & 1);
    const std::int64_t h = g * G + step / n_qt, i0 = i_first + (step % n_qt) * BQ;
    const int nq = static_cast<int>(min64(BQ, s.Tq - i0));
    const std::int64_t row0 = ((b * s.Tq + i0) * s.Hq + h) * D;
    load_rows<BQ, D>(qs + buf * BQ * LD, q + row0, q_stride, nq);
    load_rows<BQ, D>(dos + buf * BQ * LD, dout + row0, q_stride, nq);
    if (threadIdx.x < BQ) {
      const int i = threadIdx.x;
      const float v = i < nq ? lse[(b * s.Hq + h) * s.Tq + i0 + i] : -INFINITY;
      lse_s[buf * BQ + i] = v == -INFINITY ? INFINITY : v;
      dl_s[buf * BQ + i] = i < nq ? delta_t[(b * s.Hq + h) * s.Tq + i0 + i] : 0.0f;
    }
    cp_async_commit();
  };
  if (steps > 0) issue(0);

  float dk[D / 8][4], dv[D / 8][4];
  zero(dk);
  zero(dv);
  for (std::int64_t step = 0; step < steps; ++step) {
    cp_async_wait_all();
    __syncthreads();  // step's tiles visible; every warp is done with step − 1's buffer
    if (step + 1 < steps) issue(step + 1);
    const int buf = static_cast<int>(step & 1);
    const std::int64_t i0 = i_first + (step % n_qt) * BQ;
    const T* qb = qs + buf * BQ * LD;
    const T* db = dos + buf * BQ * LD;
    const float* lb = lse_s + buf * BQ;
    const float* deb = dl_s + buf * BQ;

    // Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ: this warp's 16 key rows, BQ query columns.
    float st[NQ][4], dpt[NQ][4];
    zero(st);
    zero(dpt);
    mma_a_bt<LD, D, NQ / 2>(st, ks, warp * 16, qb);
    mma_a_bt<LD, D, NQ / 2>(dpt, vs, warp * 16, db);

    // Key row jr (of the block) and query column il: causal masks jr − il > i0 − j0.
    const bool causal_mask = s.causal && i0 < j0 + warp * 16 + 15;
    const int rel = static_cast<int>(i0 - j0);
#pragma unroll
    for (int n = 0; n < NQ; ++n) {
      const float2 lv = *reinterpret_cast<const float2*>(lb + n * 8 + 2 * tq);
      const float2 dlv = *reinterpret_cast<const float2*>(deb + n * 8 + 2 * tq);
#pragma unroll
      for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int jr = warp * 16 + gr + 8 * r, il = n * 8 + 2 * tq + e;
          const float row_lse = e ? lv.y : lv.x, row_delta = e ? dlv.y : dlv.x;
          float p = exp2_approx((__fmul_rn(st[n][2 * r + e], scale) - row_lse) * kLog2e);
          if (!keep[r] || (causal_mask && jr - il > rel)) p = 0.0f;
          st[n][2 * r + e] = p;
          dpt[n][2 * r + e] = p < 1.0f ? p * (dpt[n][2 * r + e] - row_delta) : 0.0f;  // dSᵀ·√D
        }
    }
    // dV += Pᵀ·dO;  dK += dSᵀ·Q.
    mma_p_b<LD, D, BQ / 16, T>(dv, st, db);
    mma_p_b<LD, D, BQ / 16, T>(dk, dpt, qb);
  }

  // This block owns keys [j0, j0 + nk) of group g: every one is written (zeros if none attended).
  cp_async_wait_all();
  __syncthreads();
  T* row = dkv + (b * s.Tk + j0 + warp * 16) * kv_stride;
  const int valid = nk - warp * 16;
  store_rows<D>(ks, warp * 16, dk, scale, scale, row + g * D, kv_stride, valid);
  store_rows<D>(vs, warp * 16, dv, 1.0f, 1.0f, row + (s.Hkv + g) * D, kv_stride, valid);
}

// ---- backward: dq -------------------------------------------------------------------------------

template <int D>
constexpr std::size_t dq_smem_bytes() {
  return static_cast<std::size_t>(6 * kTile * (D + 8)) * 2 + 2 * kTile;
}

template <int D, class T>
__global__ void __launch_bounds__(kThreads, MinBlocks<D>::dq)
    tc_dq_kernel(const T* __restrict__ dout, const T* __restrict__ q, const T* __restrict__ kv,
                 const std::uint8_t* __restrict__ key_mask, const float* __restrict__ lse,
                 const float* __restrict__ delta, T* __restrict__ dq, AttentionDims s, int q_tiles, float scale) {
  constexpr int LD = D + 8, NT = kTile / 8;
  extern __shared__ uint4 smem_tc[];
  T* qs = reinterpret_cast<T*>(smem_tc);  // [kTile][LD]
  T* dos = qs + kTile * LD;                // [kTile][LD]
  T* ks = dos + kTile * LD;                // [2][kTile][LD]
  T* vs = ks + 2 * kTile * LD;             // [2][kTile][LD]
  std::uint8_t* keep = reinterpret_cast<std::uint8_t*>(vs + 2 * kTile * LD);  // [2][kTile]

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gr = lane >> 2, tq = lane & 3;
  const std::int64_t BH = s.B * s.Hq, bh = blockIdx.x % BH;
  const std::int64_t qt = q_tiles - 1 - static_cast<std::int64_t>(blockIdx.x / BH);  // last tiles first
  const std::int64_t b = bh / s.Hq, h = bh % s.Hq, g = h / (s.Hq / s.Hkv);
  const std::int64_t i0 = qt * kTile, q_stride = s.Hq * D, kv_stride = 2 * s.Hkv * D;
  const T* kbase = kv + b * s.Tk * kv_stride + g * D;
  const T* vbase = kbase + s.Hkv * D;
  const std::int64_t kend = s.causal ? min64(s.Tk, i0 + kTile) : s.Tk;
  const int n_tiles = static_cast<int>((kend + kTile - 1) / kTile);

  const std::int64_t row0 = ((b * s.Tq + i0) * s.Hq + h) * D;
  const int nq = static_cast<int>(min64(kTile, s.Tq - i0));
  load_rows<kTile, D>(qs, q + row0, q_stride, nq);
  load_rows<kTile, D>(dos, dout + row0, q_stride, nq);
  cp_async_commit();
  auto issue = [&](int jt) {
    const int buf = jt & 1;
    const std::int64_t j0 = static_cast<std::int64_t>(jt) * kTile;
    const int nk = static_cast<int>(min64(kTile, s.Tk - j0));
    load_rows<kTile, D>(ks + buf * kTile * LD, kbase + j0 * kv_stride, kv_stride, nk);
    load_rows<kTile, D>(vs + buf * kTile * LD, vbase + j0 * kv_stride, kv_stride, nk);
    if (threadIdx.x < kTile) {
      const int j = threadIdx.x;
      keep[buf * kTile + j] = j < nk && (!key_mask || key_mask[b * s.Tk + j0 + j] != 0);
    }
    cp_async_commit();
  };
  if (n_tiles > 0) issue(0);

  // This thread's rows warp·16 + gr (+ 8): lse (+∞ for a row without keys: p = 0) and Δ.
  float row_lse[2], row_delta[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const std::int64_t t = i0 + warp * 16 + gr + 8 * r;
    const float v = t < s.Tq ? lse[(b * s.Hq + h) * s.Tq + t] : -INFINITY;
    row_lse[r] = v == -INFINITY ? INFINITY : v;
    row_delta[r] = t < s.Tq ? delta[(b * s.Hq + h) * s.Tq + t] : 0.0f;
  }

  float acc[D / 8][4];
  zero(acc);
  for (int jt = 0; jt < n_tiles; ++jt) {
    cp_async_wait_all();
    __syncthreads();
    if (jt + 1 < n_tiles) issue(jt + 1);
    const int buf = jt & 1;
    const std::int64_t j0 = static_cast<std::int64_t>(jt) * kTile;
    const T* kb = ks + buf * kTile * LD;
    const T* vb = vs + buf * kTile * LD;
    const std::uint8_t* kp = keep + buf * kTile;

    // S = Q·Kᵀ (the forward's chain, so the same bits) and dP = dO·Vᵀ.
    float sc[NT][4], dp[NT][4];
    zero(sc);
    zero(dp);
    mma_a_bt<LD, D, NT / 2>(sc, qs, warp * 16, kb);
    mma_a_bt<LD, D, NT / 2>(dp, dos, warp * 16, vb);

    const bool masked = key_mask != nullptr || j0 + kTile > s.Tk || (s.causal && j0 + kTile - 1 > i0 + warp * 16);
    const int last = s.causal ? static_cast<int>(i0 - j0) + warp * 16 + gr : kTile;  // as the forward's
#pragma unroll
    for (int r = 0; r < 2; ++r) {
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float p = exp2_approx((__fmul_rn(sc[n][2 * r + e], scale) - row_lse[r]) * kLog2e);
          if (masked) {
            const int j = n * 8 + 2 * tq + e;
            if (!kp[j] || j > last + 8 * r) p = 0.0f;
          }
          sc[n][2 * r + e] = p < 1.0f ? p * (dp[n][2 * r + e] - row_delta[r]) : 0.0f;  // dS·√D
        }
    }
    mma_p_b<LD, D, NT / 2, T>(acc, sc, kb);  // dQ += dS·K
  }

  cp_async_wait_all();
  const std::int64_t r0 = i0 + warp * 16;
  store_rows<D>(qs, warp * 16, acc, scale, scale, dq + ((b * s.Tq + r0) * s.Hq + h) * D, q_stride,
                static_cast<int>(min64(16, s.Tq - r0)));
}

// ---- launchers ----------------------------------------------------------------------------------

template <class Kernel, class... Args>
void launch(Kernel kernel, std::int64_t D, const char* what, std::int64_t blocks, std::size_t smem,
            cudaStream_t stream, Args... args) {
  allow_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), smem, D, what);
  kernel<<<static_cast<unsigned>(blocks), kThreads, smem, stream>>>(args...);
}

std::int64_t tiles(std::int64_t n, int tile) { return (n + tile - 1) / tile; }

float scale_of(const AttentionDims& s) { return 1.0f / std::sqrt(static_cast<float>(s.D)); }

// Runs f(T{}, std::integral_constant<int, D>{}) for the 16-bit type of t and D ∈ {64, 128}.
template <class F>
void with_type_and_head(Float t, std::int64_t D, F&& f) {
  auto by_head = [&](auto type) {
    if (D == 64)
      f(type, std::integral_constant<int, 64>{});
    else
      f(type, std::integral_constant<int, 128>{});
  };
  if (t == Float::bf16)
    by_head(__nv_bfloat16{});
  else
    by_head(__half{});
}

}  // namespace

bool tensor_core_attention_takes(Float t, std::int64_t D) {
  if (t == Float::f32 || (D != 64 && D != 128)) return false;
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    cudaGetLastError();  // leave no error for the next launch check
    return false;
  }
  return major >= 8;
}

void attention_forward_tensor_core(Float t, const AttentionDims& s, const void* q, const void* kv,
                                   const std::uint8_t* key_mask, void* out, float* lse, cudaStream_t stream) {
  with_type_and_head(t, s.D, [&](auto type, auto dd) {
    using T = decltype(type);
    constexpr int D = decltype(dd)::value;
    const std::int64_t q_tiles = tiles(s.Tq, kTile);
    launch(tc_forward_kernel<D, T>, s.D, "attention_forward (tensor cores)", s.B * s.Hq * q_tiles, forward_smem_bytes<D>(), stream, static_cast<const T*>(q),
           static_cast<const T*>(kv), key_mask, static_cast<T*>(out), lse, s, static_cast<int>(q_tiles),
           scale_of(s));
  });
  check_launch("attention_forward (tensor cores)");
}

void attention_backward_tensor_core(Float t, const AttentionDims& s, const void* dout, const void* q, const void* kv,
                                    const std::uint8_t* key_mask, const void* out, const float* lse, void* dq,
                                    void* dkv, void* workspace, cudaStream_t stream) {
  const std::int64_t rows = s.B * s.Tq * s.Hq;
  float* delta = static_cast<float*>(workspace);
  float* delta_t = delta + rows;
  with_type_and_head(t, s.D, [&](auto type, auto dd) {
    using T = decltype(type);
    constexpr int D = decltype(dd)::value;
    const float scale = scale_of(s);
    tc_delta_kernel<D, T><<<static_cast<unsigned>(tiles(rows, 16 * kWarps)), kThreads, 0, stream>>>(
        static_cast<const T*>(dout), static_cast<const T*>(out), delta, delta_t, rows, s.Tq, s.Hq);
    check_launch("attention_backward (tensor cores, delta)");
    launch(tc_dkdv_kernel<D, T>, s.D, "attention_backward (tensor cores, dk, dv)", s.B * s.Hkv * tiles(s.Tk, kTile), dkdv_smem_bytes<D>(), stream,
           static_cast<const T*>(dout), static_cast<const T*>(q), static_cast<const T*>(kv), key_mask, lse,
           static_cast<const float*>(delta_t), static_cast<T*>(dkv), s, scale);
    check_launch("attention_backward (tensor cores, dk, dv)");
    const std::int64_t q_tiles = tiles(s.Tq, kTile);
    launch(tc_dq_kernel<D, T>, s.D, "attention_backward (tensor cores, dq)", s.B * s.Hq * q_tiles, dq_smem_bytes<D>(), stream, static_cast<const T*>(dout),
           static_cast<const T*>(q), static_cast<const T*>(kv), key_mask, lse, static_cast<const float*>(delta),
           static_cast<T*>(dq), s, static_cast<int>(q_tiles), scale);
    check_launch("attention_backward (tensor cores, dq)");
  });
}

}  // namespace tessera::cuda::detail
