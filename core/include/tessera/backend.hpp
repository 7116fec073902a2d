// Backend: everything that touches one kind of device's memory — allocation, copies to and from the
// host, synchronisation, memory counters and one entry per op of ops.hpp.
//
// core/src/ops checks shapes and dtypes, then calls the backend of the tensors' device (all the
// tensors of one call must be on one device). The CPU backend (kernels/cpu/backend) is built into
// libtessera_core and is always backend 0; other backends are plugins of kind "backend", loaded by
// name (`[training] device = "sim"`) and registered once per process. Only a backend reads device
// memory: Tensor::data() throws for any tensor not on the CPU, and code that needs values on the
// host copies them with Tensor::to(Device::cpu()), which the backend counts.
//
// A backend entry receives tensors whose shapes, dtypes and devices were already checked; it may
// still refuse data it cannot check cheaply elsewhere (ids out of range) with a ShapeError.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "tessera/ops.hpp"
#include "tessera/tensor.hpp"

namespace tessera {

class ConfigSection;

// Host↔device traffic a backend has carried since it was loaded (the CPU's is always zero).
struct TransferStats {
  std::int64_t to_device = 0, to_host = 0, synchronizations = 0;
};

class Backend {
 public:
  using FactorySignature = std::unique_ptr<Backend>();
  virtual ~Backend() = default;

  virtual std::string name() const = 0;
  // Whether ops of this name run here on tensors of this dtype (the parity harness asks).
  virtual bool supports(std::string_view op, DType dtype) const = 0;
  // Whether a communicator may hand this device's pointers to MPI directly (as a CUDA-aware MPI
  // would). Otherwise the collectives of its tensors need the backend's own communicator (NCCL).
  virtual bool mpi_addressable() const = 0;
  // Devices of this kind on this machine (0: the backend loads but cannot run here).
  virtual int device_count() const = 0;
  // Why device_count() is 0 (e.g. the CUDA error text "no CUDA-capable driver"), for the log line of
  // `device = "auto"` and the error of a backend asked for by name. Empty when it has devices.
  virtual std::string unavailable_reason() const { return ""; }
  // TF32 matmuls (`precision = "tf32"`): whether f32 matmuls may run on TF32 tensor cores here, and
  // the switch the trainer sets for the run (off: exact f32 products).
  virtual bool supports_tf32() const { return false; }
  virtual void set_tf32(bool on) {}
  // Whether attention_forward/backward draw dropout on the probabilities (AttentionShape::dropout);
  // the trainer refuses model.attention_dropout > 0 before any work where they do not.
  virtual bool supports_attention_dropout() const { return true; }
  // Whether attention takes AttentionMask::first_key (GPT's documents under
  // data.reset_attention_mask); the trainer refuses that setting before any work where it does not.
  virtual bool supports_attention_first_key() const { return true; }
  // Whether attention takes AttentionShape::window_left (model.window_size), and AttentionMask::sink
  // (model.softmax_type); checked the same way.
  virtual bool supports_attention_window() const { return true; }
  virtual bool supports_attention_sink() const { return true; }
  // Whether attention takes AttentionMask::query_position (context parallelism,
  // parallel.context_parallel_size > 1); checked the same way.
  virtual bool supports_attention_query_position() const { return true; }
  // How many elements a fused op's temporary buffer should hold (the LM head's chunk of logits):
  // on the CPU 8M floats keep the chunk's GEMMs fast and the memory peak low; a GPU wants larger
  // GEMMs (few launches, full tensor cores) and has the memory.
  virtual std::int64_t chunk_elements_hint() const { return std::int64_t{8} << 20; }
  // The communicator plugin (kind `communicator`) that moves this device's tensors between ranks
  // when MPI cannot read them ("nccl" for CUDA); empty: collectives go through MPI (staged through
  // host memory when !mpi_addressable()).
  virtual std::string communicator_plugin() const { return ""; }
  // The queue device `index`'s work is ordered on (a cudaStream_t for CUDA; nullptr on the CPU), so
  // a communicator plugin can order its transfers against compute without core knowing the type.
  virtual void* native_stream(int index) { return nullptr; }
  // How much `device = "auto"` should prefer this backend when it has a device (0: never, as the
  // sim device; an accelerator answers > 0). The CPU is the fallback.
  virtual int auto_priority() const = 0;

  // ---- memory -----------------------------------------------------------------------------
  virtual void* allocate(std::size_t bytes, int index) = 0;
  virtual void deallocate(void* p, std::size_t bytes, int index) noexcept = 0;
  virtual MemoryStats memory_stats(int index) const = 0;
  virtual void reset_peak_memory(int index) = 0;
  // dst (on this backend) ← host bytes; host bytes ← src (on this backend). Both nbytes() long.
  virtual void copy_from_host(const void* src, Tensor& dst) = 0;
  virtual void copy_to_host(const Tensor& src, void* dst) = 0;
  virtual void synchronize(int index) = 0;
  virtual TransferStats transfer_stats() const = 0;

