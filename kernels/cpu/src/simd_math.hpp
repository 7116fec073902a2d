// Vectorised float math for the exp-heavy kernels (GELU, softmax, cross-entropy, attention).
//
// Why intrinsics: glibc's expf is a scalar call unless -ffast-math (which we do not use: it breaks
// accuracy elsewhere), and GCC's auto-vectorisation of a hand-written exp is fragile (jump
// threading on the range clamp duplicated the GELU division). With AVX2+FMA the 8-wide versions
// below are used; other targets get the same algorithm in scalar form. Scalar and vector forms
// compute the same formula, so a loop's tail matches its body.
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__AVX2__) && defined(__FMA__)
// GCC 12 warns that its own AVX-512 intrinsics read _mm512_undefined_*() values (GCC bug 105593);
// the state applies to the header's lines, so our code keeps every warning.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define TESSERA_CPU_AVX2 1
#endif

namespace tessera::cpu::detail {

// Cephes expf: exp(x) = 2^n·exp(r), n = round(x/ln2), r = x − n·ln2 (ln2 in two parts), degree-6
// polynomial for exp(r); ~1 ulp (max 8e-8 relative measured on [-87, 88]). Inputs are clamped to
// [-87, 88], so exp(−∞) returns ~1.6e-38 instead of 0 (harmless in a softmax sum or in 1/(1+e))
// and large inputs stay finite; NaN propagates.
constexpr float kExpLo = -87.0f, kExpHi = 88.0f, kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;

inline float exp_scalar(float x) {
  if (!(x >= kExpLo)) x = std::isnan(x) ? x : kExpLo;
  if (x > kExpHi) x = kExpHi;
  const float n = std::floor(x * kLog2e + 0.5f);
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = kP0;
  p = p * r + kP1;
  p = p * r + kP2;
  p = p * r + kP3;
  p = p * r + kP4;
  p = p * r + kP5;
  const float e = p * (r * r) + r + 1.0f;
  return e * std::bit_cast<float>((static_cast<std::int32_t>(n) + 127) << 23);
}

#ifdef TESSERA_CPU_AVX2
inline __m256 exp8(__m256 x) {
  // max/min return their second operand when either is NaN: keep x second so NaN propagates.
  x = _mm256_min_ps(_mm256_set1_ps(kExpHi), _mm256_max_ps(_mm256_set1_ps(kExpLo), x));
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(kLog2e), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  const __m256 e = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(e, _mm256_castsi256_ps(bits));
}

#if defined(__AVX512F__)
// exp8's algorithm 16 wide (same operations per lane, so the same results).
inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(kExpHi), _mm512_max_ps(_mm512_set1_ps(kExpLo), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(kLog2e), _mm512_set1_ps(0.5f)),
                                        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  const __m512 e = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(e, _mm512_castsi512_ps(bits));
}
#endif

inline float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline double hsum4d(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
#endif

// max of x[0, n), n ≥ 1.
inline float row_max(const float* x, std::int64_t n) {
  std::int64_t j = 0;
  float mx = -std::numeric_limits<float>::infinity();
#ifdef TESSERA_CPU_AVX2
  if (n >= 8) {
    __m256 m = _mm256_loadu_ps(x);
    for (j = 8; j + 8 <= n; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + j));
    mx = hmax8(m);
  }
#endif
  for (; j < n; ++j) mx = std::max(mx, x[j]);
  return mx;
}

// out[j] = exp(x[j] − shift) for j < n (skipped when out is null; out may be x), and returns
// Σ_j exp(x[j] − shift) accumulated in double: 50k terms far below the running sum drift by ~1e-4
// relative in float.
inline double exp_shift_sum(const float* x, float* out, std::int64_t n, float shift) {
  std::int64_t j = 0;
  double s = 0.0;
#ifdef TESSERA_CPU_AVX2
  const __m256 sh = _mm256_set1_ps(shift);
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), sh));
    if (out) _mm256_storeu_ps(out + j, e);
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  s = hsum4d(_mm256_add_pd(a0, a1));
#endif
  for (; j < n; ++j) {
    const float e = exp_scalar(x[j] - shift);
    if (out) out[j] = e;
    s += e;
  }
  return s;
}

}  // namespace tessera::cpu::detail
