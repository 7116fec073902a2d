// The CPU backend: each op's checked tensors become pointers and sizes for kernels/cpu. Checks
// that need the data itself (ids in range) happen here, where the data is readable.
#include "tessera/backends/cpu_backend.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/half.hpp"
#include "tessera/kernels/cpu/adam.hpp"
#include "tessera/kernels/cpu/attention.hpp"
#include "tessera/kernels/cpu/convert.hpp"
#include "tessera/kernels/cpu/cross_entropy.hpp"
#include "tessera/kernels/cpu/dropout.hpp"
#include "tessera/kernels/cpu/elementwise.hpp"
#include "tessera/kernels/cpu/embedding.hpp"
#include "tessera/kernels/cpu/gelu.hpp"
#include "tessera/kernels/cpu/squared_relu.hpp"
#include "tessera/kernels/cpu/gemm.hpp"
#include "tessera/kernels/cpu/gemm_bf16.hpp"
#include "tessera/kernels/cpu/layer_norm.hpp"
#include "tessera/kernels/cpu/llama.hpp"
#include "tessera/kernels/cpu/scratch.hpp"
#include "tessera/kernels/cpu/softmax.hpp"
#include "tessera/kernels/cpu/tanh.hpp"
#include "tessera/logging.hpp"

namespace tessera {

namespace {

float* f32(const Tensor& t) { return t.device_data<float>(); }

cpu::Half half_type(DType t) { return t == DType::bf16 ? cpu::Half::bf16 : cpu::Half::f16; }
std::uint16_t* bits(const Tensor& t) { return static_cast<std::uint16_t*>(t.device_raw()); }

// A float tensor of any compute dtype seen as f32 by the kernels, which compute in f32: an f32
// tensor directly, a bf16/f16 one through a converted copy — read when the view is made (inputs,
// accumulated outputs), written back when it goes (outputs). Views made in a kernel call's argument
// list live until the call returns, so an op reads its inputs' copies and its outputs are written
// back after it. A null or undefined tensor gives a null pointer (optional arguments).
class AsF32 {
 public:
  enum Mode { in, out, in_out };
  AsF32(const Tensor* t, Mode mode) : t_(t && t->defined() ? t : nullptr), mode_(mode) {
    if (!t_) return;
    if (t_->dtype() == DType::f32) {
      p_ = t_->device_data<float>();
      return;
    }
    buf_ = std::make_unique<cpu::ScratchBuffer>(t_->numel());
    p_ = buf_->data();
    if (mode_ != out) cpu::half_to_f32(bits(*t_), half_type(t_->dtype()), p_, t_->numel());
  }
  ~AsF32() {
    if (t_ && t_->dtype() != DType::f32 && mode_ != in) cpu::f32_to_half(p_, half_type(t_->dtype()), bits(*t_), t_->numel());
  }
  AsF32(const AsF32&) = delete;
  AsF32& operator=(const AsF32&) = delete;
  float* get() const { return p_; }

