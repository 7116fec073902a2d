// Element types and devices a Tensor can hold.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace tessera {

// f64 is for scalars that are summed across ranks (loss, squared grad norm), not for model tensors.
enum class DType : std::uint8_t { f32, bf16, f16, i32, i64, u8, f64 };

std::size_t dtype_size(DType t);
const char* dtype_name(DType t);

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<std::int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<std::int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<std::uint8_t>() { return DType::u8; }

// Where a tensor's memory lives: a backend (0 is the CPU, always registered; others are
// registered when their plugin is loaded, see backend.hpp) and a device index within it.
struct Device {
  std::uint8_t backend = 0;
  int index = 0;
  static Device cpu() { return {}; }
  // Host memory that any code may read; every other device is reached only through its backend.
  bool is_cpu() const { return backend == 0; }
  bool operator==(const Device&) const = default;
  std::string str() const;  // "cpu", "sim:0", "cuda:1"
};

}  // namespace tessera
