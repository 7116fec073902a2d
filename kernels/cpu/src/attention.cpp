// Flash attention on the CPU (FlashAttention-2's algorithm): keys in tiles of kTile, an online
// softmax (running max and sum per query row) in forward, and in backward the tile probabilities
// recomputed from the saved log-sum-exp. Only tiles of scores ever exist, so the memory held for
// backward is [B,Hq,Tq] instead of [B,Hq,Tq,Tk], and the tile products run as register-blocked
// matrix products (tile_gemm.hpp) instead of the vector-times-matrix loops a per-row kernel needs.
//
// Threads: forward takes (batch, head, query tile) tasks. Backward takes (batch, head) tasks, each
// walking key tiles outer and query tiles inner, so that a task owns its head's dq rows and the
// order of every sum is fixed (results are the same for any thread count, which keeps the layout
// tests bit-identical). Heads that share a key/value head (GQA, MQA) write their dk, dv to
// per-head scratch, summed in head order afterwards.
#include "tessera/kernels/cpu/attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "simd_math.hpp"
#include "tessera/dropout_mask.hpp"
#include "tile_gemm.hpp"

namespace tessera::cpu {

namespace {

using detail::gemm_tile;

constexpr std::int64_t kTile = 64;  // queries and keys per tile: a 64×64 score tile stays in L1
static_assert(kTile % detail::kLanes == 0);
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

// p[j] = keep[j] · exp(s[j]·scale − shift) for j < n (keep null: all 1); returns Σ p. Masked
// scores are multiplied by 0 rather than set to −∞ first: exp clamps, so exp(−∞) would not be 0.
float exp_row(const float* s, const float* keep, float* p, std::int64_t n, float scale, float shift) {
  std::int64_t j = 0;
  float sum = 0.0f;
#if defined(__AVX512F__)
  const __m512 sc = _mm512_set1_ps(scale), sh = _mm512_set1_ps(shift);
  __m512 acc = _mm512_setzero_ps();
  for (; j + 16 <= n; j += 16) {
    __m512 e = detail::exp16(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), sc, sh));
    if (keep) e = _mm512_mul_ps(e, _mm512_loadu_ps(keep + j));
    _mm512_storeu_ps(p + j, e);
    acc = _mm512_add_ps(acc, e);
  }
  sum = _mm512_reduce_add_ps(acc);
#elif defined(TESSERA_CPU_AVX2)
  const __m256 sc = _mm256_set1_ps(scale), sh = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  for (; j + 8 <= n; j += 8) {
    __m256 e = detail::exp8(_mm256_fmsub_ps(_mm256_loadu_ps(s + j), sc, sh));
    if (keep) e = _mm256_mul_ps(e, _mm256_loadu_ps(keep + j));
    _mm256_storeu_ps(p + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  for (float x : lanes) sum += x;
#endif
  for (; j < n; ++j) {
    p[j] = detail::exp_scalar(s[j] * scale - shift);
    if (keep) p[j] *= keep[j];
    sum += p[j];
  }
  return sum;
}

// max of s[j] over the kept j < n (keep null: all); −∞ if none.
float kept_max(const float* s, const float* keep, std::int64_t n) {
  if (n == 0) return kNegInf;
  if (!keep) return detail::row_max(s, n);
  float m = kNegInf;
  for (std::int64_t j = 0; j < n; ++j)
    if (keep[j] != 0.0f) m = std::max(m, s[j]);
  return m;
}

// keep[j] = 1 for the attended keys j0 + j of batch row b, 0 for masked ones and for j ≥ nk (the
// padding of the last tile up to whole vectors). Returns null when every key j < width is attended
// (the fast path), else keep, or also null with *none set when no key is.
const float* fill_keep(const std::uint8_t* key_mask, std::int64_t b, std::int64_t Tk, std::int64_t j0, std::int64_t nk,
                       std::int64_t width, float* keep, bool* none) {
  bool any = false, all = true;
  for (std::int64_t j = 0; j < width; ++j) {
    keep[j] = j < nk && (!key_mask || key_mask[b * Tk + j0 + j] != 0) ? 1.0f : 0.0f;
    any |= keep[j] != 0.0f;
    all &= keep[j] != 0.0f;
  }
  *none = !any;
  return all || !any ? nullptr : keep;
}

// The operands of the tile products are packed once per call so that each one is a contiguous
// block: rows 4–6 KB apart in q or kv (a power of two times a small factor) would fall into a few
// L1 sets and evict each other on every pass of the register-blocked loop.

// Keys (or values) of every (b, g) transposed, tile by tile: dst[(((b·Hkv + g)·tiles + tile)·D + d)
// ·kTile + j] = channel d of key tile·kTile + j, zero past Tk. A [D, kTile] block is one product's
// right operand for the scores q·kᵀ (or dout·vᵀ). Called inside a parallel region.
void transpose_tiles(const float* kv, std::int64_t offset, std::int64_t B, std::int64_t Tk, std::int64_t Hkv,
                     std::int64_t D, float* dst) {
  const std::int64_t kvs = 2 * Hkv * D, tiles = (Tk + kTile - 1) / kTile;
#pragma omp for collapse(3) schedule(static)
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t g = 0; g < Hkv; ++g)
      for (std::int64_t tile = 0; tile < tiles; ++tile) {
        float* out = dst + ((b * Hkv + g) * tiles + tile) * D * kTile;
        const std::int64_t j0 = tile * kTile, nk = std::min(kTile, Tk - j0);
        const float* src = kv + (b * Tk + j0) * kvs + offset + g * D;
        for (std::int64_t d = 0; d < D; ++d) std::fill(out + d * kTile + nk, out + (d + 1) * kTile, 0.0f);
        for (std::int64_t j = 0; j < nk; ++j)
          for (std::int64_t d = 0; d < D; ++d) out[d * kTile + j] = src[j * kvs + d];
      }
}

// Keys (or values) of every (b, g) as contiguous [Tk, D] rows. Called inside a parallel region.
void pack_heads(const float* kv, std::int64_t offset, std::int64_t B, std::int64_t Tk, std::int64_t Hkv,
                std::int64_t D, float* dst) {
  const std::int64_t kvs = 2 * Hkv * D;
#pragma omp for collapse(2) schedule(static)
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t j = 0; j < Tk; ++j)
      for (std::int64_t g = 0; g < Hkv; ++g) {
        const float* src = kv + (b * Tk + j) * kvs + offset + g * D;
        std::copy(src, src + D, dst + ((b * Hkv + g) * Tk + j) * D);
      }
}