 private:
  const Tensor* t_;
  Mode mode_;
  float* p_ = nullptr;
  std::unique_ptr<cpu::ScratchBuffer> buf_;
};
// The argument-list forms: in(x).get(), out(y).get(), in_out(dw).get().
AsF32 in(const Tensor& t) { return AsF32(&t, AsF32::in); }
AsF32 out(const Tensor& t) { return AsF32(&t, AsF32::out); }
AsF32 in_out(const Tensor& t) { return AsF32(&t, AsF32::in_out); }
AsF32 in(const Tensor* t) { return AsF32(t, AsF32::in); }
AsF32 out(const Tensor* t) { return AsF32(t, AsF32::out); }
AsF32 in_out(const Tensor* t) { return AsF32(t, AsF32::in_out); }
const std::int32_t* i32(const Tensor& t) { return t.device_data<std::int32_t>(); }
std::int64_t cols_of(const Tensor& t) { return t.dim() == 0 ? 1 : t.size(-1); }
std::int64_t rows_of(const Tensor& t) { return cols_of(t) == 0 ? 0 : t.numel() / cols_of(t); }

// Ids index rows [0, rows) of a table (rows < 0: only ≥ 0 is required).
void check_ids(const char* op, const char* name, const Tensor& ids, std::int64_t rows) {
  const std::int32_t* p = i32(ids);
  for (std::int64_t i = 0; i < ids.numel(); ++i)
    if (p[i] < 0 || (rows >= 0 && p[i] >= rows))
      throw ShapeError(rows >= 0 ? fmt::format("{}: {}[{}] = {} is out of range [0, {})", op, name, i, p[i], rows)
                                 : fmt::format("{}: {}[{}] = {} is negative", op, name, i, p[i]));
}

// The queries' positions among the keys (AttentionMask::query_position), checked to lie in [0, Tk).
cpu::AttentionArgs attention_args(const char* op, const ops::AttentionShape& s, const ops::AttentionMask& mask = {}) {
  const std::int32_t* position = nullptr;
  if (mask.query_position.defined()) {
    check_ids(op, "query_position", mask.query_position, s.Tk);
    position = i32(mask.query_position);
  }
  return {s.B, s.Tq, s.Tk, s.Hq, s.Hkv, s.D, s.causal, s.dropout, s.dropout_seed, s.head_offset, s.heads_total,
          s.window_left, position};
}
const std::uint8_t* mask_or_null(const Tensor& key_mask) {
  return key_mask.defined() ? key_mask.device_data<std::uint8_t>() : nullptr;
}
const std::int32_t* first_key_or_null(const Tensor& first_key) { return first_key.defined() ? i32(first_key) : nullptr; }

}  // namespace

bool CpuBackend::supports(std::string_view op, DType dtype) const {
  // Everything ops.hpp's dtype rules allow: bf16 GEMMs natively where the CPU can, the other bf16/f16
  // ops on f32 copies.
  return dtype_allowed(op, dtype);
}

// ---- memory -------------------------------------------------------------------------------------

void* CpuBackend::allocate_host(std::size_t bytes, Counters& counters, const char* where) {
  // Rounding a size within 63 bytes of SIZE_MAX up would wrap to 0 and allocate 64 bytes.
  const std::size_t rounded = (bytes + 63) / 64 * 64;
  void* p = bytes > SIZE_MAX - 63 ? nullptr : std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw Error(fmt::format("out of memory allocating {} bytes on the {}", bytes, where));
  const std::int64_t now = counters.current.fetch_add(static_cast<std::int64_t>(bytes)) + static_cast<std::int64_t>(bytes);
  std::int64_t peak = counters.peak.load();
  while (now > peak && !counters.peak.compare_exchange_weak(peak, now)) {
  }
  return p;
}

void CpuBackend::free_host(void* p, std::size_t bytes, Counters& counters) noexcept {
  std::free(p);
  counters.current.fetch_sub(static_cast<std::int64_t>(bytes));
}

MemoryStats CpuBackend::stats_of(const Counters& counters) { return {counters.current.load(), counters.peak.load()}; }

void* CpuBackend::allocate(std::size_t bytes, int) { return allocate_host(bytes, counters_, "CPU"); }
void CpuBackend::deallocate(void* p, std::size_t bytes, int) noexcept { free_host(p, bytes, counters_); }
MemoryStats CpuBackend::memory_stats(int) const { return stats_of(counters_); }
void CpuBackend::reset_peak_memory(int) { counters_.peak.store(counters_.current.load()); }
void CpuBackend::copy_from_host(const void* src, Tensor& dst) { std::memcpy(dst.device_raw(), src, dst.nbytes()); }
void CpuBackend::copy_to_host(const Tensor& src, void* dst) { std::memcpy(dst, src.device_raw(), src.nbytes()); }

// ---- ops ----------------------------------------------------------------------------------------

void CpuBackend::fill(Tensor& t, float value) {
  if (value == 0.0f) {
    std::memset(t.device_raw(), 0, t.nbytes());
    return;
  }
  if (t.dtype() == DType::f32) {
    std::fill(f32(t), f32(t) + t.numel(), value);
  } else {
    const std::uint16_t b = t.dtype() == DType::bf16 ? float_to_bf16(value) : float_to_f16(value);
    std::fill(bits(t), bits(t) + t.numel(), b);
  }
}

void CpuBackend::copy(const Tensor& src, Tensor& dst) {
  if (src.dtype() == DType::f32)
    cpu::copy(f32(src), f32(dst), src.numel());
  else if (src.nbytes() > 0)
    std::memmove(dst.device_raw(), src.device_raw(), src.nbytes());
}

void CpuBackend::cast(const Tensor& src, Tensor& dst) {
  if (src.dtype() == dst.dtype()) {
    copy(src, dst);
  } else if (src.dtype() == DType::f32) {
    cpu::f32_to_half(f32(src), half_type(dst.dtype()), bits(dst), src.numel());
  } else if (dst.dtype() == DType::f32) {
    cpu::half_to_f32(bits(src), half_type(src.dtype()), f32(dst), src.numel());
  } else {  // bf16 ↔ f16 through f32
    cpu::f32_to_half(in(src).get(), half_type(dst.dtype()), bits(dst), src.numel());
  }
}

void CpuBackend::copy_2d(const Tensor& src, std::int64_t src_offset, std::int64_t src_stride, Tensor& dst,
                         std::int64_t dst_offset, std::int64_t dst_stride, std::int64_t rows, std::int64_t cols) {
  const std::size_t e = dtype_size(src.dtype());
  cpu::copy_2d(static_cast<const char*>(src.device_raw()) + src_offset * static_cast<std::int64_t>(e), src_stride,
               static_cast<char*>(dst.device_raw()) + dst_offset * static_cast<std::int64_t>(e), dst_stride, rows, cols, e);
}

void CpuBackend::arange_mod(Tensor& out, std::int64_t start, std::int64_t period) {
  cpu::arange_mod(out.device_data<std::int32_t>(), out.numel(), start, period);
}

namespace {
void log_bf16_gemm_once() {
  static std::once_flag once;
  std::call_once(once, [] { log_info("bf16 matmuls on the CPU: {}", cpu::bf16_gemm_implementation()); });
}
}  // namespace

void CpuBackend::matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& out, float alpha,
                        float beta) {
  const std::int64_t ca = cols_of(a), ra = rows_of(a);
  const std::int64_t M = trans_a ? ca : ra, K = trans_a ? ra : ca, N = trans_b ? b.size(0) : b.size(1);
  if (a.dtype() == DType::bf16) {
    log_bf16_gemm_once();
    cpu::bf16_gemm(trans_a, trans_b, M, N, K, alpha, bits(a), ca, bits(b), b.size(1), beta, out.device_raw(),
                   out.dtype() == DType::bf16, N);
    return;
  }
  cpu::sgemm(trans_a, trans_b, M, N, K, alpha, in(a).get(), ca, in(b).get(), b.size(1), beta,
             (beta == 0.0f ? AsF32(&out, AsF32::out) : AsF32(&out, AsF32::in_out)).get(), N);
}

