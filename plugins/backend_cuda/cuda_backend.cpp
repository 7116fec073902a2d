// CudaBackend: the device, its memory and copies (ops live in the ops_*.cpp files of this folder).
#include "cuda_backend.hpp"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>

#include <fmt/format.h>

#include "cublaslt_matmul.hpp"
#include "device_selection.hpp"
#include "tessera/error.hpp"
#include "tessera/kernels/cuda/elementwise.hpp"
#include "tessera/logging.hpp"
#include "tessera/plugin.hpp"

namespace tessera::cuda {

namespace {

std::string cuda_error_text(cudaError_t e) { return fmt::format("{}: {}", cudaGetErrorName(e), cudaGetErrorString(e)); }

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(fmt::format("CUDA {}: {}", what, cuda_error_text(e)));
}

}  // namespace

Float float_of(const Tensor& t, const char* op) {
  switch (t.dtype()) {
    case DType::f32: return Float::f32;
    case DType::bf16: return Float::bf16;
    case DType::f16: return Float::f16;
    default: throw ShapeError(fmt::format("{}: the CUDA backend has no float kernel for dtype {}", op, dtype_name(t.dtype())));
  }
}

Workspace::Workspace(std::size_t bytes, cudaStream_t stream) : stream_(stream) {
  if (bytes == 0) return;
  check(cudaMallocAsync(&p_, bytes, stream), "workspace allocation");
}

Workspace::~Workspace() {
  if (p_) cudaFreeAsync(p_, stream_);
}

CudaBackend::CudaBackend() {
  // cudaGetDeviceCount creates no context, so loading the plugin costs nothing on a GPU machine
  // and fails softly without a driver.
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error of a failed query
    unavailable_ = cuda_error_text(e);
    return;
  }
  if (count == 0) {
    unavailable_ = "the CUDA runtime sees no GPU";
    return;
  }
  device_count_ = 1;  // this process uses one GPU: its local rank's
  const LocalRank lr = local_rank([](const char* n) { return std::getenv(n); });
  physical_device_ = device_for_local_rank(lr.rank, count);
}

CudaBackend::~CudaBackend() = default;  // never destroyed in practice: backends live as long as the process

cudaStream_t CudaBackend::stream() {
  // The device is per host thread in CUDA: set it on every thread that runs an op.
  thread_local int set_for = -1;
  if (set_for != physical_device_) {
    check(cudaSetDevice(physical_device_), "set device");
    set_for = physical_device_;
  }
  static std::once_flag once;
  std::call_once(once, [this] {
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream creation");
    // Keep freed blocks in the pool (never give them back to the driver): a caching allocator.
    cudaMemPool_t pool;
    check(cudaDeviceGetDefaultMemPool(&pool, physical_device_), "memory pool");
    std::uint64_t keep = std::numeric_limits<std::uint64_t>::max();
    check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "memory pool threshold");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, physical_device_), "device properties");
    log_info("CUDA device {}: {} (sm_{}{}, {} SMs, {:.1f} GiB)", physical_device_, prop.name, prop.major, prop.minor,
             prop.multiProcessorCount, static_cast<double>(prop.totalGlobalMem) / (1u << 30));
  });
  return stream_;
}

void* CudaBackend::native_stream(int index) {
  require_device(index, "native_stream");
  return stream();
}

CublasLt& CudaBackend::blas() {
  if (!blas_) blas_ = std::make_unique<CublasLt>(stream());
  return *blas_;
}

void CudaBackend::set_tf32(bool on) { blas().set_tf32(on); }

void CudaBackend::require_device(int index, const char* what) const {
  if (device_count_ == 0) throw Error(fmt::format("{} on cuda:{}: no usable GPU ({})", what, index, unavailable_));
  if (index != 0)
    throw Error(fmt::format("{} on cuda:{}: each process uses one GPU, cuda:0 (its local rank's)", what, index));
}

bool CudaBackend::supports(std::string_view op, DType dtype) const {
  // Every op has kernels for every dtype ops.hpp allows it, except the attention sink's gradient.
  return op != "attention_sink_backward" && dtype_allowed(op, dtype);
}