// Query rows [i0, i0 + mq) taken together: mq ≤ kTile.
struct QueryTile {
  std::int64_t i0, mq;
};

// Where each query stands among the keys: query_position[t], or t.
struct QueryPositions {
  const std::int32_t* position;
  std::int64_t Tq;
  std::int64_t of(std::int64_t t) const { return position ? position[t] : t; }
  // The query tiles: kTile rows each, but a tile ends where the positions jump (context
  // parallelism's two chunks), so that its rows see the same keys and none walks the other
  // chunk's. Without positions: [0, 64), [64, 128), ….
  std::vector<QueryTile> tiles() const {
    std::vector<QueryTile> out;
    for (std::int64_t i0 = 0; i0 < Tq;) {
      std::int64_t mq = 1;
      while (mq < kTile && i0 + mq < Tq && of(i0 + mq) == of(i0 + mq - 1) + 1) ++mq;
      out.push_back({i0, mq});
      i0 += mq;
    }
    return out;
  }
  // The last position of each tile: causal rows of the tile attend no key after it.
  std::vector<std::int64_t> tile_last(const std::vector<QueryTile>& tiles) const {
    std::vector<std::int64_t> out;
    for (const QueryTile& tile : tiles) {
      std::int64_t m = 0;
      for (std::int64_t t = tile.i0; t < tile.i0 + tile.mq; ++t) m = std::max(m, of(t));
      out.push_back(m);
    }
    return out;
  }
};