void CpuBackend::linear_forward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const std::int64_t N = rows_of(x), in_f = w.size(1), out_f = w.size(0);
  if (x.dtype() == DType::bf16) {
    // y = x·wᵀ (+ bias) accumulated in f32 and rounded to bf16 once.
    log_bf16_gemm_once();
    cpu::ScratchBuffer acc(N * out_f);
    if (bias) {
      const AsF32 b = in(bias);
      for (std::int64_t i = 0; i < N; ++i) std::copy(b.get(), b.get() + out_f, acc.data() + i * out_f);
    }
    cpu::bf16_gemm(false, true, N, out_f, in_f, 1.0f, bits(x), in_f, bits(w), in_f, bias ? 1.0f : 0.0f, acc.data(),
                   false, out_f);
    cpu::f32_to_half(acc.data(), cpu::Half::bf16, bits(y), N * out_f);
    return;
  }
  cpu::linear_forward(in(x).get(), in(w).get(), in(bias).get(), out(y).get(), N, in_f, out_f);
}

void CpuBackend::linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw,
                                 Tensor* db) {
  const std::int64_t N = rows_of(x), in_f = w.size(1), out_f = w.size(0);
  if (x.dtype() == DType::bf16) {
    log_bf16_gemm_once();
    if (dx) cpu::bf16_gemm(false, false, N, in_f, out_f, 1.0f, bits(dy), out_f, bits(w), in_f, 0.0f, dx->device_raw(),
                           true, in_f);
    // dw += dyᵀ·x, accumulated straight into the (f32) gradient: no bf16 rounding of the sum.
    if (dw) cpu::bf16_gemm(true, false, out_f, in_f, N, 1.0f, bits(dy), out_f, bits(x), in_f, 1.0f, dw->device_raw(),
                           dw->dtype() == DType::bf16, in_f);
    if (db) cpu::linear_backward(in(dy).get(), nullptr, nullptr, nullptr, nullptr, in_out(db).get(), N, in_f, out_f);
    return;
  }
  cpu::linear_backward(in(dy).get(), in(x).get(), in(w).get(), out(dx).get(), in_out(dw).get(), in_out(db).get(), N,
                       in_f, out_f);
}

