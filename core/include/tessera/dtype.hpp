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

struct Device {
  enum class Kind : std::uint8_t { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;
  static Device cpu() { return {}; }
  static Device cuda(int i) { return {Kind::cuda, i}; }
  bool is_cpu() const { return kind == Kind::cpu; }
  bool operator==(const Device&) const = default;
  std::string str() const;
};

}  // namespace tessera