// Dropout on the probabilities: the factor of each (query, key) pair, 1/(1−p) or 0, from the
// pair's counter ((b·heads_total + head)·Tq + i)·Tk + j, where i is the query's position (and Tq
// is Tk when the queries are placed among the keys: the counters of the whole attention).
struct ProbDropout {
  explicit ProbDropout(const AttentionArgs& a)
      : on(a.dropout > 0.0f),
        key(dropout::key_of(a.seed)),
        threshold(dropout::threshold_of(a.dropout)),
        scale(dropout::scale_of(a.dropout)),
        heads(a.heads_total > 0 ? a.heads_total : a.Hq),
        head_offset(a.head_offset),
        Tq(a.query_position ? a.Tk : a.Tq),
        Tk(a.Tk) {}
  // factors[j] for keys j0 … j0 + n − 1 of the query at position i in head h of batch row b.
  void row(std::int64_t b, std::int64_t h, std::int64_t i, std::int64_t j0, std::int64_t n, float* factors) const {
    const std::int64_t first = ((b * heads + head_offset + h) * Tq + i) * Tk + j0;
    for (std::int64_t j = 0; j < n; ++j) factors[j] = dropout::hash24(first + j, key) >= threshold ? scale : 0.0f;
  }
  bool on;
  dropout::Key key;
  std::uint32_t threshold;
  float scale;
  std::int64_t heads, head_offset, Tq, Tk;
};

// Keys of tile [j0, j0 + nk) that the query at position t may attend: all, or (causal) those ≤ t.
std::int64_t visible(bool causal, std::int64_t t, std::int64_t j0, std::int64_t nk) {
  return causal ? std::clamp<std::int64_t>(t - j0 + 1, 0, nk) : nk;
}

// Where each query's keys begin: its document's first key (first_key[b,t]) or the sliding window's
// position − window_left, whichever is later; 0 when neither applies.
struct FirstKeys {
  const std::int32_t* first_key;
  QueryPositions position;
  std::int64_t window_left;
  bool any() const { return first_key != nullptr || window_left >= 0; }
  std::int64_t of(std::int64_t b, std::int64_t t) const {
    const std::int64_t document = first_key ? first_key[b * position.Tq + t] : 0;
    return window_left >= 0 ? std::max(document, position.of(t) - window_left) : document;
  }
};

// The first key of the tile at j0 that query row t of batch row b may attend, clamped to [0, n] for
// the n visible ones.
std::int64_t first_visible(const FirstKeys& first, std::int64_t b, std::int64_t t, std::int64_t j0, std::int64_t n) {
  return first.any() ? std::clamp<std::int64_t>(first.of(b, t) - j0, 0, n) : 0;
}

// The smallest first key of each (batch row, query tile), clamped to [0, Tk]: key tiles that end at
// or before it hold nothing any of the tile's queries attends. All zero without first keys.
std::vector<std::int64_t> tile_first_keys(const FirstKeys& first, std::int64_t B, const std::vector<QueryTile>& tiles,
                                          std::int64_t Tk) {
  const auto q_tiles = static_cast<std::int64_t>(tiles.size());
  std::vector<std::int64_t> out(static_cast<std::size_t>(B * q_tiles), 0);
  if (!first.any()) return out;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t qt = 0; qt < q_tiles; ++qt) {
      std::int64_t m = Tk;
      const QueryTile& tile = tiles[static_cast<std::size_t>(qt)];
      for (std::int64_t t = tile.i0; t < tile.i0 + tile.mq; ++t)
        m = std::min<std::int64_t>(m, std::max<std::int64_t>(first.of(b, t), 0));
      out[static_cast<std::size_t>(b * q_tiles + qt)] = m;
    }
  return out;
}

}  // namespace

