// The CPU backend: host memory (64-byte aligned, counted) and every op on kernels/cpu. It is
// backend 0, built into libtessera_core. Other host-memory backends (the sim device) derive from it
// and change only memory and transfers.
#pragma once
#include <atomic>
#include <cstdint>

#include "tessera/backend.hpp"

namespace tessera {

class CpuBackend : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  bool supports(std::string_view op, DType dtype) const override;
  bool mpi_addressable() const override { return true; }
  int device_count() const override { return 1; }
  int auto_priority() const override { return 0; }

  void* allocate(std::size_t bytes, int index) override;
  void deallocate(void* p, std::size_t bytes, int index) noexcept override;
  MemoryStats memory_stats(int index) const override;
  void reset_peak_memory(int index) override;
  void copy_from_host(const void* src, Tensor& dst) override;
  void copy_to_host(const Tensor& src, void* dst) override;
  void synchronize(int) override {}
  TransferStats transfer_stats() const override { return {}; }

  void fill(Tensor& t, float value) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void cast(const Tensor& src, Tensor& dst) override;
  void copy_2d(const Tensor& src, std::int64_t src_offset, std::int64_t src_stride, Tensor& dst,
               std::int64_t dst_offset, std::int64_t dst_stride, std::int64_t rows, std::int64_t cols) override;
  void arange_mod(Tensor& out, std::int64_t start, std::int64_t period) override;
  void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& out, float alpha,
              float beta) override;
  void linear_forward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw,
                       Tensor* db) override;
  void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y, Tensor& mean,
                          Tensor& rstd) override;
  void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean,
                           const Tensor& rstd, Tensor& dx, Tensor& dw, Tensor& db) override;
  void gelu_forward(const Tensor& x, Tensor& y, ops::GeluForm form) override;
  void gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, ops::GeluForm form) override;
  void squared_relu_forward(const Tensor& x, Tensor& y) override;
  void squared_relu_backward(const Tensor& dy, const Tensor& x, Tensor& dx) override;
  void tanh_forward(const Tensor& x, Tensor& y) override;
  void tanh_backward(const Tensor& dy, const Tensor& y, Tensor& dx) override;
  void sigmoid_forward(const Tensor& x, Tensor& y) override;
  void sigmoid_backward(const Tensor& dy, const Tensor& y, Tensor& dx) override;
  void rms_norm_forward(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) override;
  void rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx,
                         Tensor& dw) override;
  void swiglu_forward(const Tensor& x, Tensor& y, const GatedLinearUnit& g) override;
  void swiglu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const GatedLinearUnit& g) override;
  void rope(const ops::RopeShape& s, Tensor& x, bool inverse) override;
  void dropout(const Tensor& x, float p, std::uint64_t seed, Tensor& y, std::int64_t offset) override;
  void attention_forward(const ops::AttentionShape& s, const Tensor& q, const Tensor& kv, const ops::AttentionMask& mask,
                         Tensor& out, Tensor& lse) override;
  void attention_backward(const ops::AttentionShape& s, const Tensor& dout, const Tensor& q, const Tensor& kv,
                          const ops::AttentionMask& mask, const Tensor& out, const Tensor& lse, Tensor& dq,
                          Tensor& dkv) override;
  void attention_sink_backward(const ops::AttentionShape& s, const Tensor& dout, const Tensor& out, const Tensor& lse,
                               const Tensor& sink, Tensor& dsink) override;
  void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out, bool accumulate) override;
  void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable) override;
  void embedding_shard_forward(const Tensor& ids, const Tensor& table, std::int64_t first_id, Tensor& out) override;
  void embedding_shard_backward(const Tensor& ids, const Tensor& dout, std::int64_t first_id,
                                Tensor& dtable) override;
  void softmax_cross_entropy(Tensor& logits, const Tensor& targets, const Tensor& mask, Tensor& losses,
                             bool compute_grad, float grad_scale) override;
  void cross_entropy_shard_stats(Tensor& logits, const Tensor& targets, std::int64_t first_id, Tensor& row_max,
                                 Tensor& sum_exp, Tensor& target_logit, bool keep_exp) override;
  void cross_entropy_shard_grad(Tensor& exp_logits, const Tensor& targets, std::int64_t first_id, const Tensor& mask,
                                const Tensor& row_max, const Tensor& global_max, const Tensor& global_sum,
                                float grad_scale) override;
  void cross_entropy_shard_rescale(const Tensor& row_max, const Tensor& sum_exp, const Tensor& global_max,
                                   Tensor& sum_at_global) override;
  void cross_entropy_shard_loss(const Tensor& global_max, const Tensor& global_sum, const Tensor& target_logit,
                                Tensor& losses) override;
  void softmax(const Tensor& x, Tensor& out) override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void axpy(float alpha, const Tensor& x, Tensor& y) override;
  void add_bias(Tensor& y, const Tensor& bias) override;
  void scale(Tensor& x, float s) override;
  void scale_rows(const Tensor& x, const Tensor& w, Tensor& out) override;
  void row_dot(const Tensor& a, const Tensor& b, Tensor& out) override;
  void sum(const Tensor& x, Tensor& out, bool accumulate) override;
  void sum_squares(const Tensor& x, Tensor& out, bool accumulate) override;
  void count_zeros(const Tensor& x, Tensor& out, bool accumulate) override;
  void masked_sum(const Tensor& values, const Tensor& mask, Tensor& out, bool accumulate) override;
  void adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const ops::AdamParams& p,
                 Tensor* param_copy) override;

 protected:
  // 64-byte aligned host memory, counted in `counters`.
  struct Counters {
    std::atomic<std::int64_t> current{0}, peak{0};
  };
  static void* allocate_host(std::size_t bytes, Counters& counters, const char* where);
  static void free_host(void* p, std::size_t bytes, Counters& counters) noexcept;
  static MemoryStats stats_of(const Counters& counters);

 private:
  Counters counters_;
};

}  // namespace tessera
