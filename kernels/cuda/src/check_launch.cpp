#include <string>

#include "tessera/error.hpp"
#include "tessera/kernels/cuda/float_type.hpp"

namespace tessera::cuda {

void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw Error(std::string(what) + ": CUDA error " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

void allow_dynamic_shared_memory(const void* kernel, std::size_t bytes, std::int64_t D, const char* what) {
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)) == cudaSuccess)
    return;
  cudaGetLastError();  // the failed attribute call is reported here, not at the next launch
  int device = 0, most = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&most, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  throw Error(std::string(what) + ": its tiles for heads of D = " + std::to_string(D) + " channels need " +
              std::to_string(bytes / 1024) + " KiB of shared memory per block, this GPU allows " +
              std::to_string(most / 1024) + " KiB (a smaller head: model.kv_channels, or hidden_size / "
              "num_attention_heads)");
}

}  // namespace tessera::cuda
