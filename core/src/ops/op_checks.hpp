// Argument checks shared by the op dispatchers: each throws with the op's name and the offending
// tensor's name and shape, so a user can see which call was wrong without a debugger.
#pragma once
#include <cstdint>
#include <string_view>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/tensor.hpp"

namespace tessera::ops::detail {

// Every op requires its tensors to exist, live on the CPU (the only backend built so far) and hold
// the given dtype.
inline void require(const char* op, std::string_view name, const Tensor& t, DType dtype = DType::f32) {
  if (!t.defined()) throw ShapeError(fmt::format("{}: tensor '{}' is undefined", op, name));
  if (!t.device().is_cpu())
    throw Error(fmt::format(
        "{}: tensor '{}' is on {}, but the CUDA backend is not available in this build "
        "(only the CPU kernels are); move the tensors to the CPU",
        op, name, t.device().str()));
  if (t.dtype() != dtype)
    throw ShapeError(fmt::format("{}: tensor '{}' is {}, expected dtype {}", op, name, t.str(),
                                 dtype_name(dtype)));
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

// Ids (token ids, targets) must index rows of a [rows, ...] table.
inline void require_ids_in_range(const char* op, std::string_view name, const Tensor& ids,
                                 std::int64_t rows) {
  const std::int32_t* p = ids.data<std::int32_t>();
  for (std::int64_t i = 0; i < ids.numel(); ++i)
    if (p[i] < 0 || p[i] >= rows)
      throw ShapeError(fmt::format("{}: {}[{}] = {} is out of range [0, {})", op, name, i, p[i], rows));
}

}  // namespace tessera::ops::detail
