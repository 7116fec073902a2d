#include "tessera/kernels/cpu/gemm_bf16.hpp"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include <dnnl.hpp>

#include "tessera/kernels/cpu/convert.hpp"
#include "tessera/kernels/cpu/gemm.hpp"
#include "tessera/kernels/cpu/scratch.hpp"

namespace tessera::cpu {

namespace {

enum class Way { onednn, convert };

Way chosen_way() {
  static const Way way = [] {
    if (const char* env = std::getenv("TESSERA_BF16_GEMM")) {
      if (std::strcmp(env, "convert") == 0) return Way::convert;
      if (std::strcmp(env, "onednn") == 0) return Way::onednn;
    }
    // Sapphire Rapids' AMX-BF16 comes with avx512_bf16, so one flag covers both.
    return __builtin_cpu_supports("avx512bf16") ? Way::onednn : Way::convert;
  }();
  return way;
}

// One oneDNN matmul primitive per shape, transposes, leading dims, output type, alpha and beta:
// creating one takes milliseconds (JIT), running one microseconds to seconds.
using Key = std::tuple<std::int64_t, std::int64_t, std::int64_t, bool, bool, std::int64_t, std::int64_t, std::int64_t,
                       bool, float, float>;

struct Primitive {
  dnnl::matmul matmul;
  dnnl::memory::desc a, b, c;
  std::string impl;
};

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// Null when oneDNN cannot run this matmul here (then the conversion path runs).
const Primitive* primitive_for(const Key& key) {
  static std::mutex mutex;
  static std::map<Key, std::unique_ptr<Primitive>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second.get();
  const auto [M, N, K, ta, tb, lda, ldb, ldc, c_bf16, alpha, beta] = key;
  using dt = dnnl::memory::data_type;
  using dims = dnnl::memory::dims;
  std::unique_ptr<Primitive> p;
  try {
    auto made = std::make_unique<Primitive>();
    // Strides express the transposes: op(a)[m, k] is a[m·lda + k], or a[k·lda + m] when transposed.
    made->a = dnnl::memory::desc({M, K}, dt::bf16, ta ? dims{1, lda} : dims{lda, 1});
    made->b = dnnl::memory::desc({K, N}, dt::bf16, tb ? dims{1, ldb} : dims{ldb, 1});
    made->c = dnnl::memory::desc({M, N}, c_bf16 ? dt::bf16 : dt::f32, dims{ldc, 1});
    dnnl::primitive_attr attr;
    if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
    if (beta != 0.0f) {
      dnnl::post_ops post;
      post.append_sum(beta);
      attr.set_post_ops(post);
    }
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(made->a, made->b, made->c), attr, engine());
    made->impl = pd.impl_info_str();
    made->matmul = dnnl::matmul(pd);
    p = std::move(made);
  } catch (const dnnl::error&) {
    p = nullptr;
  }
  const Primitive* out = p.get();
  cache.emplace(key, std::move(p));
  return out;
}

// Elements a row-major `rows`×`cols` matrix with leading dim `ld` spans.
std::int64_t extent(std::int64_t rows, std::int64_t cols, std::int64_t ld) { return rows == 0 ? 0 : (rows - 1) * ld + cols; }

std::unique_ptr<ScratchBuffer> widened(const std::uint16_t* x, std::int64_t n) {
  auto out = std::make_unique<ScratchBuffer>(n);
  half_to_f32(x, Half::bf16, out->data(), n);
  return out;
}

void convert_gemm(bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha, const std::uint16_t* a,
                  std::int64_t lda, const std::uint16_t* b, std::int64_t ldb, float beta, void* c, bool c_bf16,
                  std::int64_t ldc) {
  const auto af = widened(a, ta ? extent(K, M, lda) : extent(M, K, lda));
  const auto bf = widened(b, tb ? extent(N, K, ldb) : extent(K, N, ldb));
  if (!c_bf16) {
    sgemm(ta, tb, M, N, K, alpha, af->data(), lda, bf->data(), ldb, beta, static_cast<float*>(c), ldc);
    return;
  }
  const std::int64_t cn = extent(M, N, ldc);
  ScratchBuffer cf(cn);
  if (beta != 0.0f) half_to_f32(static_cast<const std::uint16_t*>(c), Half::bf16, cf.data(), cn);
  sgemm(ta, tb, M, N, K, alpha, af->data(), lda, bf->data(), ldb, beta, cf.data(), ldc);
  // Only the M×N elements are ours: the gaps between rows (ldc > N) keep their bits.
  for (std::int64_t i = 0; i < M; ++i)
    f32_to_half(cf.data() + i * ldc, Half::bf16, static_cast<std::uint16_t*>(c) + i * ldc, N);
}

}  // namespace

void bf16_gemm(bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha, const std::uint16_t* a,
               std::int64_t lda, const std::uint16_t* b, std::int64_t ldb, float beta, void* c, bool c_bf16,
               std::int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // no products: c = beta·c, which oneDNN and the BLAS may not take
    convert_gemm(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, c_bf16, ldc);
    return;
  }
  if (chosen_way() == Way::onednn) {
    if (const Primitive* p = primitive_for(Key{M, N, K, ta, tb, lda, ldb, ldc, c_bf16, alpha, beta})) {
      dnnl::memory am(p->a, engine(), const_cast<std::uint16_t*>(a));
      dnnl::memory bm(p->b, engine(), const_cast<std::uint16_t*>(b));
      dnnl::memory cm(p->c, engine(), c);
      dnnl::stream stream(engine());
      p->matmul.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
      stream.wait();
      return;
    }
  }
  convert_gemm(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, c_bf16, ldc);
}

std::string bf16_gemm_implementation() {
  if (chosen_way() == Way::onednn) {
    if (const Primitive* p = primitive_for(Key{64, 64, 64, false, true, 64, 64, 64, false, 1.0f, 0.0f}))
      return "oneDNN matmul (" + p->impl + ")";
    return "f32 conversion + OpenBLAS sgemm (oneDNN has no bf16 matmul for this CPU)";
  }
  return std::getenv("TESSERA_BF16_GEMM") ? "f32 conversion + OpenBLAS sgemm (TESSERA_BF16_GEMM=convert)"
                                          : "f32 conversion + OpenBLAS sgemm (the CPU reports no bf16 instructions)";
}

}  // namespace tessera::cpu
