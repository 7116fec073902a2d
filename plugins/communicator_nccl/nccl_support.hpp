// What the NCCL communicator needs from NCCL and the CUDA runtime, in Tessera's terms: element
// types, reductions, and errors turned into CommError messages naming the op and the group.
#pragma once
#include <string>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "tessera/dtype.hpp"
#include "tessera/parallel/communicator.hpp"

namespace tessera::nccl {

// Every Tessera dtype has an NCCL type of the same width and meaning.
ncclDataType_t data_type(DType t);
ncclRedOp_t reduce_op(ReduceOp op);

// "<what> on <where>: <NCCL's error string>[: <its last error message>]".
std::string error_text(ncclResult_t r, const std::string& what, const std::string& where, ncclComm_t comm);
// Throws CommError with error_text unless r is ncclSuccess (ncclInProgress is settled by the caller).
void check(ncclResult_t r, const std::string& what, const std::string& where, ncclComm_t comm = nullptr);
void check_cuda(cudaError_t e, const std::string& what, const std::string& where);

// A CUDA event without timing (the cheap kind), destroyed with its owner.
class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace tessera::nccl