void CpuBackend::layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y,
                                    Tensor& mean, Tensor& rstd) {
  cpu::layer_norm_forward(in(x).get(), in(w).get(), in(b).get(), eps, out(y).get(), f32(mean), f32(rstd), rows_of(x),
                          cols_of(x));
}

void CpuBackend::layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean,
                                     const Tensor& rstd, Tensor& dx, Tensor& dw, Tensor& db) {
  cpu::layer_norm_backward(in(dy).get(), in(x).get(), in(w).get(), f32(mean), f32(rstd), out(dx).get(),
                           in_out(dw).get(), in_out(db).get(), rows_of(x), cols_of(x));
}

void CpuBackend::gelu_forward(const Tensor& x, Tensor& y, ops::GeluForm form) {
  (form == ops::GeluForm::erf ? cpu::gelu_erf_forward : cpu::gelu_forward)(in(x).get(), out(y).get(), x.numel());
}
void CpuBackend::gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, ops::GeluForm form) {
  (form == ops::GeluForm::erf ? cpu::gelu_erf_backward : cpu::gelu_backward)(in(dy).get(), in(x).get(), out(dx).get(),
                                                                            x.numel());
}
void CpuBackend::squared_relu_forward(const Tensor& x, Tensor& y) {
  cpu::squared_relu_forward(in(x).get(), out(y).get(), x.numel());
}
void CpuBackend::squared_relu_backward(const Tensor& dy, const Tensor& x, Tensor& dx) {
  cpu::squared_relu_backward(in(dy).get(), in(x).get(), out(dx).get(), x.numel());
}

void CpuBackend::tanh_forward(const Tensor& x, Tensor& y) { cpu::tanh_forward(in(x).get(), out(y).get(), x.numel()); }
void CpuBackend::tanh_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  cpu::tanh_backward(in(dy).get(), in(y).get(), out(dx).get(), y.numel());
}
void CpuBackend::sigmoid_forward(const Tensor& x, Tensor& y) {
  cpu::sigmoid_forward(in(x).get(), out(y).get(), x.numel());
}
void CpuBackend::sigmoid_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  cpu::sigmoid_backward(in(dy).get(), in(y).get(), out(dx).get(), y.numel());
}

void CpuBackend::rms_norm_forward(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) {
  cpu::rms_norm_forward(in(x).get(), in(w).get(), eps, out(y).get(), f32(rstd), rows_of(x), cols_of(x));
}
void CpuBackend::rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx,
                                   Tensor& dw) {
  cpu::rms_norm_backward(in(dy).get(), in(x).get(), in(w).get(), f32(rstd), out(dx).get(), in_out(dw).get(),
                         rows_of(x), cols_of(x));
}
void CpuBackend::swiglu_forward(const Tensor& x, Tensor& y, const GatedLinearUnit& g) {
  cpu::swiglu_forward(in(x).get(), out(y).get(), rows_of(y), cols_of(y), g);
}
void CpuBackend::swiglu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const GatedLinearUnit& g) {
  cpu::swiglu_backward(in(dy).get(), in(x).get(), out(dx).get(), rows_of(dy), cols_of(dy), g);
}
void CpuBackend::rope(const ops::RopeShape& s, Tensor& x, bool inverse) {
  cpu::rope(in_out(x).get(), s.B, s.T, s.H, s.D, s.row_width, s.rotary_dim, s.base, s.scaling_factor, s.interpolation,
            s.yarn, s.interleaved, s.position_offset, inverse);
}

void CpuBackend::dropout(const Tensor& x, float p, std::uint64_t seed, Tensor& y, std::int64_t offset) {
  cpu::dropout_apply(in(x).get(), out(y).get(), x.numel(), p, seed, offset);
}