void attention_forward(const AttentionArgs& a, const float* q, const float* kv, const std::uint8_t* key_mask,
                       const std::int32_t* first_key, const float* sink, float* out, float* lse) {
  const std::int64_t B = a.B, Tq = a.Tq, Tk = a.Tk, Hq = a.Hq, Hkv = a.Hkv, D = a.D;
  const std::int64_t qs = Hq * D, per_group = Hq / Hkv;
  const std::int64_t k_tiles = (Tk + kTile - 1) / kTile;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  // Not zeroed: transpose_tiles and pack_heads write every element (a cached generation step calls
  // this per token, where zero-filling the packed keys and values cost as much as the attention).
  const auto kt = std::make_unique_for_overwrite<float[]>(static_cast<std::size_t>(B * Hkv * k_tiles * D * kTile));
  const auto vc = std::make_unique_for_overwrite<float[]>(static_cast<std::size_t>(B * Hkv * Tk * D));
  const ProbDropout drop(a);
  const QueryPositions position{a.query_position, Tq};
  const FirstKeys first{first_key, position, a.window_left};
  const std::vector<QueryTile> tiles = position.tiles();
  const auto q_tiles = static_cast<std::int64_t>(tiles.size());
  const std::vector<std::int64_t> tile_first = tile_first_keys(first, B, tiles, Tk), tile_last = position.tile_last(tiles);
#pragma omp parallel if (B * Hq * Tq * Tk * D > (1 << 16))
  {
    transpose_tiles(kv, 0, B, Tk, Hkv, D, kt.get());
    pack_heads(kv, Hkv * D, B, Tk, Hkv, D, vc.get());
    std::vector<float> s(kTile * kTile), o(static_cast<std::size_t>(kTile * D));
    std::vector<float> keep_buf(kTile), mx(kTile), sum(kTile), factors(drop.on ? kTile : 0);
    // Causal tiles near the end of the sequence cost more: dynamic scheduling evens that out.
#pragma omp for collapse(3) schedule(dynamic)
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t h = 0; h < Hq; ++h) {
        for (std::int64_t qt = 0; qt < q_tiles; ++qt) {
          const std::int64_t g = h / per_group, i0 = tiles[static_cast<std::size_t>(qt)].i0,
                             mq = tiles[static_cast<std::size_t>(qt)].mq;
          const float* qrow = q + (b * Tq + i0) * qs + h * D;
          const float* kt_bg = kt.get() + (b * Hkv + g) * k_tiles * D * kTile;
          const float* v_bg = vc.get() + (b * Hkv + g) * Tk * D;
          std::fill(o.begin(), o.begin() + mq * D, 0.0f);
          std::fill(mx.begin(), mx.end(), kNegInf);
          std::fill(sum.begin(), sum.end(), 0.0f);
          const std::int64_t kend = a.causal ? tile_last[static_cast<std::size_t>(qt)] + 1 : Tk;
          const std::int64_t kbegin = tile_first[static_cast<std::size_t>(b * q_tiles + qt)] / kTile * kTile;
          for (std::int64_t j0 = kbegin; j0 < kend; j0 += kTile) {
            const std::int64_t nk = std::min(kTile, kend - j0), width = round_up(nk, detail::kLanes);
            bool none = false;
            const float* keep = fill_keep(key_mask, b, Tk, j0, nk, width, keep_buf.data(), &none);
            if (none) continue;
            gemm_tile(mq, width, D, qrow, qs, 1, kt_bg + j0 * D, kTile, s.data(), kTile, false);
            for (std::int64_t r = 0; r < mq; ++r) {
              float* sr = s.data() + r * kTile;
              // The row attends keys [lo, n) of the tile (and of those, the kept ones).
              const std::int64_t n = visible(a.causal, position.of(i0 + r), j0, nk);
              const std::int64_t lo = first_visible(first, b, i0 + r, j0, n);
              const float* keep_lo = keep ? keep + lo : nullptr;
              const float tile_max = kept_max(sr + lo, keep_lo, n - lo);
              if (tile_max == kNegInf) {  // nothing attended in this tile: the row's state is unchanged
                std::fill(sr, sr + width, 0.0f);
                continue;
              }
              // Online softmax: rescale what earlier tiles summed to the new running max.
              const float m_new = std::max(mx[r], tile_max * scale);
              const float alpha = std::exp(mx[r] - m_new);  // 0 on the row's first attended tile
              sum[r] = sum[r] * alpha + exp_row(sr + lo, keep_lo, sr + lo, n - lo, scale, m_new);
              std::fill(sr, sr + lo, 0.0f);
              // The softmax sums every probability; only the values' weights are dropped.
              if (drop.on) {
                drop.row(b, h, position.of(i0 + r), j0, n, factors.data());
                for (std::int64_t j = 0; j < n; ++j) sr[j] *= factors[j];
              }
              std::fill(sr + n, sr + width, 0.0f);
              mx[r] = m_new;
              if (alpha != 1.0f)
                for (std::int64_t d = 0; d < D; ++d) o[r * D + d] *= alpha;
            }
            gemm_tile(mq, D, nk, s.data(), kTile, 1, v_bg + j0 * D, D, o.data(), D, true);
          }
          for (std::int64_t r = 0; r < mq; ++r) {
            float* orow = out + (b * Tq + i0 + r) * qs + h * D;
            // The sink joins the denominator at the end, as one more (valueless) tile.
            float m = mx[r], total = sum[r], o_scale = 1.0f;
            if (sink) {
              const float m_new = std::max(m, sink[h]);
              o_scale = std::exp(m - m_new);  // 0 for a row that attended no key
              total = total * o_scale + std::exp(sink[h] - m_new);
              m = m_new;
            }
            const float inv = total > 0.0f ? o_scale / total : 0.0f;
            for (std::int64_t d = 0; d < D; ++d) orow[d] = o[r * D + d] * inv;
            lse[(b * Hq + h) * Tq + i0 + r] = total > 0.0f ? m + std::log(total) : kNegInf;
          }
        }
      }
    }
  }
}

