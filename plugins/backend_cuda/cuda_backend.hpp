// The CUDA backend (plugin "cuda", kind "backend"): Tessera's ops on one NVIDIA GPU per process.
//
// - Device: under a launcher each rank takes the GPU of its local rank (device_selection.hpp);
//   Tessera's device index 0 is that GPU. No driver or no GPU: the plugin still loads, reports 0
//   devices and says why (unavailable_reason, the CUDA error text).
// - Memory: stream-ordered allocations (cudaMallocAsync) from the device's default pool with its
//   release threshold at "never", so freed blocks are reused without going back to the driver — a
//   caching allocator; byte counters per device as the CPU's (tensors only; a kernel's workspace
//   is not a tensor and is not counted).
// - One compute stream carries every op, copy and allocation, so ops need no events between them;
//   the host waits only where it reads a value (copy_to_host) or when asked (synchronize).
// - Ops: kernels/cuda (plain pointers); matmuls through cuBLASLt. Each op entry lives in the file
//   of its family: cuda_backend.cpp (memory, copies), ops_linear.cpp, ops_elementwise.cpp,
//   ops_norm_embedding_loss.cpp, ops_attention.cpp.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <cuda_runtime_api.h>

#include "tessera/backend.hpp"
#include "tessera/kernels/cuda/float_type.hpp"

namespace tessera::cuda {

class CublasLt;  // cublaslt_matmul.hpp

// The Float tag of a tensor's dtype (f32, bf16, f16; anything else is a ShapeError naming `op`).
Float float_of(const Tensor& t, const char* op);

// A tensor as the kernels see it: rows × the last dimension (ops.hpp's flattened leading dims).
inline std::int64_t cols_of(const Tensor& t) { return t.dim() == 0 ? 1 : t.size(-1); }
inline std::int64_t rows_of(const Tensor& t) { return cols_of(t) == 0 ? 0 : t.numel() / cols_of(t); }

// Device memory that lives until the end of a scope, allocated and freed in stream order: kernels'
// temporary buffers (partial sums, sorted ids).
class Workspace {
 public:
  Workspace(std::size_t bytes, cudaStream_t stream);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* get() const { return p_; }
  template <class T>
  T* as() const { return static_cast<T*>(p_); }

 private:
  void* p_ = nullptr;
  cudaStream_t stream_;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend();
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  bool supports(std::string_view op, DType dtype) const override;
  bool mpi_addressable() const override { return false; }  // collectives of CUDA tensors go to NCCL
  int device_count() const override { return device_count_; }
  std::string unavailable_reason() const override { return unavailable_; }
  int auto_priority() const override { return 100; }
  bool supports_tf32() const override { return true; }
  bool supports_attention_dropout() const override { return false; }   // ops_attention.cpp
  bool supports_attention_first_key() const override { return false; }  // ops_attention.cpp
  bool supports_attention_window() const override { return false; }     // ops_attention.cpp
  bool supports_attention_sink() const override { return false; }       // ops_attention.cpp
  bool supports_attention_query_position() const override { return false; }  // ops_attention.cpp
  // 128M floats: the GPT-2 head's logits in 7 chunks of 2668 rows at B·T = 16384 (0.5 GB of f32).
  std::int64_t chunk_elements_hint() const override { return std::int64_t{128} << 20; }
  void set_tf32(bool on) override;
  std::string communicator_plugin() const override { return "nccl"; }
  void* native_stream(int index) override;

  void* allocate(std::size_t bytes, int index) override;
  void deallocate(void* p, std::size_t bytes, int index) noexcept override;
  MemoryStats memory_stats(int index) const override;
  void reset_peak_memory(int index) override;
  void copy_from_host(const void* src, Tensor& dst) override;
  void copy_to_host(const Tensor& src, void* dst) override;
  void synchronize(int index) override;
  TransferStats transfer_stats() const override;

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
  void cross_entropy_shard_grad(Tensor& exp_logits, const Tensor& targets, std::int64_t first_id,
                                const Tensor& mask, const Tensor& row_max, const Tensor& global_max,
                                const Tensor& global_sum, float grad_scale) override;
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

  // The compute stream (made on first use, on the selected GPU).
  cudaStream_t stream();

 private:
  void require_device(int index, const char* what) const;
  CublasLt& blas();

  int device_count_ = 0;
  int physical_device_ = 0;  // the GPU this process uses (its local rank's)
  std::string unavailable_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<CublasLt> blas_;
  std::atomic<std::int64_t> current_{0}, peak_{0};
  std::atomic<std::int64_t> to_device_{0}, to_host_{0}, synchronizations_{0};
};

}  // namespace tessera::cuda