  // ---- ops (the contracts are ops.hpp's; arguments already checked) ------------------------
  virtual void fill(Tensor& t, float value) = 0;  // a float dtype (or any dtype when value is 0)
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  virtual void cast(const Tensor& src, Tensor& dst) = 0;
  virtual void copy_2d(const Tensor& src, std::int64_t src_offset, std::int64_t src_stride, Tensor& dst,
                       std::int64_t dst_offset, std::int64_t dst_stride, std::int64_t rows,
                       std::int64_t cols) = 0;
  virtual void arange_mod(Tensor& out, std::int64_t start, std::int64_t period) = 0;
  virtual void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& out, float alpha,
                      float beta) = 0;
  virtual void linear_forward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) = 0;
  virtual void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw,
                               Tensor* db) = 0;
  virtual void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y,
                                  Tensor& mean, Tensor& rstd) = 0;
  virtual void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean,
                                   const Tensor& rstd, Tensor& dx, Tensor& dw, Tensor& db) = 0;
  virtual void gelu_forward(const Tensor& x, Tensor& y, ops::GeluForm form) = 0;
  virtual void gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, ops::GeluForm form) = 0;
  virtual void squared_relu_forward(const Tensor& x, Tensor& y) = 0;
  virtual void squared_relu_backward(const Tensor& dy, const Tensor& x, Tensor& dx) = 0;
  virtual void tanh_forward(const Tensor& x, Tensor& y) = 0;
  virtual void tanh_backward(const Tensor& dy, const Tensor& y, Tensor& dx) = 0;
  virtual void sigmoid_forward(const Tensor& x, Tensor& y) = 0;
  virtual void sigmoid_backward(const Tensor& dy, const Tensor& y, Tensor& dx) = 0;
  virtual void rms_norm_forward(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) = 0;
  virtual void rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx,
                                 Tensor& dw) = 0;
  virtual void swiglu_forward(const Tensor& x, Tensor& y, const GatedLinearUnit& g) = 0;
  virtual void swiglu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const GatedLinearUnit& g) = 0;
  // rope_forward (inverse = false) and rope_backward (inverse = true), in place.
  virtual void rope(const ops::RopeShape& s, Tensor& x, bool inverse) = 0;
  virtual void dropout(const Tensor& x, float p, std::uint64_t seed, Tensor& y, std::int64_t offset) = 0;
  // What attention saves for backward besides its inputs and output (here the log-sum-exp per
  // query row) is the backend's choice of algorithm; the contract is ops.hpp's.
  virtual void attention_forward(const ops::AttentionShape& s, const Tensor& q, const Tensor& kv,
                                 const ops::AttentionMask& mask, Tensor& out, Tensor& lse) = 0;
  virtual void attention_backward(const ops::AttentionShape& s, const Tensor& dout, const Tensor& q, const Tensor& kv,
                                  const ops::AttentionMask& mask, const Tensor& out, const Tensor& lse, Tensor& dq,
                                  Tensor& dkv) = 0;
  virtual void attention_sink_backward(const ops::AttentionShape& s, const Tensor& dout, const Tensor& out,
                                       const Tensor& lse, const Tensor& sink, Tensor& dsink) = 0;
  virtual void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out, bool accumulate) = 0;
  virtual void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable) = 0;
  virtual void embedding_shard_forward(const Tensor& ids, const Tensor& table, std::int64_t first_id,
                                       Tensor& out) = 0;
  virtual void embedding_shard_backward(const Tensor& ids, const Tensor& dout, std::int64_t first_id,
                                        Tensor& dtable) = 0;
  virtual void softmax_cross_entropy(Tensor& logits, const Tensor& targets, const Tensor& mask, Tensor& losses,
                                     bool compute_grad, float grad_scale) = 0;
  virtual void cross_entropy_shard_stats(Tensor& logits, const Tensor& targets, std::int64_t first_id,
                                         Tensor& row_max, Tensor& sum_exp, Tensor& target_logit,
                                         bool keep_exp) = 0;
  virtual void cross_entropy_shard_grad(Tensor& exp_logits, const Tensor& targets, std::int64_t first_id,
                                        const Tensor& mask, const Tensor& row_max, const Tensor& global_max,
                                        const Tensor& global_sum, float grad_scale) = 0;
  virtual void cross_entropy_shard_rescale(const Tensor& row_max, const Tensor& sum_exp, const Tensor& global_max,
                                           Tensor& sum_at_global) = 0;
  virtual void cross_entropy_shard_loss(const Tensor& global_max, const Tensor& global_sum,
                                        const Tensor& target_logit, Tensor& losses) = 0;
  virtual void softmax(const Tensor& x, Tensor& out) = 0;
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  virtual void axpy(float alpha, const Tensor& x, Tensor& y) = 0;
  virtual void add_bias(Tensor& y, const Tensor& bias) = 0;
  virtual void scale(Tensor& x, float s) = 0;
  virtual void scale_rows(const Tensor& x, const Tensor& w, Tensor& out) = 0;
  virtual void row_dot(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  virtual void sum(const Tensor& x, Tensor& out, bool accumulate) = 0;
  virtual void sum_squares(const Tensor& x, Tensor& out, bool accumulate) = 0;
  virtual void masked_sum(const Tensor& values, const Tensor& mask, Tensor& out, bool accumulate) = 0;
  virtual void count_zeros(const Tensor& x, Tensor& out, bool accumulate) = 0;
  virtual void adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const ops::AdamParams& p,
                         Tensor* param_copy) = 0;
};

// What ops.hpp's dtype rules allow an op, whatever the backend: copies move any dtype, ids are i32,
// the losses, softmax, masked_sum, count_zeros and Adam compute in f32 only, every other op in f32,
// bf16 and f16.
// A backend's supports() starts from this and narrows it to what it has kernels for.
bool dtype_allowed(std::string_view op, DType dtype);

// ---- the registry -------------------------------------------------------------------------------

// The backend of a device (the CPU's for Device::cpu()).
Backend& backend_of(Device device);
// Device 0 of the backend named `name`: "cpu", or a backend plugin loaded on first use (a
// PluginError lists the backends found when there is none of that name).
Device device_named(const std::string& name);
// What `[training] device` means: "cpu", a backend name, or "auto" (the first of the preferred
// accelerator backends that loads and reports a device here, else the CPU).
Device resolve_device(const std::string& setting);

}  // namespace tessera