void attention_backward(const AttentionArgs& a, const float* dout, const float* q, const float* kv,
                        const std::uint8_t* key_mask, const std::int32_t* first_key, const float* out,
                        const float* lse, float* dq, float* dkv) {
  const std::int64_t B = a.B, Tq = a.Tq, Tk = a.Tk, Hq = a.Hq, Hkv = a.Hkv, D = a.D;
  const std::int64_t qs = Hq * D, kvs = 2 * Hkv * D, per_group = Hq / Hkv, k_tiles = (Tk + kTile - 1) / kTile;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  std::vector<float> kt(static_cast<std::size_t>(B * Hkv * k_tiles * D * kTile)), vt(kt.size());
  std::vector<float> kc(static_cast<std::size_t>(B * Hkv * Tk * D));
  // Per-head dk|dv [B,Hq,Tk,2D] when heads share a key/value head; MHA writes dkv directly.
  std::vector<float> dkv_heads(per_group > 1 ? static_cast<std::size_t>(B * Hq * Tk * 2 * D) : 0);
  // delta = rowsum(dout ∘ out) per (b, h, t): softmax backward's Σ_j p_j·dp_j without the probs.
  std::vector<float> delta(static_cast<std::size_t>(B * Hq * Tq));
  const ProbDropout drop(a);
  const QueryPositions position{a.query_position, Tq};
  const FirstKeys first{first_key, position, a.window_left};
  const std::vector<QueryTile> tiles = position.tiles();
  const auto q_tiles = static_cast<std::int64_t>(tiles.size());
  const std::vector<std::int64_t> tile_first = tile_first_keys(first, B, tiles, Tk), tile_last = position.tile_last(tiles);
#pragma omp parallel if (B * Hq * Tq * Tk * D > (1 << 16))
  {
    transpose_tiles(kv, 0, B, Tk, Hkv, D, kt.data());
    transpose_tiles(kv, Hkv * D, B, Tk, Hkv, D, vt.data());
    pack_heads(kv, 0, B, Tk, Hkv, D, kc.data());
#pragma omp for collapse(2) schedule(static)
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t t = 0; t < Tq; ++t) {
        const float* dor = dout + (b * Tq + t) * qs;
        const float* orow = out + (b * Tq + t) * qs;
        for (std::int64_t h = 0; h < Hq; ++h) {
          float acc = 0.0f;
          for (std::int64_t d = 0; d < D; ++d) acc += dor[h * D + d] * orow[h * D + d];
          delta[(b * Hq + h) * Tq + t] = acc;
        }
      }

    std::vector<float> p(kTile * kTile), ds(kTile * kTile), keep_buf(kTile);
    // With dropout: the tile's factors (1/(1−p) or 0) and the dropped probabilities.
    std::vector<float> factors(drop.on ? kTile * kTile : 0), pd(factors.size());
    std::vector<float> dk(static_cast<std::size_t>(kTile * D)), dv(static_cast<std::size_t>(kTile * D));
    // This head's q, dout and dq as contiguous [Tq, D] rows.
    std::vector<float> qh(static_cast<std::size_t>(Tq * D)), doh(qh.size()), dqh(qh.size());
#pragma omp for collapse(2) schedule(dynamic)
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t h = 0; h < Hq; ++h) {
        const std::int64_t g = h / per_group;
        const float* lse_bh = lse + (b * Hq + h) * Tq;
        const float* delta_bh = delta.data() + (b * Hq + h) * Tq;
        const float* kt_bg = kt.data() + (b * Hkv + g) * k_tiles * D * kTile;
        const float* vt_bg = vt.data() + (b * Hkv + g) * k_tiles * D * kTile;
        const float* k_bg = kc.data() + (b * Hkv + g) * Tk * D;
        for (std::int64_t t = 0; t < Tq; ++t) {
          std::copy(q + (b * Tq + t) * qs + h * D, q + (b * Tq + t) * qs + (h + 1) * D, qh.begin() + t * D);
          std::copy(dout + (b * Tq + t) * qs + h * D, dout + (b * Tq + t) * qs + (h + 1) * D, doh.begin() + t * D);
        }
        std::fill(dqh.begin(), dqh.end(), 0.0f);
        for (std::int64_t j0 = 0; j0 < Tk; j0 += kTile) {
          const std::int64_t nk = std::min(kTile, Tk - j0), width = round_up(nk, detail::kLanes);
          std::fill(dk.begin(), dk.begin() + nk * D, 0.0f);
          std::fill(dv.begin(), dv.begin() + nk * D, 0.0f);
          bool none = false;
          const float* keep = fill_keep(key_mask, b, Tk, j0, nk, width, keep_buf.data(), &none);
          for (std::int64_t qt = 0; !none && qt < q_tiles; ++qt) {
            const std::int64_t i0 = tiles[static_cast<std::size_t>(qt)].i0, mq = tiles[static_cast<std::size_t>(qt)].mq;
            // Causal: the tile's queries all stand before this key tile.
            if (a.causal && tile_last[static_cast<std::size_t>(qt)] < j0) continue;
            // No query of the tile attends a key this early (documents, window).
            if (tile_first[static_cast<std::size_t>(b * q_tiles + qt)] >= j0 + nk) continue;
            const float* qi = qh.data() + i0 * D;
            const float* doi = doh.data() + i0 * D;
            // P = exp(S·scale − lse), recomputed.
            gemm_tile(mq, width, D, qi, D, 1, kt_bg + j0 * D, kTile, p.data(), kTile, false);
            for (std::int64_t r = 0; r < mq; ++r) {
              float* pr = p.data() + r * kTile;
              const float L = lse_bh[i0 + r];
              const std::int64_t n = L == kNegInf ? 0 : visible(a.causal, position.of(i0 + r), j0, nk);
              const std::int64_t lo = first_visible(first, b, i0 + r, j0, n);
              exp_row(pr + lo, keep ? keep + lo : nullptr, pr + lo, n - lo, scale, L);
              std::fill(pr, pr + lo, 0.0f);
              std::fill(pr + n, pr + width, 0.0f);
            }
            // With dropout, out = (P∘F)·V for the factors F: dV takes P∘F, and dP = (dO·Vᵀ)∘F. delta =
            // rowsum(dO∘out) is still Σ_j P_j·dP_j.
            const float* pv = p.data();
            if (drop.on) {
              for (std::int64_t r = 0; r < mq; ++r) {
                float* fr = factors.data() + r * kTile;
                drop.row(b, h, position.of(i0 + r), j0, width, fr);
                for (std::int64_t j = 0; j < width; ++j) pd[r * kTile + j] = p[r * kTile + j] * fr[j];
              }
              pv = pd.data();
            }
            // dV += Pᵀ·dO;  dP = dO·Vᵀ.
            gemm_tile(nk, D, mq, pv, 1, kTile, doi, D, dv.data(), D, true);
            gemm_tile(mq, width, D, doi, D, 1, vt_bg + j0 * D, kTile, ds.data(), kTile, false);
            // dS = P ∘ (dP − delta), with the 1/√D of S = q·kᵀ/√D folded in for dq and dk.
            for (std::int64_t r = 0; r < mq; ++r) {
              const float dl = delta_bh[i0 + r];
              float* dsr = ds.data() + r * kTile;
              const float* pr = p.data() + r * kTile;
              if (drop.on) {
                const float* fr = factors.data() + r * kTile;
#pragma omp simd
                for (std::int64_t j = 0; j < width; ++j) dsr[j] = pr[j] * (dsr[j] * fr[j] - dl) * scale;
              } else {
#pragma omp simd
                for (std::int64_t j = 0; j < width; ++j) dsr[j] = pr[j] * (dsr[j] - dl) * scale;
              }
            }
            // dQ += dS·K;  dK += dSᵀ·Q.
            gemm_tile(mq, D, nk, ds.data(), kTile, 1, k_bg + j0 * D, D, dqh.data() + i0 * D, D, true);
            gemm_tile(nk, D, mq, ds.data(), 1, kTile, qi, D, dk.data(), D, true);
          }
          // This task owns key rows [j0, j0 + nk) of head h: store them (zeros if nothing attended).
          for (std::int64_t j = 0; j < nk; ++j) {
            float* dst;
            std::int64_t v_offset;
            if (per_group > 1) {
              dst = dkv_heads.data() + ((b * Hq + h) * Tk + j0 + j) * 2 * D;
              v_offset = D;
            } else {
              dst = dkv + (b * Tk + j0 + j) * kvs + g * D;
              v_offset = Hkv * D;
            }
            std::copy(dk.begin() + j * D, dk.begin() + (j + 1) * D, dst);
            std::copy(dv.begin() + j * D, dv.begin() + (j + 1) * D, dst + v_offset);
          }
        }
        for (std::int64_t t = 0; t < Tq; ++t)
          std::copy(dqh.begin() + t * D, dqh.begin() + (t + 1) * D, dq + (b * Tq + t) * qs + h * D);
      }
    }
    if (per_group > 1) {
      // Sum the heads of each group in head order.
#pragma omp for collapse(2) schedule(static)
      for (std::int64_t b = 0; b < B; ++b)
        for (std::int64_t j = 0; j < Tk; ++j)
          for (std::int64_t g = 0; g < Hkv; ++g) {
            float* dk_dst = dkv + (b * Tk + j) * kvs + g * D;
            float* dv_dst = dk_dst + Hkv * D;
            for (std::int64_t h = g * per_group; h < (g + 1) * per_group; ++h) {
              const float* src = dkv_heads.data() + ((b * Hq + h) * Tk + j) * 2 * D;
              for (std::int64_t d = 0; d < D; ++d) {
                dk_dst[d] = h == g * per_group ? src[d] : dk_dst[d] + src[d];
                dv_dst[d] = h == g * per_group ? src[D + d] : dv_dst[d] + src[D + d];
              }
            }
          }
    }
  }
}

void attention_sink_backward(const AttentionArgs& a, const float* dout, const float* out, const float* lse,
                             const float* sink, float* dsink) {
  const std::int64_t B = a.B, Tq = a.Tq, Hq = a.Hq, D = a.D, qs = Hq * D;
  // One head per task, its rows summed in order: the same bits for any thread count.
#pragma omp parallel for schedule(static) if (B * Tq * qs > (1 << 16))
  for (std::int64_t h = 0; h < Hq; ++h) {
    double acc = 0.0;
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t t = 0; t < Tq; ++t) {
        const float* dor = dout + (b * Tq + t) * qs + h * D;
        const float* orow = out + (b * Tq + t) * qs + h * D;
        double delta = 0.0;
        for (std::int64_t d = 0; d < D; ++d) delta += static_cast<double>(dor[d]) * orow[d];
        acc += std::exp(static_cast<double>(sink[h]) - lse[(b * Hq + h) * Tq + t]) * delta;
      }
    dsink[h] -= static_cast<float>(acc);
  }
}

}  // namespace tessera::cpu