void CpuBackend::attention_forward(const ops::AttentionShape& s, const Tensor& q, const Tensor& kv,
                                   const ops::AttentionMask& mask, Tensor& o, Tensor& lse) {
  cpu::attention_forward(attention_args("attention_forward", s, mask), in(q).get(), in(kv).get(), mask_or_null(mask.key_mask),
                         first_key_or_null(mask.first_key), mask.sink.defined() ? f32(mask.sink) : nullptr,
                         out(o).get(), f32(lse));
}

void CpuBackend::attention_backward(const ops::AttentionShape& s, const Tensor& dout, const Tensor& q,
                                    const Tensor& kv, const ops::AttentionMask& mask, const Tensor& o,
                                    const Tensor& lse, Tensor& dq, Tensor& dkv) {
  cpu::attention_backward(attention_args("attention_backward", s, mask), in(dout).get(), in(q).get(), in(kv).get(), mask_or_null(mask.key_mask),
                          first_key_or_null(mask.first_key), in(o).get(), f32(lse), out(dq).get(), out(dkv).get());
}

void CpuBackend::attention_sink_backward(const ops::AttentionShape& s, const Tensor& dout, const Tensor& o,
                                         const Tensor& lse, const Tensor& sink, Tensor& dsink) {
  cpu::attention_sink_backward(attention_args("attention_sink_backward", s), in(dout).get(), in(o).get(), f32(lse), f32(sink), f32(dsink));
}

void CpuBackend::embedding_forward(const Tensor& ids, const Tensor& table, Tensor& o, bool accumulate) {
  check_ids("embedding_forward", "ids", ids, table.size(0));
  AsF32 dst = accumulate ? in_out(o) : out(o);
  if (table.dtype() == DType::f32)
    cpu::embedding_forward(i32(ids), f32(table), dst.get(), ids.numel(), table.size(1), accumulate);
  else  // only the rows read are converted, not the whole (vocabulary-sized) table
    cpu::embedding_forward(i32(ids), bits(table), half_type(table.dtype()), dst.get(), ids.numel(), table.size(1),
                           accumulate);
}

void CpuBackend::embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable) {
  check_ids("embedding_backward", "ids", ids, dtable.size(0));
  cpu::embedding_backward(i32(ids), in(dout).get(), in_out(dtable).get(), ids.numel(), dtable.size(1));
}

void CpuBackend::embedding_shard_forward(const Tensor& ids, const Tensor& table, std::int64_t first_id, Tensor& o) {
  check_ids("embedding_shard_forward", "ids", ids, -1);
  AsF32 dst = out(o);
  if (table.dtype() == DType::f32)
    cpu::embedding_shard_forward(i32(ids), f32(table), first_id, table.size(0), dst.get(), ids.numel(), table.size(1));
  else
    cpu::embedding_shard_forward(i32(ids), bits(table), half_type(table.dtype()), first_id, table.size(0), dst.get(),
                                 ids.numel(), table.size(1));
}

void CpuBackend::embedding_shard_backward(const Tensor& ids, const Tensor& dout, std::int64_t first_id,
                                          Tensor& dtable) {
  check_ids("embedding_shard_backward", "ids", ids, -1);
  cpu::embedding_shard_backward(i32(ids), in(dout).get(), first_id, dtable.size(0), in_out(dtable).get(), ids.numel(),
                                dtable.size(1));
}

void CpuBackend::softmax_cross_entropy(Tensor& logits, const Tensor& targets, const Tensor& mask, Tensor& losses,
                                       bool compute_grad, float grad_scale) {
  const std::int64_t V = cols_of(logits);
  check_ids("softmax_cross_entropy", "targets", targets, V);
  cpu::softmax_cross_entropy(f32(logits), i32(targets), mask.defined() ? f32(mask) : nullptr, f32(losses), rows_of(logits), V,
                             compute_grad, grad_scale);
}

void CpuBackend::cross_entropy_shard_stats(Tensor& logits, const Tensor& targets, std::int64_t first_id,
                                           Tensor& row_max, Tensor& sum_exp, Tensor& target_logit, bool keep_exp) {
  // Any target: one outside the shard is another rank's, or not predicted (Megatron's −1, mask 0).
  cpu::cross_entropy_shard_stats(f32(logits), i32(targets), first_id, f32(row_max), f32(sum_exp), f32(target_logit),
                                 rows_of(logits), cols_of(logits), keep_exp);
}

