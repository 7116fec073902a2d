// [training] precision: what the model computes in (docs/mixed-precision.md). "fp32" (the default)
// trains in f32 throughout; "bf16" and "fp16" are Megatron-LM's mixed precision — f32 master
// weights, gradients and optimizer state, a bf16/f16 copy of every weight (Parameter::compute) that
// forward and backward read, activations in that dtype, norms' statistics, softmax and the loss in
// f32. Megatron's flags are accepted too: `bf16 = true` / `fp16 = true`. "tf32" keeps every tensor in
// f32 and lets f32 matmuls run on TF32 tensor cores (10-bit mantissa products, f32 accumulation), as
// PyTorch's allow_tf32: a GPU setting, refused on backends without it.
#pragma once
#include <string>

#include "tessera/dtype.hpp"

namespace tessera {

class Config;

struct PrecisionOptions {
  DType compute = DType::f32;
  bool tf32 = false;   // "tf32": compute f32, matmuls on TF32 tensor cores
  std::string origin;  // where it was set, for later messages
};

// ConfigError for an unknown value, both bf16 and fp16 set, or a flag contradicting precision.
PrecisionOptions read_precision(const Config& config);
// Mixed precision on `device`: its backend must run every op a model computes in the compute dtype
// (Backend::supports), else a ConfigError naming the setting, the backend and the ops it lacks.
void check_precision_supported(const PrecisionOptions& p, Device device);
// check_precision_supported, then the device's run-wide setting (TF32 matmuls on or off): what the
// trainer and the bench call before any work.
void use_precision(const PrecisionOptions& p, Device device);
std::string precision_name(DType compute);  // "fp32", "bf16", "fp16"
std::string precision_name(const PrecisionOptions& p);  // the same, or "tf32"

}  // namespace tessera
