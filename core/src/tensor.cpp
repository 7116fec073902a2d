#include "tessera/tensor.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/backend.hpp"
#include "tessera/error.hpp"
#include "tessera/half.hpp"

namespace tessera {


std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: return 4;
    case DType::bf16: case DType::f16: return 2;
    case DType::i64: case DType::f64: return 8;
    case DType::u8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
    case DType::f64: return "f64";
  }
  return "?";
}

std::string Device::str() const {
  return is_cpu() ? "cpu" : fmt::format("{}:{}", backend_of(*this).name(), index);
}

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

std::int64_t shape_numel(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) {
    if (d < 0) throw ShapeError(fmt::format("negative dimension in shape {}", shape_str(s)));
    // Signed overflow would be undefined and could wrap to a small, wrongly allocated size.
    if (__builtin_mul_overflow(n, d, &n))
      throw ShapeError(fmt::format("shape {} has more elements than fit in 64 bits", shape_str(s)));
  }
  return n;
}

Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ = backend_of(device).allocate(bytes, device.index);
}

Storage::~Storage() { backend_of(device_).deallocate(data_, bytes_, device_.index); }

MemoryStats memory_stats(Device device) { return backend_of(device).memory_stats(device.index); }
void reset_peak_memory(Device device) { backend_of(device).reset_peak_memory(device.index); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = shape;
  t.numel_ = shape_numel(shape);
  t.dtype_ = dtype;
  std::size_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<std::size_t>(t.numel_), dtype_size(dtype), &bytes))
    throw ShapeError(fmt::format("shape {} is too large: its size in bytes overflows", shape_str(shape)));
  t.storage_ = std::make_shared<Storage>(bytes, device);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, DType::f32, device);
  t.fill_(value);
  return t;
}

void Tensor::check_host() const {
  if (!device().is_cpu())
    throw Error(fmt::format("host access to tensor {} on {}: only its backend reads device memory; copy it "
                            "with to(Device::cpu()) or use an op", str(), device().str()));
}

void Tensor::check_dtype(DType expected) const {
  if (expected != dtype_)
    throw ShapeError(fmt::format("tensor {} accessed as {}", str(), dtype_name(expected)));
}

Tensor Tensor::reshape(Shape shape) const {
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw ShapeError("reshape: more than one -1 in " + shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0 && known > 0) shape[infer] = numel_ / known;
  if (shape_numel(shape) != numel_)
    throw ShapeError(fmt::format("reshape: cannot view {} as {}", str(), shape_str(shape)));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::rows(std::int64_t begin, std::int64_t end) const {
  if (dim() == 0 || begin < 0 || end < begin || end > shape_[0])
    throw ShapeError(fmt::format("rows [{}, {}) out of range for {}", begin, end, str()));
  Tensor t = *this;
  std::int64_t row = shape_[0] == 0 ? 0 : numel_ / shape_[0];
  t.offset_ += static_cast<std::size_t>(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  t.numel_ = row * (end - begin);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  if (numel_) backend_of(device()).copy(*this, t);
  return t;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor t = empty(shape_, dtype_, target);
  transfer_to(t);
  return t;
}

void Tensor::transfer_to(Tensor& dst) const {
  if (numel_ == 0) return;
  if (dst.device().is_cpu())
    copy_to_host(dst.device_raw());
  else if (device().is_cpu())
    backend_of(dst.device()).copy_from_host(device_raw(), dst);
  else
    backend_of(dst.device()).copy_from_host(to(Device::cpu()).device_raw(), dst);
}

void Tensor::copy_to_host(void* dst) const {
  if (numel_ == 0) return;
  if (device().is_cpu())
    std::memcpy(dst, device_raw(), nbytes());
  else
    backend_of(device()).copy_to_host(*this, dst);
}

void Tensor::zero_() {
  if (numel_) backend_of(device()).fill(*this, 0.0f);
}

void Tensor::fill_(float value) {
  if (!is_float_dtype(dtype_))
    throw ShapeError(fmt::format("fill_({}) needs a float tensor (f32, bf16, f16), got {}", value, str()));
  if (numel_) backend_of(device()).fill(*this, value);
}

double Tensor::item(std::int64_t i) const {
  if (i < 0 || i >= numel_) throw ShapeError(fmt::format("item({}) out of range for {}", i, str()));
  if (!device().is_cpu()) return reshape({numel_}).rows(i, i + 1).to(Device::cpu()).item(0);
  switch (dtype_) {
    case DType::f32: return static_cast<const float*>(raw())[i];
    case DType::i32: return static_cast<const std::int32_t*>(raw())[i];
    case DType::i64: return static_cast<double>(static_cast<const std::int64_t*>(raw())[i]);
    case DType::u8: return static_cast<const std::uint8_t*>(raw())[i];
    case DType::f64: return static_cast<const double*>(raw())[i];
    case DType::bf16: return bf16_to_float(static_cast<const std::uint16_t*>(raw())[i]);
    case DType::f16: return f16_to_float(static_cast<const std::uint16_t*>(raw())[i]);
    default: throw ShapeError(fmt::format("item() not supported for {}", dtype_name(dtype_)));
  }
}

std::string Tensor::str() const { return fmt::format("{}{}", dtype_name(dtype_), shape_str(shape_)); }

}  // namespace tessera
