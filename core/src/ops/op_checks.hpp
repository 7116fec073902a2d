// Argument checks shared by the op dispatchers: each throws with the op's name and the offending
// tensor's name and shape, so a user can see which call was wrong without a debugger.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string_view>

#include <fmt/format.h>

#include "op_profile.hpp"
#include "tessera/backend.hpp"
#include "tessera/error.hpp"
#include "tessera/tensor.hpp"

namespace tessera::ops::detail {

// Every op requires its tensors to exist and hold the given dtype; backend_for() then checks that
// they share one device.
inline void require(const char* op, std::string_view name, const Tensor& t, DType dtype = DType::f32) {
  if (!t.defined()) throw ShapeError(fmt::format("{}: tensor '{}' is undefined", op, name));
  if (t.dtype() != dtype)
    throw ShapeError(fmt::format("{}: tensor '{}' is {}, expected dtype {}", op, name, t.str(),
                                 dtype_name(dtype)));
}

// A float tensor: f32, bf16 or f16, the dtypes ops compute in (mixed precision: tessera/half.hpp).
inline void require_float(const char* op, std::string_view name, const Tensor& t) {
  if (!t.defined()) throw ShapeError(fmt::format("{}: tensor '{}' is undefined", op, name));
  if (t.dtype() != DType::f32 && t.dtype() != DType::bf16 && t.dtype() != DType::f16)
    throw ShapeError(fmt::format("{}: tensor '{}' is {}, expected a float dtype (f32, bf16 or f16)", op, name, t.str()));
}

// An f32 result of a computation in `like`'s dtype (accumulated weight gradients, statistics), or
// one in that dtype itself.
inline void require_f32_or(const char* op, std::string_view name, const Tensor& t, const Tensor& like) {
  if (!t.defined()) throw ShapeError(fmt::format("{}: tensor '{}' is undefined", op, name));
  if (t.dtype() != DType::f32 && t.dtype() != like.dtype())
    throw ShapeError(fmt::format("{}: tensor '{}' is {}, expected dtype f32 or {}", op, name, t.str(),
                                 dtype_name(like.dtype())));
}

// Size of the last dim (the channel dim of a row-major [rows, cols] view); 0 for a scalar.
inline std::int64_t last_dim(const Tensor& t) { return t.dim() == 0 ? 1 : t.size(-1); }

// Rows of `t` viewed as [rows, last dim]. A zero-sized last dim leaves the rows undetermined (and
// dividing by it would raise SIGFPE), so it is a ShapeError.
inline std::int64_t rows_of(const char* op, std::string_view name, const Tensor& t) {
  const std::int64_t cols = last_dim(t);
  if (cols == 0)
    throw ShapeError(fmt::format("{}: tensor '{}' has shape {}; its last dim must not be 0", op, name,
                                 shape_str(t.shape())));
  return t.numel() / cols;
}

// `t` viewed as [rows, cols]: cols must be the last dim and rows·cols the element count.
inline void require_rows_cols(const char* op, std::string_view name, const Tensor& t,
                              std::int64_t rows, std::int64_t cols) {
  if (t.dim() < 1 || last_dim(t) != cols || t.numel() != rows * cols)
    throw ShapeError(fmt::format("{}: tensor '{}' has shape {}, expected [{}, {}] (leading dims may "
                                 "be flattened)", op, name, shape_str(t.shape()), rows, cols));
}

inline void require_numel(const char* op, std::string_view name, const Tensor& t,
                          std::int64_t numel, std::string_view like) {
  if (t.numel() != numel)
    throw ShapeError(fmt::format("{}: tensor '{}' has shape {} ({} elements), expected {} elements "
                                 "like {}", op, name, shape_str(t.shape()), t.numel(), numel, like));
}

inline void require_shape(const char* op, std::string_view name, const Tensor& t, const Shape& s) {
  if (t.shape() != s)
    throw ShapeError(fmt::format("{}: tensor '{}' has shape {}, expected {}", op, name,
                                 shape_str(t.shape()), shape_str(s)));
}

// The backend of the op's tensors' one device (undefined optional tensors are skipped). Tensors on
// two devices are an error naming the op, both tensors and their devices.
struct NamedTensor {
  const char* name;
  const Tensor* tensor;
};
// With a compute dtype other than f32, the backend must claim it for this op (Backend::supports).
inline Backend& backend_for(const char* op, std::initializer_list<NamedTensor> tensors, DType compute = DType::f32) {
  const NamedTensor* first = nullptr;
  for (const NamedTensor& t : tensors) {
    if (!t.tensor || !t.tensor->defined()) continue;
    if (!first) {
      first = &t;
    } else if (t.tensor->device() != first->tensor->device()) {
      throw Error(fmt::format("{}: tensor '{}' is on {} but tensor '{}' is on {}; an op's tensors must share one "
                              "device (copy with Tensor::to)", op, t.name, t.tensor->device().str(), first->name,
                              first->tensor->device().str()));
    }
  }
  const Device device = first ? first->tensor->device() : Device::cpu();
  Backend& backend = backend_of(device);
  if (compute != DType::f32 && !backend.supports(op, compute))
    throw ShapeError(fmt::format("{}: the {} backend does not run this op in {}", op, backend.name(), dtype_name(compute)));
  if (op_profile_enabled()) op_profile_mark(op, compute, device);
  return backend;
}

}  // namespace tessera::ops::detail
