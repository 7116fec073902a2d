#include "nccl_support.hpp"

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera::nccl {

ncclDataType_t data_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::bf16: return ncclBfloat16;
    case DType::f16: return ncclFloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8: return ncclUint8;
    case DType::f64: return ncclFloat64;
  }
  throw Error(fmt::format("NCCL: no element type for dtype {}", static_cast<int>(t)));
}

ncclRedOp_t reduce_op(ReduceOp op) { return op == ReduceOp::sum ? ncclSum : ncclMax; }

std::string error_text(ncclResult_t r, const std::string& what, const std::string& where, ncclComm_t comm) {
  std::string text = fmt::format("{} on {}: NCCL: {}", what, where, ncclGetErrorString(r));
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && *last != '\0') text += fmt::format(": {}", last);
  return text;
}

void check(ncclResult_t r, const std::string& what, const std::string& where, ncclComm_t comm) {
  if (r != ncclSuccess) throw CommError(error_text(r, what, where, comm));
}

void check_cuda(cudaError_t e, const std::string& what, const std::string& where) {
  if (e != cudaSuccess) throw CommError(fmt::format("{} on {}: CUDA: {}", what, where, cudaGetErrorString(e)));
}

Event::Event() { check_cuda(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), "event creation", "NCCL"); }

Event::~Event() {
  if (event_ != nullptr) cudaEventDestroy(event_);
}

}  // namespace tessera::nccl