// ---- memory -------------------------------------------------------------------------------------

void* CudaBackend::allocate(std::size_t bytes, int index) {
  require_device(index, "allocation");
  void* p = nullptr;
  const cudaError_t e = cudaMallocAsync(&p, bytes == 0 ? 1 : bytes, stream());
  if (e != cudaSuccess) {
    cudaGetLastError();
    std::size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    throw Error(fmt::format("out of memory allocating {} bytes on cuda:0 ({} bytes of tensors live, {} of {} free on "
                            "the GPU): {}",
                            bytes, current_.load(), free_bytes, total, cuda_error_text(e)));
  }
  const std::int64_t now = current_.fetch_add(static_cast<std::int64_t>(bytes)) + static_cast<std::int64_t>(bytes);
  std::int64_t peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
  return p;
}

void CudaBackend::deallocate(void* p, std::size_t bytes, int) noexcept {
  // Stream-ordered: the block returns to the pool once the work queued before it is done. Errors
  // are ignored (at exit the runtime may already be unloading).
  cudaFreeAsync(p, stream_);
  current_.fetch_sub(static_cast<std::int64_t>(bytes));
}

MemoryStats CudaBackend::memory_stats(int) const { return {current_.load(), peak_.load()}; }
void CudaBackend::reset_peak_memory(int) { peak_.store(current_.load()); }

void CudaBackend::copy_from_host(const void* src, Tensor& dst) {
  // From pageable memory the call returns once src has been staged, so src may go right after.
  ++to_device_;
  check(cudaMemcpyAsync(dst.device_raw(), src, dst.nbytes(), cudaMemcpyHostToDevice, stream()), "copy to the GPU");
}

void CudaBackend::copy_to_host(const Tensor& src, void* dst) {
  ++to_host_;
  ++synchronizations_;
  check(cudaMemcpyAsync(dst, src.device_raw(), src.nbytes(), cudaMemcpyDeviceToHost, stream()), "copy to the host");
  check(cudaStreamSynchronize(stream()), "synchronisation after a copy to the host");
}

void CudaBackend::synchronize(int index) {
  require_device(index, "synchronize");
  ++synchronizations_;
  check(cudaStreamSynchronize(stream()), "synchronize");
}

TransferStats CudaBackend::transfer_stats() const { return {to_device_.load(), to_host_.load(), synchronizations_.load()}; }

// ---- copies -------------------------------------------------------------------------------------

void CudaBackend::fill(Tensor& t, float value) {
  if (value == 0.0f) {
    check(cudaMemsetAsync(t.device_raw(), 0, t.nbytes(), stream()), "fill");
    return;
  }
  cuda::fill(float_of(t, "fill"), t.device_raw(), t.numel(), value, stream());
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  check(cudaMemcpyAsync(dst.device_raw(), src.device_raw(), src.nbytes(), cudaMemcpyDeviceToDevice, stream()), "copy");
}

void CudaBackend::cast(const Tensor& src, Tensor& dst) {
  cuda::cast(float_of(src, "cast"), src.device_raw(), float_of(dst, "cast"), dst.device_raw(), src.numel(), stream());
}

void CudaBackend::copy_2d(const Tensor& src, std::int64_t src_offset, std::int64_t src_stride, Tensor& dst,
                          std::int64_t dst_offset, std::int64_t dst_stride, std::int64_t rows, std::int64_t cols) {
  cuda::copy_2d(src.device_raw(), src_offset, src_stride, dst.device_raw(), dst_offset, dst_stride, rows, cols,
                static_cast<int>(dtype_size(src.dtype())), stream());
}

void CudaBackend::arange_mod(Tensor& out, std::int64_t start, std::int64_t period) {
  cuda::arange_mod(out.device_data<std::int32_t>(), out.numel(), start, period, stream());
}

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace tessera::cuda

TESSERA_PLUGIN(backend, cuda, tessera::cuda::make_cuda_backend)
