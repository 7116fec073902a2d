#include <string>

#include "tessera/error.hpp"
#include "tessera/kernels/cuda/float_type.hpp"

namespace tessera::cuda {

void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw Error(std::string(what) + ": CUDA error " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

}  // namespace tessera::cuda
