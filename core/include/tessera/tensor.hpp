// Tensor: a contiguous, row-major block of one dtype on one device, with shared storage.
//
// There is no autograd and there are no strides: modules call ops with explicit forward and
// backward (DESIGN.md §2). Views (reshape, rows) share the storage of their source. Memory is
// counted per device so that tests and benchmarks can assert on bytes held, not on times.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tessera/dtype.hpp"
#include "tessera/error.hpp"

namespace tessera {

using Shape = std::vector<std::int64_t>;
std::string shape_str(const Shape& s);
std::int64_t shape_numel(const Shape& s);

// Raw allocation on a device. The CPU one is 64-byte aligned and counted in memory_stats().
class Storage {
 public:
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_;
};

// Bytes currently held by tensors on the CPU, and the high-water mark since the last reset.
struct MemoryStats {
  std::int64_t current_bytes = 0;
  std::int64_t peak_bytes = 0;
};
MemoryStats memory_stats();
void reset_peak_memory();

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value);
  // Copies host values into a new CPU tensor.
  template <typename T>
  static Tensor from(const Shape& shape, const std::vector<T>& values);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape_.size()); }
  std::int64_t size(std::int64_t d) const { return shape_.at(d < 0 ? d + dim() : d); }
  std::int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * dtype_size(dtype_); }

  void* raw() const { return static_cast<char*>(storage_->data()) + offset_; }
  template <typename T>
  T* data() const {
    check_dtype(dtype_of<T>());
    return static_cast<T*>(raw());
  }

  // Same storage, new shape with the same number of elements (one -1 allowed).
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) of dimension 0, sharing storage.
  Tensor rows(std::int64_t begin, std::int64_t end) const;
  // A fresh copy (same device).
  Tensor clone() const;
  void zero_();
  void fill_(float value);
  // Element i as a double (any dtype), for tests and logging; slow.
  double item(std::int64_t i = 0) const;
  template <typename T>
  std::vector<T> to_vector() const {
    const T* p = data<T>();
    return std::vector<T>(p, p + numel_);
  }
  std::string str() const;  // "f32[4, 64]" style description

 private:
  void check_dtype(DType expected) const;
  std::shared_ptr<Storage> storage_;
  std::size_t offset_ = 0;  // bytes
  Shape shape_;
  std::int64_t numel_ = 0;
  DType dtype_ = DType::f32;
};

template <typename T>
Tensor Tensor::from(const Shape& shape, const std::vector<T>& values) {
  Tensor t = empty(shape, dtype_of<T>());
  if (static_cast<std::int64_t>(values.size()) != t.numel())
    throw ShapeError(fmt::format("Tensor::from: {} values for shape {} ({} elements)", values.size(),
                                 shape_str(shape), t.numel()));
  T* p = t.data<T>();
  for (std::size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return t;
}

}  // namespace tessera
