#include "tessera/train/precision.hpp"

#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/backend.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"

namespace tessera {

std::string precision_name(DType compute) {
  return compute == DType::bf16 ? "bf16" : compute == DType::f16 ? "fp16" : "fp32";
}

std::string precision_name(const PrecisionOptions& p) { return p.tf32 ? "tf32" : precision_name(p.compute); }

PrecisionOptions read_precision(const Config& config) {
  ConfigSection t = config.section("training");
  PrecisionOptions p;
  const std::string choice = t.get_choice("precision", "fp32", {"fp32", "tf32", "bf16", "fp16"});
  const bool bf16 = t.get_bool("bf16", false), fp16 = t.get_bool("fp16", false);
  if (bf16 && fp16)
    throw ConfigError(fmt::format("training.bf16 and training.fp16 are both true in {}: choose one precision",
                                  t.origin("bf16")));
  const std::string flag = bf16 ? "bf16" : fp16 ? "fp16" : "";
  if (!flag.empty() && t.has("precision") && choice != flag)
    throw ConfigError(fmt::format("training.{} = true in {} contradicts training.precision = \"{}\" in {}", flag,
                                  t.origin(flag), choice, t.origin("precision")));
  const std::string name = flag.empty() ? choice : flag;
  p.compute = name == "bf16" ? DType::bf16 : name == "fp16" ? DType::f16 : DType::f32;
  p.tf32 = name == "tf32";
  p.origin = !flag.empty() ? t.origin(flag) : t.has("precision") ? t.origin("precision") : "the default";
  return p;
}

void check_precision_supported(const PrecisionOptions& p, Device device) {
  if (p.tf32 && !backend_of(device).supports_tf32())
    throw ConfigError(fmt::format("training.precision = \"tf32\" (set in {}): the {} backend has no TF32 matmuls "
                                  "(a GPU setting; use \"fp32\" here)",
                                  p.origin, backend_of(device).name()));
  if (p.compute == DType::f32) return;
  // The ops a transformer runs in its compute dtype (ops.hpp's dtype rules; the losses, Adam and
  // masked_sum stay f32).
  static const char* const kOps[] = {
      "matmul", "linear_forward", "linear_backward", "layer_norm_forward", "layer_norm_backward", "gelu_forward",
      "gelu_backward", "squared_relu_forward", "squared_relu_backward", "tanh_forward", "tanh_backward", "rms_norm_forward", "rms_norm_backward", "swiglu_forward",
      "swiglu_backward", "rope_forward", "rope_backward", "dropout_forward", "dropout_backward", "attention_forward",
      "attention_backward", "embedding_forward", "embedding_backward", "embedding_shard_forward",
      "embedding_shard_backward", "add", "axpy", "add_bias", "scale", "scale_rows", "row_dot", "cast", "sum_squares"};
  const Backend& backend = backend_of(device);
  std::vector<std::string> missing;
  for (const char* op : kOps)
    if (!backend.supports(op, p.compute)) missing.emplace_back(op);
  if (!missing.empty())
    throw ConfigError(fmt::format("training.precision = \"{}\" (set in {}): the {} backend cannot run {} in {}",
                                  precision_name(p.compute), p.origin, backend.name(), fmt::join(missing, ", "),
                                  dtype_name(p.compute)));
}

void use_precision(const PrecisionOptions& p, Device device) {
  check_precision_supported(p, device);
  Backend& backend = backend_of(device);
  if (backend.supports_tf32()) backend.set_tf32(p.tf32);
}

}  // namespace tessera