void CpuBackend::cross_entropy_shard_grad(Tensor& exp_logits, const Tensor& targets, std::int64_t first_id,
                                          const Tensor& mask, const Tensor& row_max, const Tensor& global_max,
                                          const Tensor& global_sum, float grad_scale) {
  cpu::cross_entropy_shard_grad(f32(exp_logits), i32(targets), first_id, mask.defined() ? f32(mask) : nullptr, f32(row_max),
                                f32(global_max), f32(global_sum), grad_scale, rows_of(exp_logits),
                                cols_of(exp_logits));
}

void CpuBackend::cross_entropy_shard_rescale(const Tensor& row_max, const Tensor& sum_exp, const Tensor& global_max,
                                             Tensor& sum_at_global) {
  cpu::cross_entropy_shard_rescale(f32(row_max), f32(sum_exp), f32(global_max), f32(sum_at_global), row_max.numel());
}

void CpuBackend::cross_entropy_shard_loss(const Tensor& global_max, const Tensor& global_sum,
                                          const Tensor& target_logit, Tensor& losses) {
  cpu::cross_entropy_shard_loss(f32(global_max), f32(global_sum), f32(target_logit), f32(losses), losses.numel());
}

void CpuBackend::softmax(const Tensor& x, Tensor& out) { cpu::softmax(f32(x), f32(out), rows_of(x), cols_of(x)); }
void CpuBackend::add(const Tensor& a, const Tensor& b, Tensor& o) {
  cpu::add(in(a).get(), in(b).get(), out(o).get(), a.numel());
}
void CpuBackend::axpy(float alpha, const Tensor& x, Tensor& y) { cpu::axpy(alpha, in(x).get(), in_out(y).get(), x.numel()); }
void CpuBackend::add_bias(Tensor& y, const Tensor& bias) {
  cpu::add_bias(in_out(y).get(), in(bias).get(), rows_of(y), bias.size(0));
}
void CpuBackend::scale(Tensor& x, float s) { cpu::scale(in_out(x).get(), s, x.numel()); }
void CpuBackend::scale_rows(const Tensor& x, const Tensor& w, Tensor& o) {
  cpu::scale_rows(in(x).get(), f32(w), out(o).get(), w.numel(), w.numel() == 0 ? 0 : x.numel() / w.numel());
}
void CpuBackend::row_dot(const Tensor& a, const Tensor& b, Tensor& o) {
  cpu::row_dot(in(a).get(), in(b).get(), f32(o), o.numel(), o.numel() == 0 ? 0 : a.numel() / o.numel());
}

namespace {
void store_scalar(Tensor& out, double value, bool accumulate) {
  double* p = out.device_data<double>();
  *p = accumulate ? *p + value : value;
}
}  // namespace

void CpuBackend::sum(const Tensor& x, Tensor& out, bool accumulate) {
  store_scalar(out, cpu::sum(in(x).get(), x.numel()), accumulate);
}
void CpuBackend::sum_squares(const Tensor& x, Tensor& out, bool accumulate) {
  store_scalar(out, cpu::sum_squares(in(x).get(), x.numel()), accumulate);
}
void CpuBackend::masked_sum(const Tensor& values, const Tensor& mask, Tensor& out, bool accumulate) {
  store_scalar(out, cpu::masked_sum(f32(values), f32(mask), values.numel()), accumulate);
}
void CpuBackend::count_zeros(const Tensor& x, Tensor& out, bool accumulate) {
  store_scalar(out, cpu::count_zeros(f32(x), x.numel()), accumulate);
}

void CpuBackend::adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const ops::AdamParams& p,
                           Tensor* param_copy) {
  const cpu::AdamArgs args{p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, p.grad_scale, p.step, p.decoupled};
  cpu::adam_step(f32(param), f32(grad), f32(m), f32(v), param.numel(), args, param_copy ? bits(*param_copy) : nullptr,
                 param_copy ? half_type(param_copy->dtype()) : cpu::Half::bf16);
}

}  // namespace tessera
